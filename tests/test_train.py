"""`teletype train`: serve-time rendering, session filters, loud failures, the adapter it writes (merge,
serving, model card), --init-adapter and the configuration. Resume, precision, the loss and the end-to-end
proof are in test_train_runs.py.

Real parts: sessions recorded in bwrap with the scripted policy, the tiny Mistral-architecture model
(tests/conftest.py), transformers' Trainer, peft, and `teletype eval` for the end-to-end check.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from trainkit import QUICK, SCENARIOS, short_session  # noqa: E402
from util import REPO, write_run  # noqa: E402

from teletype.cli import main as teletype  # noqa: E402
from teletype.engine.model.tinymodel import synthetic_conversation  # noqa: E402
from teletype.engine.policy.render import IGNORE_INDEX, render_prompt_ids  # noqa: E402
from teletype.train.config import TrainConfig  # noqa: E402
from teletype.train.data import PadCollator, TrainDataError, build_examples, load_sessions, make_selection  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_model_dir, synthetic_runs, tmp_path_factory):
    """A quickly trained adapter (with --merge) shared by the output tests."""
    out = tmp_path_factory.mktemp("trained") / "lora"
    assert teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out),
                     "--merge", *QUICK]) == 0
    return out


# -- the render contract: train ids == serve ids ---------------------------------------------------------

def assert_matches_serving(tokenizer, messages: list[dict], budget: int) -> int:
    """Each assistant turn k: its serve prompt followed by its answer and end-of-turn token(s) is a prefix of
    one example train/ built, and the labels there are exactly those answer tokens. Returns the examples."""
    rows, report = build_examples(tokenizer, [{"messages": messages, "origin": "t"}], budget, 10 ** 6)
    claimed = [set() for _ in rows]
    eos = tokenizer.eos_token
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render_prompt_ids(tokenizer, messages[:k], budget)
        hits = [(i, r) for i, r in enumerate(rows) if r["input_ids"][:len(prompt)] == prompt]
        assert hits, f"turn {k}: no training example starts with its serve prompt"
        i, row = hits[0]
        n = len(prompt)
        end = n
        while end < len(row["labels"]) and row["labels"][end] != IGNORE_INDEX:
            end += 1
        assert row["labels"][n:end] == row["input_ids"][n:end]
        assert tokenizer.decode(row["input_ids"][n:end]) == m["content"] + eos, k
        claimed[i] |= set(range(n, end))
    for row, positions in zip(rows, claimed):  # nothing else is trained: environment turns stay -100
        assert {j for j, label in enumerate(row["labels"]) if label != IGNORE_INDEX} == positions
    assert report.trained_tokens == sum(len(c) for c in claimed)
    return len(rows)


def test_training_ids_and_mask_equal_the_serve_rendering(tiny_tokenizer, recordings):
    sessions, _ = load_sessions([recordings], make_selection())
    assert len(sessions) == len(SCENARIOS)
    for traj in sessions:
        assert assert_matches_serving(tiny_tokenizer, traj["messages"], TrainConfig().budget) == 1


def test_sliding_windows_too(tiny_tokenizer):
    """A long session under a small budget slides its window: several examples, each still == serving."""
    messages = synthetic_conversation(24, seed=3)[:-1]  # end on an assistant turn
    assert assert_matches_serving(tiny_tokenizer, messages, budget=600) > 1


def test_templates_without_generation_markers(tiny_model_dir, tiny_tokenizer, synthetic_runs, tmp_path):
    """Mistral-7B-Instruct-v0.2's template has no {% generation %}: the mask comes from rendered prefixes."""
    from transformers import AutoTokenizer

    plain_dir = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain_dir)
    plain = AutoTokenizer.from_pretrained(plain_dir)
    plain.chat_template = (tiny_tokenizer.chat_template.replace("{%- generation %}", "")
                           .replace("{%- endgeneration %}", ""))
    assert "generation" not in plain.chat_template
    plain.save_pretrained(plain_dir)
    plain = AutoTokenizer.from_pretrained(plain_dir)
    sessions, _ = load_sessions([synthetic_runs], make_selection())
    marked, _ = build_examples(tiny_tokenizer, sessions, 3072, 4096)
    unmarked, _ = build_examples(plain, sessions, 3072, 4096)
    assert unmarked == marked
    for traj in sessions:
        assert_matches_serving(plain, traj["messages"], 3072)
    out = tmp_path / "lora"
    assert teletype(["train", str(synthetic_runs), "--base", str(plain_dir), "--out", str(out),
                     "--epochs", "1", "--grad-accum", "1"]) == 0
    assert (out / "adapter_model.safetensors").is_file()


