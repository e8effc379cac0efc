"""Recoverable detours in scripted demonstrations, and which turns carry loss (by provenance).

Real parts: demonstrations recorded in real bwrap sandboxes from generated scenarios, the tiny
Mistral-architecture model and its tokenizer, `teletype train` end to end.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from util import REPO, needs_bwrap, write_run  # noqa: E402

from teletype.cli import main as teletype  # noqa: E402
from teletype.engine.policy.render import IGNORE_INDEX, render_prompt_ids  # noqa: E402
from teletype.engine.policy.scripted import _PROGRAMS, MAX_DETOURS, ScriptedPolicy, plan_detours  # noqa: E402
from teletype.engine.worlds.generators import ARCHETYPES, generate  # noqa: E402
from teletype.engine.worlds.scenario import load_scenario  # noqa: E402
from teletype.train.data import TrainDataError, build_examples, load_sessions, make_selection  # noqa: E402

TRAIN = [a for a, split in ARCHETYPES.items() if split == "train"]
_SHELL_SYNTAX = re.compile(r"[;|&<>`$()'\"\n]")


def _all_solutions(tmp_path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for p in sorted((REPO / "scenarios").rglob("*.toml")):
        sc = load_scenario(p)
        out.append((sc.name, list(sc.solution.commands)))
    for arch in ARCHETYPES:
        for p in generate(arch, n=12, seed=11, out=tmp_path):
            sc = load_scenario(p)
            out.append((sc.name, list(sc.solution.commands)))
    return out


def test_detour_plans_keep_the_script_and_change_nothing(tmp_path):
    """Every plan is the script in order with at most MAX_DETOURS detours, none before the final exit or
    panic; a detour is read-only (ls, cat, pwd, env) or a mistyped program name on a command without shell
    syntax (a mistyped `x > f` would still truncate f); the same seed gives the same plan."""
    kinds = set()
    for name, commands in _all_solutions(tmp_path):
        plan = plan_detours(commands, 1.0, f"{name}:0")
        assert [c for c, s in plan if s == "scripted"] == commands
        detours = [(k, c) for k, (c, s) in enumerate(plan) if s == "detour"]
        assert len(detours) <= MAX_DETOURS
        assert plan[-1] == (commands[-1], "scripted")
        for k, c in detours:
            head = c.split(" ", 1)[0]
            nxt = plan[k + 1][0]
            if head in ("ls", "cat", "pwd", "env"):
                assert not _SHELL_SYNTAX.search(c), c
                kinds.add("cat /bin" if c.startswith(("cat /bin", "ls -R /usr")) else head)
                if head == "cat" and nxt.split(" ", 1)[0] in ("ls", "cd") and c[4:] == nxt.split()[-1].rstrip("/"):
                    kinds.add("cat of the next directory")
                if k == 0 and c in ("env", "ls -a") and c.split()[0] != nxt.split()[0]:
                    kinds.add("first look elsewhere")
            else:   # a typo of the next command's program, never another real program
                assert head not in _PROGRAMS, (c, nxt)
                assert not _SHELL_SYNTAX.search(nxt), (c, nxt)
                assert head != nxt.split(" ", 1)[0] and c.split(" ")[1:] == nxt.split(" ")[1:], (c, nxt)
                kinds.add("typo")
        assert plan_detours(commands, 1.0, f"{name}:0") == plan
    assert kinds >= {"typo", "ls", "cat", "cat /bin", "env", "cat of the next directory", "first look elsewhere"}
    assert all(s == "scripted" for _, s in plan_detours(["ls", "exit"], 0.0, "x"))


def test_the_scripted_policy_follows_the_conversation_with_detours():
    p = ScriptedPolicy(commands=["ls ~/x", "mkdir -p ~/y", "exit"], detours=1.0, seed=3)
    seen = []
    messages = [{"role": "user", "content": "prompt"}]
    while True:
        prop = p.propose(messages)
        seen.append((prop.command, prop.source))
        if prop.command == "exit":
            break
        messages += [{"role": "assistant", "content": prop.command}, {"role": "user", "content": "out"}]
    assert seen == p.plan and any(s == "detour" for _, s in seen)
    with pytest.raises(Exception, match="rate from 0 to 1"):
        ScriptedPolicy(commands=["exit"], detours=1.5)


@pytest.fixture(scope="module")
def detour_runs(tmp_path_factory):
    """Two generated worlds of each train archetype, recorded with --detours 1 in real bwrap sandboxes."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    root = tmp_path_factory.mktemp("detours")
    for arch in TRAIN:
        generate(arch, n=2, seed=21, out=root / "scenarios")
    rc = teletype(["eval", str(root / "scenarios"), "--policy", "scripted", "--detours", "1",
                   "--detour-seed", "4", "--out", str(root / "eval"), "--jobs", "2", "--no-progress"])
    assert rc == 0
    return root / "eval"


