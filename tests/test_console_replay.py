"""Replay: a recording stepped back and forth with the terminal as it was; branching from a step.

The recording is made once per module by the engine itself (a real bwrap session, checked after each
step the way the console does), then opened in the console with Pilot.
"""
from __future__ import annotations

import json
import shutil

import pytest
from test_console import SIZE, check_snapshot, ended, make_app, put, ready, sources, trajectory, type_text, until
from util import needs_bwrap

from teletype.console.cast import load_recording
from teletype.console.live import LiveScreen
from teletype.console.replay import ReplayScreen
from teletype.engine.policy.scripted import ScriptedPolicy
from teletype.engine.runtime.session import Session
from teletype.engine.worlds.scenario import find_scenarios, load_scenario

pytestmark = needs_bwrap

COMMANDS = ["cat ~/ASSIGNMENTS", "ls -l ~/bin", "chmod 755 ~/bin/deploy.sh",
            "printf '\\033[31mred\\033[0m done\\n'", "exit"]


def record(run, commands, finish=True):
    sc = load_scenario(find_scenarios("permissions/deploy_exec")[0])
    s = Session(sc, policy=ScriptedPolicy(commands=commands), record_dir=run, rows=30, cols=90)
    s.start()
    s.check()
    for _ in commands:
        p = s.propose()
        s.execute(p.command, source=p.source)
        if s.ended:
            break
        s.check()
    if finish:
        s.finish()
    else:
        s.close()  # as if the console had been killed: no trajectory.json
    return run


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return record(tmp_path_factory.mktemp("rec") / "run", COMMANDS)


def test_frames_rebuild_the_terminal_as_it_was(recording):
    rec = load_recording(recording)
    assert rec.frames == len(COMMANDS) + 1 and (rec.width, rec.height) == (90, 30)
    texts = [rec.build(k) for k in range(rec.frames)]
    from teletype.console.vt import screen_text

    t0, t2, t4 = screen_text(texts[0]), screen_text(texts[2]), screen_text(texts[4])
    assert "Welcome, alice" in t0 and "cat ~/ASSIGNMENTS" not in t0
    assert "-rw-r--r--" in t2 and "chmod" not in t2
    assert "red done" in t4
    row = next(r for r in texts[4].display if "red done" in r)
    y = texts[4].display.index(row)
    assert texts[4].buffer[y][row.index("red")].fg == "red"
    assert not rec.check_at(2)["passed"] and rec.check_at(3)["passed"]
    assert rec.scenario_spec and rec.trajectory["outcome"]["outcome"] == "success"


@pytest.mark.asyncio
async def test_replay_steps_back_and_forth(recording, tmp_path):
    app = make_app(tmp_path, None, replay=recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await until(pilot, lambda: screen.shown == len(COMMANDS), what="the last frame")
        assert "success" in str(screen.query_one("OutcomePanel").render())
        status = str(screen.query_one("#status").render())
        assert "permissions/deploy_exec  step 5/5  model: scripted" in status
        turn = str(screen.query_one("#turn").render())   # the exit turn: no prompt came back
        assert "$ exit" in turn and "ended the session" in turn and "None" not in turn
        for _ in range(3):
            await pilot.press("left")
        await until(pilot, lambda: screen.shown == 2, what="frame 2")
        text = screen.pane.text()
        assert "-rw-r--r--" in text and "chmod" not in text
        assert "FAIL" in str(screen.query_one("ChecksPanel").render())
        assert "ls -l ~/bin" in str(screen.query_one("#turn").render())
        await pilot.press("right")
        await until(pilot, lambda: screen.shown == 3, what="frame 3")
        assert "PASS" in str(screen.query_one("ChecksPanel").render())
        await pilot.press("home")
        await until(pilot, lambda: screen.shown == 0, what="frame 0")
        assert "cat ~/ASSIGNMENTS" not in screen.pane.text()
        await pilot.press("end")
        await until(pilot, lambda: screen.shown == len(COMMANDS), what="the end again")
        await pilot.press("b")  # branching after `exit` makes no sense: refused, still replaying
        await pilot.pause(0.1)
        assert app.screen is screen


@pytest.mark.asyncio
async def test_branch_to_the_operator(recording, tmp_path):
    app = make_app(tmp_path, None, replay=recording)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.shown == len(COMMANDS), what="the recording")
        screen.go(2)
        await pilot.press("b")
        s = await ready(pilot, 2, proposal=False)
        assert "-rw-r--r--" in s.pane.text()  # the replayed commands ran here, in a fresh sandbox
        status = str(s.query_one("#status").render())
        assert "permissions/deploy_exec" in status and ".toml" not in status   # its name, not its path
        assert s.query_one("ChecksPanel").border_subtitle == "0/1 pass · after step 2"
        await type_text(pilot, "chmod 755 ~/bin/deploy.sh\n")
        await ready(pilot, 3, proposal=False)
        put(s, "exit")
        await pilot.press("enter")
        s = await ended(pilot)
        assert s.session.outcome.outcome == "success"
    assert sources(tmp_path / "run") == ["replay", "replay", "operator", "operator"]
    assert trajectory(tmp_path / "run")["model"] == "operator"


@pytest.mark.asyncio
async def test_branch_to_the_model(recording, tmp_path):
    app = make_app(tmp_path, "scripted", replay=recording)  # the scenario's solution as "the model"
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.shown == len(COMMANDS), what="the recording")
        screen.go(1)
        await pilot.press("m")
        s = await ready(pilot, 1)
        assert isinstance(s, LiveScreen) and s.proposal.command == "chmod 755 ~/bin/deploy.sh"
        await pilot.press("r")
        await ready(pilot, 2)
        await pilot.press("r")
        s = await ended(pilot)
    assert sources(tmp_path / "run") == ["replay", "scripted", "scripted"]
    assert trajectory(tmp_path / "run")["outcome"]["outcome"] == "success"


@pytest.mark.asyncio
async def test_replay_of_a_killed_session(tmp_path):
    run = record(tmp_path / "killed", COMMANDS[:2] + ["sleep 0"], finish=False)
    assert not (run / "trajectory.json").exists()
    app = make_app(tmp_path, None, replay=run)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.shown == 3, what="the last recorded step")
        assert "did not finish" in str(screen.query_one("OutcomePanel").render())
        await pilot.press("left")
        await until(pilot, lambda: screen.shown == 2, what="frame 2")


@pytest.mark.asyncio
async def test_replay_of_a_missing_run_says_so(tmp_path):
    app = make_app(tmp_path, None, replay=tmp_path / "nothing")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: any("cannot open" in n.message for n in app._notifications),
                    what="an error notification")


@pytest.mark.asyncio
async def test_snapshot_replay(recording, tmp_path, monkeypatch, snapshot):
    shutil.copytree(recording, tmp_path / "run-x")
    traj_path = tmp_path / "run-x" / "trajectory.json"
    traj = json.loads(traj_path.read_text())
    for turn in traj["turns"]:
        turn["seconds"] = 0.01  # the one volatile number on this screen
    traj_path.write_text(json.dumps(traj))
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, None, replay="run-x")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.shown == len(COMMANDS), what="the recording")
        screen.go(2)
        await until(pilot, lambda: screen.shown == 2, what="frame 2")
        await pilot.pause(0.1)
        check_snapshot(snapshot, app, "replay_step2")