def test_collator_pads_right_with_ignored_labels():
    batch = PadCollator(pad_id=7)([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
                                   {"input_ids": [4], "labels": [4]}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 7, 7]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert PadCollator(0, pad_to_multiple_of=8)([{"input_ids": [1], "labels": [1]}])["input_ids"].shape[1] == 8


# -- which sessions ---------------------------------------------------------------------------------------

@pytest.fixture
def mixed_runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "good", short_session())
    write_run(root / "good_config", short_session("ls"), archetype="config_edit")
    write_run(root / "unclean", short_session(), outcome="premature_exit", clean=False)
    write_run(root / "heldout", short_session(), split="heldout")
    write_run(root / "operator", short_session(), source="operator")
    return root


@pytest.mark.parametrize("flags, sessions", [
    ([], 3),                                   # good, good_config, operator
    (["--all"], 4),                            # + unclean
    (["--include-heldout"], 4),                # + heldout
    (["--split", "heldout"], 1),               # naming it is asking for it
    (["--split", "train"], 3),
    (["--archetype", "config_edit"], 1),
    (["--source", "scripted"], 2),
    (["--all", "--include-heldout", "--source", "scripted,operator"], 5),
])
def test_session_filters(mixed_runs, tiny_model_dir, tmp_path, capsys, flags, sessions):
    assert teletype(["train", str(mixed_runs), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                     "--dry-run", "-v", *flags]) == 0
    out = capsys.readouterr().out
    assert f"training on {sessions} sessions" in out
    if not flags:
        assert "not clean (premature_exit)" in out and "split heldout" in out
    assert not (tmp_path / "o").exists()


