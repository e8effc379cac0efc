"""`teletype train` over a run's life: resume from a checkpoint exactly, bf16 training and bf16 saving, the
trained-tokens loss against transformers' own, and the end-to-end proof that an adapter trained on scripted
recordings completes those scenarios while the base does not.

Real parts: sessions recorded in bwrap with the scripted policy, the tiny Mistral-architecture model
(tests/conftest.py), transformers' Trainer, peft, and `teletype eval` for the end-to-end check.
"""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from trainkit import MEMORISE, QUICK, SCENARIOS, short_session  # noqa: E402
from util import REPO, needs_bwrap  # noqa: E402

from teletype.cli import main as teletype  # noqa: E402
from teletype.engine.model.tinymodel import synthetic_conversation  # noqa: E402
from teletype.engine.policy.render import IGNORE_INDEX, render_prompt_ids  # noqa: E402
from teletype.train.config import TrainConfig  # noqa: E402
from teletype.train.data import PadCollator, build_examples  # noqa: E402


def test_resume_continues_the_latest_checkpoint_exactly(synthetic_runs, tiny_model_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    args = ["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out), *QUICK,
            "--epochs", "3", "--grad-accum", "1", "--save-steps", "3", "--save-total-limit", "0"]
    assert teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out),
                     "--resume"]) == 2
    assert "no checkpoint-N folder" in capsys.readouterr().err
    assert teletype(args) == 0
    full = load_file(out / "adapter_model.safetensors")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]
    assert teletype(args) == 2  # a new run refuses to mix into the old checkpoints
    assert "--resume continues it" in capsys.readouterr().err
    # Interrupted after step 3: only its checkpoint is left.
    for p in (out / "checkpoint-6", out / "checkpoint-9"):
        shutil.rmtree(p)
    (out / "adapter_model.safetensors").unlink()
    assert teletype(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and "checkpoint-3" in printed and "step 4/9" in printed
    assert "step 1/9" not in printed
    resumed = load_file(out / "adapter_model.safetensors")
    assert all((full[k] - resumed[k]).abs().max() < 1e-6 for k in full)


# -- end to end: record, train, eval ----------------------------------------------------------------------

@needs_bwrap
@pytest.mark.slow
def test_adapter_completes_the_recorded_scenarios_and_the_base_does_not(recordings, tiny_model_dir, tmp_path):
    from teletype.engine.eval.evaluate import run_eval
    from teletype.engine.policy.options import ModelChoice
    from teletype.engine.runtime.shell import Limits

    out = tmp_path / "lora"
    assert teletype(["train", str(recordings), "--base", str(tiny_model_dir), "--out", str(out), *MEMORISE]) == 0
    paths = [REPO / "scenarios" / f"{name}.toml" for name in SCENARIOS]
    limits = Limits(command_timeout=3)
    results = {}
    for label, adapter in (("adapter", str(out)), ("base", None)):
        choice = ModelChoice("hf", {"base": str(tiny_model_dir), "adapter": adapter, "max_new_tokens": 48})
        summary = run_eval(paths, choice, tmp_path / label, steps=8, limits=limits, progress=False)
        results[label] = {r["scenario"]: (r["outcome"], r["verified"], r["ended_by"]) for r in summary["results"]}
    assert results["adapter"] == {name: ("success", True, "exit") for name in SCENARIOS}
    assert all(outcome != "success" for outcome, _, _ in results["base"].values())


def test_a_bf16_trained_adapter_merges_into_the_fp32_base(synthetic_runs, tiny_model_dir, tiny_tokenizer, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora-bf16"
    assert teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out), "--merge",
                     "--precision", "bf16", *QUICK]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    assert {p.dtype for p in merged.parameters()} == {torch.float32}
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).eval()
    ids = torch.tensor([render_prompt_ids(tiny_tokenizer, short_session()[:1])])
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)


def test_save_dtype_halves_the_adapter_and_it_still_serves(synthetic_runs, tiny_model_dir, tmp_path):
    from safetensors import safe_open

    from teletype.engine.policy.hf import HFPolicy

    sizes, tensors = {}, {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        assert teletype(["train", str(synthetic_runs), "--base", str(tiny_model_dir), "--out", str(out), *QUICK,
                         "--save-dtype", dtype]) == 0
        weights = out / "adapter_model.safetensors"
        with safe_open(str(weights), framework="pt") as fh:
            tensors[dtype] = {k: fh.get_tensor(k) for k in fh.keys()}
        kinds = {str(t.dtype) for t in tensors[dtype].values()}
        assert kinds == {"torch.float32" if dtype == "fp32" else "torch.bfloat16"}
        sizes[dtype] = weights.stat().st_size
        policy = HFPolicy(base=str(tiny_model_dir), adapter=str(out), max_new_tokens=8)
        assert policy.propose(short_session()[:1]).stats["new_tokens"] >= 1
    assert sizes["bf16"] < 0.6 * sizes["fp32"]

    # The same training, only rounded when written.
    worst = max(float((t - tensors["bf16"][k].float()).abs().max() / t.abs().max().clamp_min(1e-12))
                for k, t in tensors["fp32"].items())
    assert worst < 1e-2, worst


@pytest.mark.parametrize("num_items", [None, 37])
def test_the_trained_tokens_loss_equals_the_default_and_so_do_its_gradients(tiny_model_dir, tiny_tokenizer, tmp_path,
                                                                             num_items):
    """teletype's Trainer projects only the positions that carry loss onto the vocabulary: the same loss and
    gradients as transformers' own, on a padded batch of two with untrained turns between trained ones."""
    import torch
    from transformers import Trainer

    from teletype.train.trainer import TrainedTokensTrainer, add_lora, load_base, make_trainer

    sessions = [{"messages": synthetic_conversation(6, seed=s)[:-1], "source": "x"} for s in (1, 2)]
    rows, _ = build_examples(tiny_tokenizer, sessions, 3072, 10 ** 6)
    batch = PadCollator(tiny_tokenizer.pad_token_id or 0)(rows[:2])
    assert (batch["labels"] == IGNORE_INDEX).any() and (batch["attention_mask"] == 0).any()   # padded, masked
    config = TrainConfig(lora_r=4)
    model = add_lora(load_base(str(tiny_model_dir), torch.float32), config)
    trainer = make_trainer(model, tiny_tokenizer, rows, config, tmp_path, echo=lambda *a: None)
    assert isinstance(trainer, TrainedTokensTrainer) and trainer._keep_ok
    model.eval()                                  # LoRA dropout off: the same computation twice

    def loss_and_grads(compute):
        model.zero_grad()
        loss = compute(model, dict(batch), num_items_in_batch=num_items)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    ours, ours_grads = loss_and_grads(trainer.compute_loss)
    theirs, theirs_grads = loss_and_grads(lambda *a, **k: Trainer.compute_loss(trainer, *a, **k))
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6), (ours, theirs)
    assert ours_grads.keys() == theirs_grads.keys() and ours_grads
    for name in ours_grads:
        assert torch.allclose(ours_grads[name], theirs_grads[name], rtol=1e-4, atol=1e-7), name
    assert trainer.loss_is_scaled_for_ga is (num_items is not None)
