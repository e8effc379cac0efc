"""The replay eval (`teletype eval --teacher-forced`): teacher-forced exact match and loss on recordings.

The tiny Mistral-architecture model, a LoRA adapter trained by `teletype train`, and the hf policy's
own greedy decoding as the reference the teacher-forced exact match must agree with, turn by turn.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from teletype.cli import main as teletype  # noqa: E402
from teletype.engine.record.recorder import SCHEMA  # noqa: E402

COMMANDS = [["cat TASK", "touch done", "exit"], ["ls -la", "rm -f junk", "exit"],
            ["echo hi > note", "panic the host is not the one named in TASK"]]


def _write(folder: Path, commands: list[str], sources: list[str] | None = None,
           archetype: str = "cleanup") -> Path:
    folder.mkdir(parents=True)
    messages = [{"role": "user", "content": f"teletype 0.1.0 host: {folder.name} user: u shell: /bin/sh\n"
                                            f"Read ~/TASK.\nu@{folder.name}:~$ "}]
    for k, c in enumerate(commands):
        messages.append({"role": "assistant", "content": c})
        if k < len(commands) - 1:
            messages.append({"role": "user", "content": f"output {k}\nu@h:~$ "})
    sources = sources or ["scripted"] * len(commands)
    traj = {"schema": SCHEMA, "scenario": f"{archetype}/{folder.name}", "archetype": archetype, "split": "train",
            "model": "scripted", "messages": messages,
            "turns": [{"step": k + 1, "source": s} for k, s in enumerate(sources)],
            "outcome": {"outcome": "success", "clean": True, "verified": True}}
    (folder / "trajectory.json").write_text(json.dumps(traj))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf-runs")
    for i, commands in enumerate(COMMANDS):
        _write(root / f"s{i}", commands, archetype="panic" if commands[-1].startswith("panic") else "cleanup")
    return root


@pytest.fixture(scope="module")
def memorised(runs, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tf-adapter") / "lora"
    assert teletype(["train", str(runs), "--base", str(tiny_model_dir), "--out", str(out), "--epochs", "40",
                     "--lr", "1e-2", "--grad-accum", "1", "--warmup", "0", "--lora-r", "32", "--lora-dropout",
                     "0", "--logging-steps", "100"]) == 0
    return out


def _scores(runs, base, adapter=None, **kw):
    from teletype.engine.eval import teacherforced as tf

    recs, skipped = tf.load_recordings([runs])
    tokenizer, model = tf.load_model(str(base), str(adapter) if adapter else None)
    return tf.score(model, tokenizer, recs, skipped=skipped, **kw)


def test_exact_match_is_what_greedy_decoding_types(runs, tiny_model_dir, memorised):
    """Turn by turn, teacher-forced `exact` is true exactly when the hf policy, given the recorded prefix,
    types the recorded command and stops: for the base (which misses) and the memorised adapter."""
    from teletype.engine.policy.hf import HFPolicy

    agree = {True: 0, False: 0}
    for adapter in (None, memorised):
        score = _scores(runs, tiny_model_dir, adapter, max_new_tokens=24)
        policy = HFPolicy(base=str(tiny_model_dir), adapter=str(adapter) if adapter else None, max_new_tokens=24)
        for row in score.turns:
            traj = json.loads((Path(row["recording"]) / "trajectory.json").read_text())
            k = [i for i, m in enumerate(traj["messages"]) if m["role"] == "assistant"][row["step"] - 1]
            prop = policy.propose(traj["messages"][:k])
            typed = prop.raw == row["recorded"] and prop.stats["stopped"] == "eos"
            assert typed == row["exact"], (adapter, row, prop.raw)
            agree[row["exact"]] += 1
    assert agree[True] >= 6 and agree[False] >= 6   # both kinds were checked


def test_memorised_turns_score_exact_with_low_loss(runs, tiny_model_dir, memorised):
    base = _scores(runs, tiny_model_dir).to_dict()
    tuned = _scores(runs, tiny_model_dir, memorised).to_dict()
    assert tuned["turns"] == base["turns"] == 8 and tuned["sessions"] == 3
    assert tuned["exact"] == 1.0 and tuned["session_exact"] == 1.0 and base["exact"] < 0.5
    assert tuned["loss"] < 0.1 < base["loss"]
    assert set(tuned["by_step"]) == {"first", "middle", "terminal"}
    assert tuned["by_step"]["terminal"]["turns"] == 3 and tuned["by_step"]["first"]["turns"] == 3
    assert set(tuned["by_archetype"]) == {"cleanup", "panic"}


def test_a_short_max_new_tokens_cannot_be_exact(runs, tiny_model_dir, memorised):
    """The policy stops after max_new_tokens: an answer longer than that is never typed whole."""
    score = _scores(runs, tiny_model_dir, memorised, max_new_tokens=2).to_dict()
    long = [r for r in score["per_turn"] if r["recorded"].startswith("panic")]
    assert long and not any(r["exact"] for r in long)


def test_detours_are_context_and_not_scored_unless_asked(tmp_path, tiny_model_dir):
    _write(tmp_path / "d", ["lss", "ls", "exit"], ["detour", "scripted", "scripted"])
    default = _scores(tmp_path, tiny_model_dir).to_dict()
    assert default["turns"] == 2 and set(default["by_source"]) == {"scripted"}
    asked = _scores(tmp_path, tiny_model_dir, score_on=("scripted", "detour")).to_dict()
    assert asked["turns"] == 3 and asked["by_source"]["detour"]["turns"] == 1


def test_cli_prints_and_writes_the_report(runs, tiny_model_dir, memorised, tmp_path, capsys):
    prefix = tmp_path / "report" / "tf"
    assert teletype(["eval", "--teacher-forced", str(runs), "--base", str(tiny_model_dir), "--adapter",
                     str(memorised), "--report", str(prefix), "--label", "memorised", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| all turns (n=8) | 1.00 / " in out and "| step: terminal (n=3) |" in out
    data = json.loads(prefix.with_suffix(".json").read_text())
    assert data[0]["label"] == "memorised" and data[0]["exact"] == 1.0
    assert prefix.with_suffix(".md").read_text().startswith("Teacher-forced")


def test_cli_errors_name_what_is_missing(tmp_path, tiny_model_dir, capsys):
    assert teletype(["eval", "--teacher-forced", str(tmp_path)]) == 2
    assert "name the model to score" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert teletype(["eval", "--teacher-forced", str(tmp_path / "empty"), "--base", str(tiny_model_dir)]) == 2
    assert "no clean recording to score in" in capsys.readouterr().err
    assert teletype(["eval", "--teacher-forced", str(tmp_path / "nope"), "--base", str(tiny_model_dir)]) == 2
    assert "no such run directory" in capsys.readouterr().err