def test_a_run_named_twice_trains_once(mixed_runs, tiny_model_dir, tmp_path, capsys):
    assert teletype(["train", str(mixed_runs), str(mixed_runs / "good"), "--base", str(tiny_model_dir),
                     "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "training on 3 sessions" in out and "1 named twice" in out


def test_help_says_heldout_is_excluded(capsys):
    with pytest.raises(SystemExit):
        teletype(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "never a held-out split" in text and "--include-heldout" in text and "--save-steps" in text


def test_nothing_selected_says_why(mixed_runs, tiny_model_dir, tmp_path, capsys):
    rc = teletype(["train", str(mixed_runs / "unclean"), "--base", str(tiny_model_dir),
                   "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "all 1 were skipped (1 not clean (premature_exit))" in capsys.readouterr().err


def test_exported_jsonl_is_accepted(synthetic_runs, tiny_model_dir, tmp_path, capsys):
    jsonl = tmp_path / "demos.jsonl"
    assert teletype(["export", str(synthetic_runs), "-o", str(jsonl)]) == 0
    assert teletype(["train", str(jsonl), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                     "--dry-run"]) == 0
    assert "training on 3 sessions -> 3 examples" in capsys.readouterr().out


# -- loud failures ------------------------------------------------------------------------------------------

def test_a_session_with_nothing_to_train_fails_with_its_path(synthetic_runs, tiny_model_dir, tiny_tokenizer,
                                                             tmp_path, capsys):
    bad = write_run(tmp_path / "runs" / "no_answer", short_session()[:1])
    rc = teletype(["train", str(synthetic_runs), str(bad), "--base", str(tiny_model_dir),
                   "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "no assistant turn" in err
    with pytest.raises(TrainDataError, match="no_answer"):
        build_examples(tiny_tokenizer, [{"messages": short_session()[:1], "origin": str(bad)}], 3072, 4096)


def test_an_example_longer_than_max_length_is_an_error_not_a_truncation(synthetic_runs, tiny_model_dir,
                                                                        tmp_path, capsys):
    rc = teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                   "--max-length", "20"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "longer than --max-length 20" in err and str(synthetic_runs) in err


# -- outputs: adapter, merged model, card, resume -------------------------------------------------------

def test_adapter_loads_with_peft_and_merged_model_matches(trained, tiny_model_dir, tiny_tokenizer):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = torch.tensor([render_prompt_ids(tiny_tokenizer, short_session()[:1])])
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained).eval()
    merged = AutoModelForCausalLM.from_pretrained(trained / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (peft_model, merged, base))
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)  # it did learn something
    for folder in (trained, trained / "merged"):  # the saved tokenizers render the same ids
        assert render_prompt_ids(AutoTokenizer.from_pretrained(folder), short_session()[:1]) == ids[0].tolist()


def test_hf_policy_serves_the_adapter(trained, tiny_model_dir):
    from teletype.engine.policy import make_policy

    policy = make_policy("hf", base=str(tiny_model_dir), adapter=str(trained), max_new_tokens=8)
    try:
        assert policy.propose(short_session()[:1]).stats["new_tokens"] >= 0
    finally:
        policy.close()


def test_model_card(trained, synthetic_runs, tiny_model_dir):
    card = (trained / "README.md").read_text()
    assert f"base_model: {tiny_model_dir}" in card
    assert "- sessions: 3" in card and "- examples: 3" in card
    assert f"teletype train {synthetic_runs} --base {tiny_model_dir} --out {trained} --merge --epochs 2.0" in card
    assert '"lora_r": 16' in card


def test_init_adapter_starts_from_its_weights_and_shape(trained, synthetic_runs, tiny_model_dir, tmp_path, capsys):
    """--init-adapter: the run starts from the adapter's matrices (at lr ~0 it ends where it began), takes its
    rank and target modules over the flags, records it in the card, and refuses what is not a LoRA adapter."""
    from safetensors.torch import load_file

    start = load_file(trained / "adapter_model.safetensors")
    still, moved = tmp_path / "still", tmp_path / "moved"
    base = ["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--init-adapter", str(trained),
            "--lora-r", "4", "--target-modules", "q_proj", "--epochs", "1", "--grad-accum", "1"]
    assert teletype(base + ["--out", str(still), "--lr", "1e-12"]) == 0
    assert "LoRA r=16 alpha=32 on k_proj,o_proj,q_proj,v_proj" in capsys.readouterr().out
    ended = load_file(still / "adapter_model.safetensors")
    assert ended.keys() == start.keys()
    assert all((ended[k] - start[k]).abs().max() < 1e-5 for k in start)
    card = (still / "README.md").read_text()
    assert f"started from the adapter `{trained}`" in card and '"lora_r": 16' in card
    assert teletype(base + ["--out", str(moved), "--lr", "1e-2"]) == 0  # it does train: the weights move on
    changed = load_file(moved / "adapter_model.safetensors")
    assert any((changed[k] - start[k]).abs().max() > 1e-4 for k in start)

    assert teletype(base + ["--out", str(tmp_path / "x"), "--init-adapter", str(synthetic_runs)]) == 2
    err = capsys.readouterr().err
    assert f"--init-adapter {synthetic_runs}: no adapter_config.json" in err
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    assert teletype(base + ["--out", str(tmp_path / "y"), "--init-adapter", str(broken)]) == 2
    assert f"--init-adapter {broken}: cannot load" in capsys.readouterr().err
    assert teletype(base + ["--out", str(tmp_path / "z"), "--finetune", "full"]) == 2
    assert "--init-adapter starts a LoRA run" in capsys.readouterr().err


def test_checkpoints_of_an_adapter_named_by_hub_id_save_without_asking_the_hub(trained, synthetic_runs,
                                                                                 tiny_model_dir, tmp_path):
    """An --init-adapter that names its base by a hub id (as teletype-smollm2 does) keeps that name, and its
    checkpoints are saved without peft asking the hub about the base (offline: two warnings a checkpoint)."""
    import json
    import warnings

    hub_named = tmp_path / "hub-named"
    shutil.copytree(trained, hub_named)
    config_path = hub_named / "adapter_config.json"
    meta = json.loads(config_path.read_text())
    meta["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    config_path.write_text(json.dumps(meta))
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out),
                         "--init-adapter", str(hub_named), "--epochs", "1", "--grad-accum", "1",
                         "--save-steps", "1"]) == 0
    asked = [str(w.message) for w in caught if "config file" in str(w.message) or "remote file" in str(w.message)]
    assert not asked, asked
    assert len(list(out.glob("checkpoint-*"))) >= 2
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_config_defaults_are_the_reference_run_and_flags_override():
    import argparse

    from teletype.train.cli import add_arguments, command_line

    c = TrainConfig()
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.epochs, c.lr, c.batch_size, c.grad_accum, c.warmup,
            c.max_length, c.budget, c.precision) == (16, 32, 0.05, 3.0, 2e-4, 1, 8, 0.03, 4096, 3072, "auto")
    assert c.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"] and c.effective_batch() == 8
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["r", "--base", "b", "--out", "o", "--lora-r", "4", "--target-modules", "q_proj,v_proj",
                         "--group-by-length", "--precision", "bf16", "--lr", "1e-3"])
    from teletype.train.config import config_from_args

    c = config_from_args(args)
    assert (c.lora_r, c.target_modules, c.group_by_length, c.precision, c.lr) == (4, ["q_proj", "v_proj"], True,
                                                                                    "bf16", 1e-3)
    assert command_line(args) == ("teletype train r --base b --out o --lora-r 4 --target-modules q_proj,v_proj "
                                  "--lr 0.001 --group-by-length --precision bf16")


def test_module_entry_point_for_accelerate_launch():
    """`accelerate launch -m teletype.train.cli ...` runs train/cli.py as a module: it must parse on its own."""
    out = subprocess.run([sys.executable, "-m", "teletype.train.cli", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--resume" in out.stdout