@needs_bwrap
def test_detour_demonstrations_still_solve_their_task_and_show_the_error(detour_runs):
    results = [json.loads(x) for x in (detour_runs / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 * len(TRAIN)
    assert all(r["outcome"] in ("success", "correct_panic") for r in results)
    errors = 0
    for run in (detour_runs / "sessions").iterdir():
        traj = json.loads((run / "trajectory.json").read_text())
        sources = [t["source"] for t in traj["turns"]]
        assert "detour" in sources and sources[-1] == "scripted"
        answers = [i for i, m in enumerate(traj["messages"]) if m["role"] == "assistant"]
        for turn, i in zip(traj["turns"], answers):
            if turn["source"] == "detour" and turn["status"] != 0:
                errors += 1
                out = traj["messages"][i + 1]["content"]
                assert "not found" in out or "No such file" in out or "Is a directory" in out, out
    assert errors >= len(results) // 3   # many detours fail (a first look elsewhere succeeds)


@needs_bwrap
def test_detour_turns_are_context_not_loss(detour_runs, tiny_tokenizer):
    trajs, _ = load_sessions([detour_runs], make_selection())
    masked, _ = build_examples(tiny_tokenizer, trajs, 3072, 10 ** 6, loss_on=["scripted"])
    every, report_all = build_examples(tiny_tokenizer, trajs, 3072, 10 ** 6)
    assert [r["input_ids"] for r in masked] == [r["input_ids"] for r in every]  # same context
    for traj, row in zip(trajs, masked):
        msgs = traj["messages"]
        answers = [k for k, m in enumerate(msgs) if m["role"] == "assistant"]
        for turn, k in zip(traj["turns"], answers):
            n = len(render_prompt_ids(tiny_tokenizer, msgs[:k], 3072))
            assert row["input_ids"][:n] == render_prompt_ids(tiny_tokenizer, msgs[:k], 3072)
            trained = row["labels"][n] != IGNORE_INDEX
            assert trained == (turn["source"] == "scripted"), (turn, msgs[k])
    assert sum(x != IGNORE_INDEX for r in masked for x in r["labels"]) < report_all.trained_tokens


def _run(folder: Path, sources: list[str], clean: bool = True) -> Path:
    messages = [{"role": "user", "content": "Read ~/TASK.\nu@h:~$ "}]
    for k, s in enumerate(sources):
        messages += [{"role": "assistant", "content": f"echo step{k} {s}"},
                     {"role": "user", "content": f"step{k} {s}\nu@h:~$ "}]
    return write_run(folder, messages, sources=sources, clean=clean)


def _trained_commands(tokenizer, rows) -> list[str]:
    out = []
    for row in rows:
        run = []
        for tid, label in zip(row["input_ids"], row["labels"]):
            if label != IGNORE_INDEX:
                run.append(tid)
            elif run:
                out.append(tokenizer.decode(run, skip_special_tokens=True).strip())
                run = []
        if run:
            out.append(tokenizer.decode(run, skip_special_tokens=True).strip())
    return out


def test_loss_on_an_operators_corrections_only(tmp_path, tiny_tokenizer):
    """DAgger-style console data: train only where a person corrected (edited) or typed (operator)."""
    _run(tmp_path / "a", ["model", "edited", "model", "operator"])
    _run(tmp_path / "b", ["model", "model"])
    trajs, _ = load_sessions([tmp_path], make_selection())
    rows, report = build_examples(tiny_tokenizer, trajs, 3072, 10 ** 6, loss_on=["edited", "operator"])
    assert _trained_commands(tiny_tokenizer, rows) == ["echo step1 edited", "echo step3 operator"]
    assert report.sessions == 1 and report.masked_turns == 2
    assert [why for _, why in report.skipped] == ["no turn from --loss-on"]
    only_model = [t for t in trajs if t["origin"].endswith("b")]
    with pytest.raises(TrainDataError, match="no session to train on"):
        build_examples(tiny_tokenizer, only_model, 3072, 10 ** 6, loss_on=["operator"])


def test_misaligned_turns_are_an_error_naming_the_recording(tmp_path, tiny_tokenizer):
    run = _run(tmp_path / "bad", ["model", "edited"])
    traj = json.loads((run / "trajectory.json").read_text())
    traj["turns"] = traj["turns"][:1]
    (run / "trajectory.json").write_text(json.dumps(traj))
    trajs, _ = load_sessions([tmp_path], make_selection())
    with pytest.raises(TrainDataError, match=r"bad: 1 turns recorded for 2 assistant messages"):
        build_examples(tiny_tokenizer, trajs, 3072, 10 ** 6, loss_on=["edited"])


def test_an_export_keeps_the_provenance_and_train_honours_it(tmp_path, tiny_model_dir, capsys):
    _run(tmp_path / "runs" / "a", ["scripted", "detour", "scripted"])
    out = tmp_path / "demos.jsonl"
    assert teletype(["export", str(tmp_path / "runs"), "-o", str(out)]) == 0
    line = json.loads(out.read_text())
    assert line["sources"] == ["scripted", "detour", "scripted"]
    capsys.readouterr()
    assert teletype(["train", str(out), "--base", str(tiny_model_dir), "--out", str(tmp_path / "x"),
                     "--dry-run"]) == 0
    assert "1 turns are context only" in capsys.readouterr().out
    assert teletype(["train", str(out), "--base", str(tiny_model_dir), "--out", str(tmp_path / "x"),
                     "--dry-run", "--loss-on", "scripted,detour"]) == 0
    assert "context only" not in capsys.readouterr().out


def test_loss_on_names_the_bad_provenance(tmp_path, tiny_model_dir, capsys):
    _run(tmp_path / "runs" / "a", ["scripted"])
    assert teletype(["train", str(tmp_path / "runs"), "--base", str(tiny_model_dir), "--out",
                     str(tmp_path / "x"), "--loss-on", "scripted,operater"]) == 2
    err = capsys.readouterr().err
    assert "--loss-on: operater is not a provenance" in err and "detour" in err


def test_a_full_fine_tune_trains_every_weight_and_serves(tmp_path, tiny_model_dir, capsys):
    """--finetune full: the ceiling a LoRA is measured against; the whole model is written to --out."""
    from teletype.engine.policy.hf import HFPolicy

    _run(tmp_path / "runs" / "a", ["scripted", "scripted"])
    out = tmp_path / "full"
    assert teletype(["train", str(tmp_path / "runs"), "--base", str(tiny_model_dir), "--out", str(out),
                     "--finetune", "full", "--epochs", "1", "--grad-accum", "1", "--lr", "1e-3"]) == 0
    said = capsys.readouterr().out
    assert "full fine-tune:" in said and "trainable of" in said
    assert (out / "config.json").is_file() and "library_name: transformers" in (out / "README.md").read_text()
    policy = HFPolicy(base=str(out), max_new_tokens=4)
    assert policy.propose([{"role": "user", "content": "Read ~/TASK.\nu@h:~$ "}]).stats["new_tokens"] >= 0
    assert teletype(["train", str(tmp_path / "runs"), "--base", str(tiny_model_dir), "--out",
                     str(tmp_path / "m"), "--finetune", "full", "--merge"]) == 2
    assert "--merge and --gguf are for LoRA adapters" in capsys.readouterr().err
