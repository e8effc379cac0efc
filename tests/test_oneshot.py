"""The one-shot competence probe (teletype.engine.eval.oneshot, bench/probe_oneshot.py): how an answer is
read, and that the probe grades for real: every archetype's reference answer verifies in a real
sandbox, and an answer that does nothing, or the wrong thing, does not."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from util import needs_bwrap

from teletype.engine.eval.oneshot import MAX_LINES, SKIPPED, commands, messages, probe, question, reference, worlds
from teletype.engine.worlds.generators import ARCHETYPES, build

REPO = Path(__file__).resolve().parent.parent
PROBED = [a for a in ARCHETYPES if a not in SKIPPED]


def test_an_answer_is_read_generously_but_typed_as_written():
    fenced = "Here you go:\n```bash\n$ sudo chmod 640 ~/a ~/b\n# then check\nls -l ~\n```\nThis sets the mode."
    assert commands(fenced) == ["chmod 640 ~/a ~/b", "ls -l ~"]
    heredoc = "mkdir -p ~/bin\ncat > ~/bin/hi <<'EOF'\n#!/bin/sh\necho hi\nEOF\nchmod +x ~/bin/hi"
    assert commands(heredoc) == ["mkdir -p ~/bin", "cat > ~/bin/hi <<'EOF'\n#!/bin/sh\necho hi\nEOF",
                                 "chmod +x ~/bin/hi"]
    loop = "for f in ~/w/*.md; do\n  sed -i 's/a/b/g' \"$f\"\ndone\nfind ~/w -type f -exec chmod 644 {} +\nls"
    assert commands(loop) == ["for f in ~/w/*.md; do\n  sed -i 's/a/b/g' \"$f\"\ndone",
                              "find ~/w -type f -exec chmod 644 {} +", "ls"]
    branch = "if [ -f x ]; then\n  echo y\nelif [ -d x ]; then\n  echo z\nfi\necho done"
    assert commands(branch) == ["if [ -f x ]; then\n  echo y\nelif [ -d x ]; then\n  echo z\nfi", "echo done"]
    # prose is not dropped: typed, it fails, as it would for a person who pasted it
    assert commands("I'm sorry, I cannot run commands.") == ["I'm sorry, I cannot run commands."]
    assert len(commands("\n".join(f"echo {i}" for i in range(20)))) == MAX_LINES
    assert len(commands("\n".join(f"echo {i}" for i in range(20)), None)) == 20


def test_the_question_states_the_task_after_a_format_example_of_another_task():
    g = build("permissions", 40, 0)
    chat = messages("Q")
    assert [m["role"] for m in chat] == ["user", "assistant", "user"] and chat[-1]["content"] == "Q"
    assert "chmod" not in chat[1]["content"]  # the example teaches the format, not a held-out command
    q = question("mei", "box", g.directive)
    assert g.directive in q and "as mei on box" in q and "/home/mei" in q
    assert "mode" in g.directive or "rw" in g.directive or "readable" in g.directive  # the task itself
    with pytest.raises(ValueError, match="unknown archetype 'nope'"):
        worlds(["nope"], 1, 1)
    assert all(a != "panic" for a, _, _ in worlds(list(ARCHETYPES), 1, 1))


@needs_bwrap
@pytest.mark.parametrize("archetype", PROBED)
def test_the_reference_answer_verifies_and_doing_nothing_does_not(archetype):
    ok = probe(archetype, 3, 0, lambda chat: reference(archetype, 3, 0), most=None)
    assert ok.verified, [c for c in ok.checks if not c["passed"]]
    assert ok.typed and ok.checks and "Reply with only the shell commands" in ok.question
    idle = probe(archetype, 3, 0, lambda chat: "ls -la ~")
    assert not idle.verified and idle.typed == ["ls -la ~"]


@needs_bwrap
def test_a_wrong_command_fails_and_stays_in_its_sandbox(tmp_path):
    # a base model's favourite answer, here run against a permissions world: the world is wrecked,
    # the host is not, and the checker says so
    marker = tmp_path / "host-file"
    marker.write_text("keep\n")
    p = probe("permissions", 3, 1, lambda chat: f"sudo rm -rf ~/* {marker}\nchmod +x ~/*")
    assert not p.verified and p.typed[0].startswith("rm -rf")
    assert marker.read_text() == "keep\n"


@needs_bwrap
def test_probe_script_runs_a_model_beside_the_reference(tiny_model_dir, tmp_path):
    out = tmp_path / "probe.jsonl"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "probe_oneshot.py"), "--model", str(tiny_model_dir),
                          "--archetypes", "lists,symlinks", "--seed", "5", "--n", "1", "--max-new-tokens", "8",
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[1].split()[:2] == ["archetype", "reference"]
    assert lines[-1].split()[:2] == ["all", "2/2"]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["model"] for r in rows} == {"reference", tiny_model_dir.name}
    assert all(r["question"] and "checks" in r for r in rows)
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "probe_oneshot.py"), "--model", str(tiny_model_dir),
                          "--archetypes", "nope"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode != 0 and "unknown archetype 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    for argv, said in ((["--model", str(tmp_path / "no-such-model"), "--archetypes", "lists", "--n", "1"], "no-such-model"),
                       (["--model", str(tiny_model_dir), "--archetypes", "panic"], "no worlds to probe")):
        bad = subprocess.run([sys.executable, str(REPO / "bench" / "probe_oneshot.py"), *argv], capture_output=True,
                             text=True, timeout=300, cwd=REPO)
        assert bad.returncode != 0 and said in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
