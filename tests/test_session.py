"""Sessions end to end in real bwrap: outcome classes, provenance, recordings, crash safety, export."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from util import DEPLOY, PANIC_SCENARIO, REPO, needs_bwrap, scenario_from

from teletype.engine.policy import make_policy
from teletype.engine.record.export import Selection, export_jsonl
from teletype.engine.record.outcome import metrics
from teletype.engine.record.recorder import SCHEMA, load_run
from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits
from teletype.engine.worlds.scenario import load_scenario

pytestmark = needs_bwrap


def run(sc, commands, **kw):
    return Session(sc, policy=make_policy("scripted", commands=commands), **kw).run()


def test_reference_solution_is_success_and_recorded(tmp_path):
    sc = load_scenario(DEPLOY)
    rec = tmp_path / "run"
    s = Session(sc, policy=make_policy("scripted", scenario=sc), record_dir=rec)
    out = s.run()
    assert out.outcome == "success" and out.verified and out.ended_by == "exit" and out.operated
    traj = json.loads((rec / "trajectory.json").read_text())
    assert traj["schema"] == SCHEMA and traj["scenario"] == "permissions/deploy_exec"
    assert traj["archetype"] == "permissions" and traj["model"] == "scripted"
    roles = [m["role"] for m in traj["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert [m["content"] for m in traj["messages"] if m["role"] == "assistant"] == sc.solution.commands
    assert all(t["source"] == "scripted" for t in traj["turns"])
    assert traj["outcome"]["outcome"] == "success"
    # the cast is asciicast v2 with a marker per step and plays the raw stream
    lines = (rec / "session.cast").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] == 80
    events = [json.loads(x) for x in lines[1:]]
    assert [e[2] for e in events if e[1] == "m"][1:] == [
        "step 1: cat ~/ASSIGNMENTS", "step 2: chmod 755 ~/bin/deploy.sh", "step 3: exit"]
    assert "Make ~/bin/deploy.sh executable" in "".join(e[2] for e in events if e[1] == "o")
    times = [e[0] for e in events]
    assert times == sorted(times)


@pytest.mark.parametrize("commands, outcome, ended_by, operated", [
    (["ls", "exit"], "premature_exit", "exit", True),
    (["ls", "panic this is too hard"], "false_panic", "panic", True),
    (["Sure! I will make the script executable.", "exit"], "no_operate", "exit", False),
    (["I can't help with that"] * 3, "no_operate", "budget", False),
    (["ls", "pwd", "ls bin"], "incomplete", "budget", True),
])
def test_outcome_classes(commands, outcome, ended_by, operated):
    out = run(load_scenario(DEPLOY), commands, step_budget=3)
    assert (out.outcome, out.ended_by, out.operated) == (outcome, ended_by, operated)


def test_correct_panic_and_panic_reason(tmp_path):
    sc = scenario_from(tmp_path, PANIC_SCENARIO, archetype="panic")
    out = Session(sc, policy=make_policy("scripted", scenario=sc)).run()
    assert out.outcome == "correct_panic" and out.panic_reason == "/srv/ledger.txt does not exist"
    assert run(sc, ["exit"]).outcome == "no_operate"
    assert run(sc, ["cat ~/TASK", "exit"]).outcome == "premature_exit"


def test_step_api_with_edit_and_operator_provenance(tmp_path):
    sc = load_scenario(DEPLOY)
    s = Session(sc, policy=make_policy("scripted", commands=["cat ~/ASSIGNMENTS", "chmod 700 ~/bin/deploy.sh",
                                                             "exit"]), record_dir=tmp_path / "r")
    s.start()
    p = s.propose()
    s.execute(p.command, source=p.source)
    p = s.propose()
    assert p.command == "chmod 700 ~/bin/deploy.sh"
    s.execute("chmod 755 ~/bin/deploy.sh", source="edited", original=p.command)
    assert s.check().passed  # the checker mid-session
    s.execute("exit", source="operator")
    out = s.finish()
    assert out.outcome == "success"
    turns = json.loads((tmp_path / "r" / "trajectory.json").read_text())["turns"]
    assert [t["source"] for t in turns] == ["scripted", "edited", "operator"]
    assert turns[1]["original"] == "chmod 700 ~/bin/deploy.sh"


def test_panic_typed_by_a_person_in_the_terminal_ends_the_session():
    sc = load_scenario(DEPLOY)
    s = Session(sc)
    s.start()
    s.send_keys(b"panic no way\n")
    deadline = time.monotonic() + 5
    while not s.shell.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    out = s.finish()
    assert out.ended_by == "panic" and out.panic_reason == "no way"


def test_replay_policy_reexecutes_a_recording(tmp_path):
    sc = load_scenario(DEPLOY)
    Session(sc, policy=make_policy("scripted", scenario=sc), record_dir=tmp_path / "a").run()
    out = Session(sc, policy=make_policy("replay", recording=tmp_path / "a"), record_dir=tmp_path / "b").run()
    assert out.outcome == "success"
    assert load_run(tmp_path / "b")["turns"][0]["source"] == "replay"


def test_human_policy_reads_commands_from_a_terminal(tmp_path):
    import io

    sc = load_scenario(DEPLOY)
    typed = io.StringIO("cat > note <<END\nhello\nEND\nchmod 755 bin/deploy.sh\nexit\n")
    shown = io.StringIO()
    out = Session(sc, policy=make_policy("human", stdin=typed, stdout=shown)).run()
    assert out.outcome == "success"
    assert shown.getvalue().startswith("teletype 0.1.0 host: sek")


CRASHER = textwrap.dedent("""
    import sys, time
    from teletype.engine.worlds.scenario import load_scenario
    from teletype.engine.runtime.session import Session
    s = Session(load_scenario(sys.argv[1]), record_dir=sys.argv[2])
    s.start()
    s.execute("cat ~/ASSIGNMENTS")
    s.execute("chmod 755 ~/bin/deploy.sh")
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sigkill_leaves_a_readable_log_up_to_the_last_step(tmp_path):
    rec = tmp_path / "crashed"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(DEPLOY), str(rec)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    traj = load_run(rec)
    assert traj["recovered_from"] == "events.jsonl" and traj["outcome"] is None
    assert [m["content"] for m in traj["messages"] if m["role"] == "assistant"] == [
        "cat ~/ASSIGNMENTS", "chmod 755 ~/bin/deploy.sh"]
    assert len(traj["turns"]) == 2
    # export keeps it out by default (never finished), and in with --all
    assert export_jsonl([rec], tmp_path / "x.jsonl")[0] == 0
    assert export_jsonl([rec], tmp_path / "y.jsonl", Selection(include_unclean=True))[0] == 1


