"""The `teletype` command line, run as a real subprocess the way a person runs it."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from util import DEPLOY, REPO, needs_bwrap

pytestmark = needs_bwrap


def teletype(*args, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "teletype", *map(str, args)], cwd=REPO, input=input,
                          capture_output=True, text=True, timeout=timeout)


def test_help_reads_well():
    out = teletype("--help")
    assert out.returncode == 0
    for word in ("run", "scenarios", "export", "console", "eval", "train", "examples ("):
        assert word in out.stdout
    out = teletype("run", "--help")
    assert "--sandbox {bwrap,docker,local}" in out.stdout and "--policy" in out.stdout


def _parsers(parser, path=("teletype",)):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_option_of_every_command_says_what_it_does():
    from teletype.cli import build_parser

    seen = set()
    for command in ("run", "console", "replay", "eval", "train", "export", "scenarios", "serve", "tiny-model"):
        for path, parser in _parsers(build_parser([command, "--help"])):
            if path in seen or not parser.add_help:   # the lazy placeholders of the other commands
                continue
            seen.add(path)
            for action in parser._actions:
                if action.dest in ("help", "command", "scenarios_command"):
                    continue
                assert action.help, f"{' '.join(path)} {action.option_strings or action.dest}: no help text"
    assert ("teletype", "scenarios", "generate") in seen and ("teletype", "tiny-model") in seen


def test_generate_help_lists_the_archetypes_and_replay_help_stays_short():
    from teletype.engine.worlds.generators import ARCHETYPES

    out = teletype("scenarios", "generate", "--help").stdout
    for name, split in ARCHETYPES.items():
        assert f"  {name:<16} {split:<8} " in out, name
    out = teletype("replay", "--help").stdout
    assert "--model" in out and "--endpoint" in out
    for hidden in ("--max-new-tokens", "--dtype", "--budget", "--api-key-env", "--device"):
        assert hidden not in out
    out = teletype("eval", "--help").stdout
    assert "the other modes" in out and "--no-progress" in out and "--compare" in out


def test_run_records_and_reports(tmp_path):
    out = teletype("run", "permissions/deploy_exec", "--record", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    assert "permissions/deploy_exec: success" in out.stdout and "[pass] mode" in out.stdout
    assert json.loads((tmp_path / "r" / "trajectory.json").read_text())["outcome"]["outcome"] == "success"
    out = teletype("run", DEPLOY, "--json", "--no-record", "--policy", "replay", "--replay", tmp_path / "r")
    assert out.returncode == 0 and json.loads(out.stdout)["outcome"] == "success"


def test_run_human_policy_from_stdin(tmp_path):
    out = teletype("run", "permissions/deploy_exec", "--policy", "human", "--no-record",
                   input="chmod +x bin/deploy.sh\nexit\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alice@sek:~$" in out.stdout


def test_scenarios_list_and_validate(tmp_path):
    out = teletype("scenarios", "list", "--json")
    rows = json.loads(out.stdout)
    assert any(r["name"] == "permissions/deploy_exec" for r in rows)
    out = teletype("scenarios", "validate", DEPLOY)
    assert out.returncode == 0 and "1/1 scenarios valid" in out.stdout
    bad = tmp_path / "broken" / "weak.toml"
    bad.parent.mkdir()
    text = DEPLOY.read_text()  # a check that already holds before the task is done
    check_at = text.index("[[checks]]")
    bad.write_text(text[:check_at] + text[check_at:].replace('mode = "0755"', 'mode = "0644"'))
    out = teletype("scenarios", "validate", bad)
    assert out.returncode == 1 and "FAIL" in out.stdout and "empty session ends success" in out.stdout


def test_bad_scenario_and_unknown_sandbox_give_clear_errors(tmp_path):
    bad = tmp_path / "x" / "bad.toml"
    bad.parent.mkdir()
    bad.write_text('[scenario]\nexpect = "maybe"\n')
    out = teletype("run", bad)
    assert out.returncode == 2 and str(bad) in out.stderr and "scenario.expect" in out.stderr
    out = teletype("run", "no/such")
    assert out.returncode == 2 and "no such scenario" in out.stderr


def test_export_command_leaves_held_out_sessions_out_unless_asked(tmp_path):
    assert teletype("run", "file_create/hello_script", "--record", tmp_path / "runs" / "a").returncode == 0
    assert teletype("run", "permissions/deploy_exec", "--record", tmp_path / "runs" / "b").returncode == 0
    out = teletype("export", tmp_path / "runs", "-o", tmp_path / "demo.jsonl", "-v")
    assert out.returncode == 0 and "exported 1 conversations" in out.stdout and "1 skipped" in out.stdout
    assert "split heldout" in out.stderr and str(tmp_path / "runs" / "b") in out.stderr
    row = json.loads((tmp_path / "demo.jsonl").read_text().splitlines()[0])
    assert row["messages"][0]["role"] == "user" and "hello" in json.dumps(row)
    for flags in (["--include-heldout"], ["--split", "train,heldout"]):   # the flags train takes too
        out = teletype("export", tmp_path / "runs", "-o", tmp_path / "all.jsonl", *flags)
        assert out.returncode == 0 and "exported 2 conversations" in out.stdout, flags
    out = teletype("export", tmp_path / "runs", "-o", tmp_path / "h.jsonl", "--split", "heldout")
    assert "exported 1 conversations" in out.stdout and "deploy" in (tmp_path / "h.jsonl").read_text()


def test_export_and_train_select_the_same_sessions():
    pytest.importorskip("transformers")
    from teletype.engine.record.export import make_selection as export_selection
    from teletype.train.data import make_selection as train_selection

    for split in ("train", "heldout", None):
        traj = {"split": split, "archetype": "x", "outcome": {"clean": True}, "turns": []}
        for splits in (None, ["train"], ["heldout"], ["train", "heldout"]):
            for include in (False, True):
                a = export_selection(splits=set(splits) if splits else None, include_heldout=include)
                b = train_selection(splits=splits, include_heldout=include)
                assert a.why_not(traj) == b.why_not(traj), (split, splits, include)


# -- a model that is not there: fail at once, and say why ---------------------------------------------
def test_an_unknown_model_fails_at_once_and_says_why(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "teletype", "run", "permissions/deploy_exec", "--no-record",
                          "--model", "does-not-exist"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and not out.stdout
    err = out.stderr
    assert "'does-not-exist' is not a preset (" in err and "teletype-smollm2" in err and "teletype-mistral" in err
    assert f"not a local directory (no {tmp_path / 'does-not-exist'})" in err
    assert "HF_HUB_OFFLINE is set" in err and "Traceback" not in err
    out = teletype("run", "permissions/deploy_exec", "--model", "./no/such/dir")
    assert out.returncode != 0 and "./no/such/dir: not a preset" in out.stderr and "no such directory" in out.stderr
    (tmp_path / "empty").mkdir()
    out = teletype("eval", "permissions", "--out", tmp_path / "ev", "--model", tmp_path / "empty")
    assert out.returncode != 0 and "has no config.json" in out.stderr


def test_presets_are_called_by_their_names():
    """The console's header and eval's default label show a preset's name, not the cache path that it
    resolves to; naming the model does not load or convert anything."""
    from teletype.cli import build_parser
    from teletype.engine.policy.options import resolve_model

    def choice(*words):
        return resolve_model(build_parser(["eval"]).parse_args(["eval", "heldout", *words]))

    assert choice("--model", "teletype-smollm2").label == "teletype-smollm2"
    assert choice("--model", "smollm2").label == "smollm2"
    assert choice("--model", "teletype-smollm2", "--adapter", "adapters/x").label == "teletype-smollm2+adapters/x"
    assert choice("--model", "teletype-mistral").options["model"] == "teletype-mistral"


class _Hub(http.server.BaseHTTPRequestHandler):
    """A hub that knows no model (what huggingface.co answers for an unknown id)."""

    def do_GET(self):
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "Repository not found"}')

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("hub", ["refused", "unknown id"])
def test_an_unknown_model_on_a_hub_that_is_down_or_does_not_have_it(tmp_path, hub):
    server = None
    if hub == "refused":
        with socket.socket() as s:   # a port that nothing listens on
            s.bind(("127.0.0.1", 0))
            endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = endpoint
    env["HF_HOME"] = str(tmp_path / "hf")  # nothing cached
    try:
        out = subprocess.run([sys.executable, "-m", "teletype", "run", "permissions/deploy_exec",
                              "--no-record", "--model", "nobody/no-such-model"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    finally:
        if server is not None:
            server.shutdown()
    assert out.returncode != 0 and "is not a preset" in out.stderr and "not a local directory" in out.stderr
    if hub == "refused":
        assert f"the hub ({endpoint}) cannot be reached" in out.stderr
    else:
        assert f"the hub ({endpoint}) has no model 'nobody/no-such-model'" in out.stderr


# -- no terminal: the console refuses to start -------------------------------------------------------
def test_the_console_refuses_to_start_without_a_terminal(tmp_path):
    out = subprocess.run([sys.executable, "-m", "teletype", "console", "--policy", "human", "--no-record"],
                         cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "teletype console: needs a terminal, and stdin, stdout, stderr are not" \
        in out.stderr and "teletype run" in out.stderr
    assert not (tmp_path / "runs").exists()
    # a terminal for the keys and the screen, but the UI's output (stderr) sent to a file
    master, slave = os.openpty()
    try:
        with open(tmp_path / "err.txt", "w") as err:
            rc = subprocess.run([sys.executable, "-m", "teletype", "console", "--policy", "human"],
                                cwd=tmp_path, stdin=slave, stdout=slave, stderr=err, timeout=60).returncode
    finally:
        os.close(slave)
        os.close(master)
    text = (tmp_path / "err.txt").read_text()
    assert rc == 2 and "needs a terminal, and stderr is not one" in text and "\x1b[" not in text
