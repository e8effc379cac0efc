"""The console with a model behind it: a proposal that streams in, an operator who acts before it is
done (which cancels the generation), a model that fails, and the tiny model proposing for real."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_console import SIZE, ended, live, make_app, put, ready, sources, trajectory, type_text, until
from util import needs_bwrap

from teletype.engine.policy.base import PolicyError, Proposal


class GatedPolicy:
    """Streams the first word, then waits for the test to let it finish."""

    name = "gated"

    def __init__(self):
        import threading

        self.gate = threading.Event()

    def propose(self, messages, on_token=None):
        on_token("cat ")
        self.gate.wait(10)
        on_token("~/ASSIGNMENTS")
        return Proposal(command="cat ~/ASSIGNMENTS", raw="cat ~/ASSIGNMENTS", source="model")

    def close(self):
        self.gate.set()


@needs_bwrap
@pytest.mark.asyncio
async def test_the_proposal_streams_in_and_the_operator_can_override_meanwhile(tmp_path):
    policy = GatedPolicy()
    app = make_app(tmp_path, lambda sc: policy)
    async with app.run_test(size=SIZE) as pilot:
        s = live(app)
        text = lambda: str(s.query_one("#proposal-text").render())  # noqa: E731
        await until(pilot, lambda: s.phase == "proposing" and "cat" in text(), what="the first token")
        assert "ASSIGNMENTS" not in text() and s.proposal is None
        await pilot.press("o")                                       # override while it proposes
        put(s, "ls ~")
        await pilot.press("enter")
        policy.gate.set()                                            # the proposal lands late: ignored
        s = await ready(pilot, 1)
        assert s.session.turns[0]["command"] == "ls ~" and s.session.turns[0]["source"] == "operator"
        await pilot.press("q")                                       # quit finishes the session
    traj = trajectory(tmp_path / "run")
    assert traj["outcome"]["ended_by"] == "stopped" and sources(tmp_path / "run") == ["operator"]


class DrawlingPolicy:
    """A slow model: one token every 50 ms for up to 30 s, unless the console cancels it."""

    name = "drawling"

    def __init__(self):
        self.cancelled_after = None

    def propose(self, messages, on_token=None):
        from teletype.engine.policy.base import ProposalCancelled

        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 30:
                on_token("z")
                time.sleep(0.05)
        except ProposalCancelled:
            self.cancelled_after = time.monotonic() - t0
            raise
        return Proposal(command="true", raw="z" * 600, source="model")

    def close(self):
        pass


@needs_bwrap
@pytest.mark.asyncio
async def test_an_operator_command_cancels_the_generation_it_would_wait_for(tmp_path):
    policy = DrawlingPolicy()
    app = make_app(tmp_path, lambda sc: policy)
    async with app.run_test(size=SIZE) as pilot:
        s = live(app)
        text = lambda: str(s.query_one("#proposal-text").render())  # noqa: E731
        await until(pilot, lambda: s.phase == "proposing" and "zzz" in text(), what="tokens streaming")
        await pilot.press("o")
        put(s, "touch ~/mine")
        await pilot.press("enter")
        await until(pilot, lambda: s.session.steps == 1 and s.phase == "proposing", timeout=10,
                    what="the operator's step, well before the 30 s the model would take")
        assert policy.cancelled_after is not None and policy.cancelled_after < 10
        assert s.session.turns[0]["command"] == "touch ~/mine" and s.session.turns[0]["source"] == "operator"
        cancelled, policy.cancelled_after = policy.cancelled_after, None
        await pilot.press("q")                       # quitting cancels the next proposal too
    assert policy.cancelled_after is not None and cancelled is not None
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "proposal_cancelled"] == [1, 2]
    assert sources(tmp_path / "run") == ["operator"]


class BrokenPolicy:
    name = "broken"

    def propose(self, messages, on_token=None):
        raise PolicyError("the endpoint is down (connection refused)")

    def close(self):
        pass


@needs_bwrap
@pytest.mark.asyncio
async def test_model_and_sandbox_errors_are_shown_and_the_console_stays_usable(tmp_path):
    app = make_app(tmp_path, lambda sc: BrokenPolicy())
    async with app.run_test(size=SIZE) as pilot:
        s = await ready(pilot, 0, proposal=False)
        await until(pilot, lambda: s.error is not None, what="the error")
        assert "endpoint is down" in s.error
        await until(pilot, lambda: any("endpoint is down" in n.message for n in app._notifications),
                    what="a notification")
        await pilot.press("o")
        await type_text(pilot, "exit\n")
        s = await ended(pilot)
    def no_model(sc):
        raise OSError("model weights not found")

    app = make_app(tmp_path / "c", no_model)
    async with app.run_test(size=SIZE) as pilot:
        s = await ready(pilot, 0, proposal=False)
        assert not s.use_policy and "weights not found" in s.error and s.panel.editor.has_focus
    app = make_app(tmp_path / "b", None, scenario="nosuch/scenario")
    async with app.run_test(size=SIZE) as pilot:
        s = live(app)
        await until(pilot, lambda: s.phase == "failed", what="the start to fail")
        assert "nosuch" in s.error
        s.switch_scenario("permissions/deploy_exec")                 # still usable
        await ready(pilot, 0, proposal=False)


@needs_bwrap
@pytest.mark.asyncio
async def test_tiny_model_proposes_through_the_console(tmp_path, request):
    if not (Path(__file__).parent.parent / "engine" / "policy" / "hf.py").exists():
        pytest.skip("engine/policy/hf.py is not there yet")
    pytest.importorskip("torch")
    tiny = request.getfixturevalue("tiny_model_dir")
    from teletype.engine.policy.hf import HFPolicy

    policy = HFPolicy(base=str(tiny), max_new_tokens=8)
    app = make_app(tmp_path, lambda sc: policy)
    async with app.run_test(size=SIZE) as pilot:
        s = await ready(pilot, 0)
        assert s.proposal.source == "model" and s.proposal.stats.get("prompt_tokens")
        await pilot.press("r")
        s = await ready(pilot, 1)
        await pilot.press("x")
        await ended(pilot)
    assert sources(tmp_path / "run") == ["model", "operator"]
    assert trajectory(tmp_path / "run")["turns"][0]["stats"]["budget"]


# -- snapshots -------------------------------------------------------------------------------------


# -- a proposal that fails: the error beside a retry key -------------------------------------------------
def panel_text(s) -> str:
    return " ".join(str(s.panel.query_one(f"#proposal-{part}").render()) for part in ("source", "text", "hint"))


@needs_bwrap
@pytest.mark.asyncio
async def test_a_failed_proposal_shows_the_error_beside_a_retry_key(tmp_path):
    import threading
    from http.server import ThreadingHTTPServer

    from test_policy_openai import Handler, completion

    from teletype.engine.policy.openai import OpenAIPolicy

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads, httpd.requests = True, []
    httpd.script = [("reset",)]   # the first request: the connection goes away (an endpoint that is down)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.script.append(("json", 200, completion("cat ~/ASSIGNMENTS")))
    app = make_app(tmp_path, lambda sc: OpenAIPolicy(base_url=url, model="m", stream=False, retries=0))
    try:
        async with app.run_test(size=SIZE) as pilot:
            s = live(app)
            await until(pilot, lambda: s.propose_error is not None, what="the proposal to fail")
            assert s.phase == "ready" and s.proposal is None
            text = panel_text(s)
            assert "the model failed to propose" in text and s.propose_error in text and "r retry" in text
            keys = s.active_bindings
            assert keys["r"].binding.action == "retry" and keys["r"].enabled   # the footer says Retry
            await pilot.press("r")
            s = await ready(pilot, 0)
            assert s.proposal.command == "cat ~/ASSIGNMENTS" and s.propose_error is None
            assert s.active_bindings["r"].binding.action == "run"
            await pilot.press("r")
            await until(pilot, lambda: s.session.steps == 1, what="the retried proposal to run")
            await pilot.press("x")
            await ended(pilot)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(httpd.requests) >= 2 and sources(tmp_path / "run")[0] == "model"


# -- the model loads inside the console, not before it ---------------------------------------------------
@needs_bwrap
@pytest.mark.asyncio
async def test_the_model_loads_inside_the_console(tmp_path):
    import threading

    from teletype.engine.policy.scripted import ScriptedPolicy

    loading = threading.Event()

    def slow_model(sc):  # as a first start converting the embedded model
        loading.wait(20)
        return ScriptedPolicy(sc)

    app = make_app(tmp_path, slow_model)
    async with app.run_test(size=SIZE) as pilot:
        s = live(app)
        await until(pilot, lambda: "loading the model" in panel_text(s), what="the loading note")
        assert s.phase == "starting" and "starting the sandbox" in str(s.query_one("#status").render())
        loading.set()
        s = await ready(pilot, 0)
        assert "loading" not in panel_text(s)
        await pilot.press("R")                     # a restart reuses the loaded model: no note
        s = await ready(pilot, 0)


def test_the_default_model_is_not_touched_before_the_console_opens(tmp_path):
    """`teletype console` decides its model before the TUI: it must not load or convert anything then
    (a first start used to print transformers' progress bars over the terminal before the UI)."""
    import subprocess
    import sys

    code = ("import sys; from teletype.cli import build_parser; from teletype.console.cli import config_from_args; "
            "cfg = config_from_args(build_parser(['console']).parse_args(['console'])); "
            "print(cfg.model_label, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True,
                         text=True, timeout=60, env={**__import__("os").environ, "TELETYPE_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["teletype-smollm2", "False", "False"] and not out.stderr
    assert not any(tmp_path.iterdir())