def test_export_keeps_clean_sessions_only_by_default(tmp_path):
    sc = load_scenario(DEPLOY)
    Session(sc, policy=make_policy("scripted", scenario=sc), record_dir=tmp_path / "runs" / "good").run()
    run(sc, ["ls", "exit"], record_dir=tmp_path / "runs" / "bad")
    n, skipped = export_jsonl([tmp_path / "runs"], tmp_path / "out.jsonl")
    assert n == 1 and len(skipped) == 1 and "premature_exit" in skipped[0][1]
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert list(rows[0]) == ["messages", "sources"]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "exit"}
    # each assistant message's provenance, for train --loss-on
    assert rows[0]["sources"] == ["scripted"] * sum(m["role"] == "assistant" for m in rows[0]["messages"])
    n, _ = export_jsonl([tmp_path / "runs"], tmp_path / "o2.jsonl", Selection(sources={"operator"}))
    assert n == 0


def test_metrics_over_outcomes():
    rows = [
        {"archetype": "a", "outcome": "success", "verified": True, "operated": True, "ended_by": "exit"},
        {"archetype": "a", "outcome": "premature_exit", "verified": False, "operated": True, "ended_by": "exit"},
        {"archetype": "b", "outcome": "correct_panic", "verified": True, "operated": True, "ended_by": "panic"},
        {"archetype": "b", "outcome": "no_operate", "verified": False, "operated": False, "ended_by": "budget"},
    ]
    m = metrics(rows)
    assert m["overall"]["operate_rate"] == 0.75 and m["overall"]["terminate_rate"] == 0.75
    assert m["overall"]["verified_rate"] == 0.5 and m["overall"]["clean"] == 0.5
    assert m["archetypes"]["b"]["counts"]["no_operate"] == 1


def test_local_sandbox_warns_and_works(tmp_path):
    from teletype.engine.sandbox.local import LocalSandboxWarning

    sc = load_scenario(DEPLOY)
    with pytest.warns(LocalSandboxWarning):
        out = Session(sc, sandbox="local", policy=make_policy("scripted", scenario=sc)).run()
    assert out.outcome == "success"


