"""The one training configuration: every knob of `teletype train`, its default, and why.

Defaults are the reference run's (the LoRA adapter over Mistral-7B-Instruct-v0.2): LoRA r=16,
alpha=32, dropout 0.05 on the attention projections, 3 epochs at 2e-4, an effective batch of 8
(1 sequence x 8 accumulation steps), 3% warmup, sequences up to 4096 tokens, fp16 on CUDA and fp32
on CPU. Each field's `help` is its documentation and also its `--flag` help in the CLI, which is
generated from this class (so the two never disagree). nanoGPT-style: read it top to bottom.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields

from teletype.engine.policy.render import DEFAULT_BUDGET

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = ATTENTION + ("gate_proj", "up_proj", "down_proj")
PROVENANCES = ("model", "edited", "operator", "scripted", "replay", "detour")
TRAINED_PROVENANCES = ("model", "edited", "operator", "scripted", "replay")
"""Every provenance but `detour` carries loss by default (see --loss-on)."""


def _f(default, help: str, **kw):
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # -- data --------------------------------------------------------------------------------------
    budget: int = _f(DEFAULT_BUDGET, "context bound in tokens, as at serve time (the renderer slides the "
                                     "window past it; use the same value as `--budget` when serving)")
    max_length: int = _f(4096, "longest training sequence in tokens. A longer example is an error naming its "
                               "recording, never a truncation: each turn's serve prompt is a prefix of its "
                               "example, so no cut keeps every trained token on the prompt it was served "
                               "with (lower --budget, here and when serving, or raise --max-length)")
    loss_on: list = _f(TRAINED_PROVENANCES, "the provenances of the assistant turns that carry loss, "
                       "comma-separated (model, edited, operator, scripted, replay, detour). The others stay "
                       "in the context, as served, with no loss: by default the detours of `--detours` "
                       "recordings; `--loss-on edited,operator` trains only on a person's corrections and "
                       "commands (DAgger-style data from the console). A recording without provenance "
                       "(an exported JSONL without `sources`) trains every turn", sep=",")
    # -- LoRA --------------------------------------------------------------------------------------
    finetune: str = _f("lora", "lora: train LoRA matrices only (the shipped kind of artefact); full: every "
                               "weight of the base (the ceiling a LoRA should approach; fp32 weights, and "
                               "the whole model is written to OUT)", choices=["lora", "full"])
    init_adapter: str = _f("", "start from this LoRA adapter's weights (a directory, or teletype-smollm2 for the "
                               "embedded one) instead of fresh matrices: its rank, alpha, dropout and target "
                               "modules are used, with a fresh optimiser and schedule. To continue training an "
                               "adapter on new recordings (more worlds, an operator's corrections); --resume "
                               "is for an interrupted run")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA scaling numerator (the update is scaled by alpha/r)")
    lora_dropout: float = _f(0.05, "dropout on the LoRA input")
    target_modules: list = _f(ATTENTION, "modules that get LoRA matrices, comma-separated (the attention "
                                         "projections by default)", sep=",")
    # -- optimisation ------------------------------------------------------------------------------
    epochs: float = _f(3.0, "passes over the training examples")
    lr: float = _f(2e-4, "peak learning rate (AdamW)")
    lr_scheduler: str = _f("linear", "learning-rate schedule after warmup (transformers' names: linear, "
                                     "cosine, constant_with_warmup, ...)")
    warmup: float = _f(0.03, "share of the optimisation steps spent warming the learning rate up from 0")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    batch_size: int = _f(1, "sequences per device per forward pass")
    grad_accum: int = _f(8, "forward passes per optimiser step (effective batch = batch-size x "
                            "grad-accum x devices)")
    group_by_length: bool = _f(False, "batch sequences of similar length together (less padding when "
                                      "--batch-size > 1; see bench/bench_train.py)")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    precision: str = _f("auto", "weights and arithmetic: auto (fp16 on CUDA with fp32 LoRA weights, fp32 on "
                                "CPU), fp16, bf16 or fp32. On a CPU with bf16 units (AMX, avx512_bf16) bf16 "
                                "trains 1.35-1.6x faster (bench/bench_train.py --flops) against a bf16-rounded "
                                "base; --merge still merges into the fp32 base",
                        choices=["auto", "fp16", "bf16", "fp32"])
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass (less memory, "
                                             "about a third slower: 0.71x measured on SmolLM2-135M)")
    seed: int = _f(0, "seed of the LoRA initialisation and the data order")
    save_dtype: str = _f("fp32", "dtype the adapter's weights are written in: fp32 (as trained), or bf16/fp16 "
                                 "for half the size (r=64 on all seven linear modules of SmolLM2-135M: 78 MB in "
                                 "fp32, 39 MB in bf16; checkpoints stay fp32)",
                         choices=["fp32", "bf16", "fp16"])
    # -- bookkeeping -------------------------------------------------------------------------------
    save_steps: int = _f(100, "save a checkpoint (adapter, optimiser, scheduler, RNG) every N optimiser steps "
                              "under OUT/checkpoint-N; --resume continues from the latest")
    save_total_limit: int = _f(2, "checkpoints kept (the oldest are deleted; 0 keeps all)")
    logging_steps: int = _f(10, "print the loss and learning rate every N optimiser steps")

    def check(self) -> None:
        """Refuse settings that cannot train (a ValueError naming the flag)."""
        for name in ("budget", "max_length", "lora_r", "lora_alpha", "batch_size", "grad_accum", "save_steps",
                     "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.epochs <= 0 or self.lr <= 0:
            raise ValueError("--epochs and --lr must be positive")
        if not 0 <= self.warmup < 1 or not 0 <= self.lora_dropout < 1:
            raise ValueError("--warmup and --lora-dropout are shares in [0, 1)")
        if not self.target_modules:
            raise ValueError("--target-modules names no module")
        if self.init_adapter and self.finetune == "full":
            raise ValueError("--init-adapter starts a LoRA run from an adapter; it cannot go with --finetune full")
        unknown = set(self.loss_on) - set(PROVENANCES)
        if unknown or not self.loss_on:
            raise ValueError(f"--loss-on: {', '.join(sorted(unknown)) or 'nothing'} is not a provenance; "
                             f"expected some of {', '.join(PROVENANCES)}")

    def effective_batch(self, devices: int = 1) -> int:
        return self.batch_size * self.grad_accum * devices

    def to_dict(self) -> dict:
        return asdict(self)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per TrainConfig field (underscores become dashes), defaulting to the field's value."""
    g = parser.add_argument_group("training configuration (defaults: the reference run)")
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                           help=meta["help"])
            continue
        if "sep" in meta:
            g.add_argument(flag, dest=f.name, default=default, metavar="A,B,...",
                           type=lambda s, sep=meta["sep"]: [x.strip() for x in s.split(sep) if x.strip()],
                           help=f"{meta['help']} (default {meta['sep'].join(default)})")
            continue
        kind = {"int": int, "float": float, "str": str}[f.type]
        g.add_argument(flag, dest=f.name, type=kind, default=default, choices=meta.get("choices"),
                       metavar=None if meta.get("choices") else f.name.split("_")[-1].upper(),
                       help=f"{meta['help']} (default {default if default != '' else 'none'})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