def test_commands_time_out_inside_a_session():
    out = run(load_scenario(DEPLOY), ["sleep 100", "exit"], limits=Limits(command_timeout=0.5))
    assert out.outcome == "premature_exit" and out.operated


def test_a_panic_reason_in_plain_words_needs_no_shell_quoting(tmp_path):
    sc = scenario_from(tmp_path, PANIC_SCENARIO, archetype="panic")
    out = run(sc, ["cat ~/TASK", "panic the ledger isn't there (and I won't guess)"])
    assert out.outcome == "correct_panic"
    assert out.panic_reason == "the ledger isn't there (and I won't guess)"


def test_commands_typed_during_takeover_are_operator_steps(tmp_path):
    """Each line entered at the prompt during takeover is a step: an operator turn with its
    observation, in the model's context and the recording; keys typed into a running program are
    not commands; a heredoc's lines join their command."""
    sc = load_scenario(DEPLOY)
    rec = tmp_path / "run"
    s = Session(sc, record_dir=rec)
    s.start()
    seen = []
    s.on_takeover_step = seen.append

    def wait_steps(n):
        deadline = time.monotonic() + 10
        while len(seen) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(seen) == n, seen

    s.send_keys(b"cat ~/ASSIGNMENTS\r")
    wait_steps(1)
    s.send_keys(b"chmod 7x\x7f55 ~/bin/deploy.sh\r")         # a backspace, as a person types
    wait_steps(2)
    s.send_keys(b"read answer; echo got $answer\r")
    time.sleep(0.5)
    assert s.takeover_running()
    s.send_keys(b"yes\r")                                      # the program's input, not a command
    wait_steps(3)
    s.send_keys(b"cat <<EOF\rline one\rEOF\r")
    wait_steps(4)
    assert [t["command"] for t in s.turns] == [
        "cat ~/ASSIGNMENTS", "chmod 755 ~/bin/deploy.sh", "read answer; echo got $answer",
        "cat <<EOF\nline one\nEOF"]
    assert all(t["source"] == "operator" and t["takeover"] for t in s.turns)
    assert [t["status"] for t in s.turns] == [0, 0, 0, 0]
    assert s.messages[2]["content"] == "Make ~/bin/deploy.sh executable by everyone.\nalice@sek:~$ "
    assert s.messages[6]["content"].startswith("yes\ngot yes\n")
    assert s.messages[8]["content"].endswith("line one\nalice@sek:~$ ")
    s.send_keys(b"exit\r")
    deadline = time.monotonic() + 10
    while not s.shell.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    out = s.finish()
    assert out.outcome == "success" and out.ended_by == "exit" and out.steps == 5
    traj = json.loads((rec / "trajectory.json").read_text())
    assert [m["role"] for m in traj["messages"]].count("assistant") == 5
    assert traj["turns"][-1]["command"] == "exit" and traj["turns"][-1]["takeover"] is True



@needs_bwrap
def test_the_recording_format_is_written_and_read_by_one_module(tmp_path):
    """engine/record/recorder.py writes events.jsonl and session.cast (with a `step N:` marker
    before each step) and reads them back: the markers index the steps, a torn last line is skipped."""
    from teletype.engine.record.recorder import read_cast, read_events

    commands = ["cat ~/ASSIGNMENTS", "chmod 755 ~/bin/deploy.sh", "exit"]
    sc = load_scenario(DEPLOY)
    Session(sc, policy=make_policy("scripted", commands=commands), record_dir=tmp_path / "r").run()
    cast = read_cast(tmp_path / "r" / "session.cast")
    starts = cast.step_starts()
    assert sorted(starts) == [1, 2, 3]
    assert [cast.events[starts[k]][2] for k in (1, 2, 3)] == [f"step {k}: {c}" for k, c in enumerate(commands, 1)]
    assert starts[1] < starts[2] < starts[3] and (cast.width, cast.height) == (80, 24)
    kinds = [e["event"] for e in read_events(tmp_path / "r" / "events.jsonl")]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("turn") == 3
    with open(tmp_path / "r" / "session.cast", "a") as f:
        f.write('[1.5, "o", "torn')             # a process killed mid-write
    with open(tmp_path / "r" / "events.jsonl", "a") as f:
        f.write('{"event": "tur')
    assert len(read_cast(tmp_path / "r" / "session.cast").events) == len(cast.events)
    assert [e["event"] for e in read_events(tmp_path / "r" / "events.jsonl")] == kinds
