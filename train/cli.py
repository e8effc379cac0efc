"""`teletype train`: fine-tune a LoRA adapter on recorded sessions.

    teletype train runs/ --base mistralai/Mistral-7B-Instruct-v0.2 --out adapters/v1
    teletype train demos.jsonl --base ./tiny --out /tmp/lora --epochs 20 --lr 1e-3 --merge
    teletype train runs/ --base ./tiny --out /tmp/lora --resume          # continue the latest checkpoint
    accelerate launch -m teletype.train.cli runs/ --base MODEL --out DIR           # one process per GPU

Recordings are run directories, folders of them, trajectory.json files or a `teletype export` JSONL.
Every session is rendered by teletype.engine.policy.render, exactly as the hf policy renders it when serving; train/
never builds a prompt of its own. The output directory holds the adapter (loadable with
`PeftModel.from_pretrained`, `--adapter DIR` in run/eval/console), the tokenizer, checkpoints, a model
card (README.md) with the exact command, and with --merge a merged model in DIR/merged.

Heavy imports (torch, transformers, peft) happen when the command runs, not when `teletype --help`
builds its parser.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

from teletype.train.config import TrainConfig, add_config_options, config_from_args

DESCRIPTION = """\
Fine-tune a LoRA adapter on recorded sessions, rendered exactly as at serve time (teletype.engine.policy.render: the
model's chat template, the same bounded context windows). Loss is on the assistant turns only: each
command, the final exit/panic, and the end-of-turn token.

Which sessions: by default only verified, cleanly ended ones (success, or correct_panic), and never
a held-out split, so `teletype eval heldout` stays honest; --split heldout or --include-heldout asks
for them by name. An exported JSONL is used as it is: it was filtered when exported (`teletype export`
takes the same flags and leaves held-out sessions out by default too) and carries no split."""

EPILOG = """\
examples:
  teletype train runs/ --base mistralai/Mistral-7B-Instruct-v0.2 --out adapters/v1
  teletype train runs/ --base ./tiny --out /tmp/lora --archetype cleanup,file_create --dry-run -v
  teletype train runs/ --base ./tiny --out /tmp/lora --resume
  teletype train demos.jsonl --base ./tiny --out /tmp/lora --merge
  accelerate launch -m teletype.train.cli runs/ --base MODEL --out DIR --grad-accum 2   # 4 GPUs: batch 8
"""


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recordings", nargs="+",
                   help="run directories, folders of them, trajectory.json files or an exported JSONL")
    p.add_argument("--base", required=True, metavar="MODEL", help="base model: hub id or local directory")
    p.add_argument("--out", required=True, metavar="DIR", help="where the adapter, checkpoints and card go")
    s = p.add_argument_group("which sessions (default: verified, cleanly ended, not held out)")
    s.add_argument("--all", action="store_true", help="keep sessions that did not end clean too")
    s.add_argument("--source", type=_csv, metavar="A,B", help="keep sessions whose turns all come from "
                   "these provenances (model, edited, operator, scripted, replay, detour); --loss-on chooses "
                   "the turns that carry loss within the sessions kept")
    s.add_argument("--archetype", type=_csv, metavar="A,B", help="keep only these archetypes")
    s.add_argument("--split", type=_csv, metavar="A,B", help="keep only these splits (naming heldout here "
                   "is the one way besides --include-heldout to train on held-out sessions)")
    s.add_argument("--include-heldout", action="store_true",
                   help="also train on held-out sessions (an eval on them is then no longer honest)")
    o = p.add_argument_group("run")
    o.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    o.add_argument("--merge", action="store_true",
                   help="also write the base with the adapter merged in (merge_and_unload) to OUT/merged")
    o.add_argument("--gguf", action="store_true",
                   help="also write the adapter as a GGUF LoRA (f16, for llama.cpp/Ollama) to OUT/adapter-f16.gguf")
    o.add_argument("--dry-run", action="store_true", help="render and count the data, then stop")
    o.add_argument("-v", "--verbose", action="store_true", help="list each skipped session and why")
    from teletype.engine.threads import add_threads_option

    add_threads_option(o)
    add_config_options(p)


def add_parser(sub, name: str = "train") -> None:
    p = sub.add_parser(name, help="fine-tune a LoRA adapter on recordings (serve-time rendering)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=cmd_train)


def command_line(args: argparse.Namespace) -> str:
    """The `teletype train` command that reproduces this run (non-default options only)."""
    words = ["teletype", "train", *map(str, args.recordings), "--base", str(args.base), "--out", str(args.out)]
    for flag in ("all", "include_heldout", "merge", "gguf"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    for flag in ("source", "archetype", "split"):
        if getattr(args, flag):
            words += ["--" + flag, ",".join(getattr(args, flag))]
    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else f.default_factory()
        value = getattr(args, f.name)
        if value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    return shlex.join(words)


def cmd_train(args: argparse.Namespace, echo=print) -> int:
    from teletype.engine.policy.tokens import load_chat_tokenizer
    from teletype.train.data import TrainDataError, build_examples, load_sessions, make_selection

    config = config_from_args(args)
    out = Path(args.out)
    main = _is_main()
    say = echo if main else (lambda *a, **k: None)
    try:
        config.check()
        selection = make_selection(args.all, args.source, args.archetype, args.split, args.include_heldout)
        trajectories, skipped = load_sessions(args.recordings, selection)
        tokenizer = load_chat_tokenizer(args.base)
        rows, report = build_examples(tokenizer, trajectories, config.budget, config.max_length, skipped,
                                      loss_on=config.loss_on)
    except (ValueError, TrainDataError) as exc:
        print(f"teletype train: {exc}", file=sys.stderr)
        return 2
    for line in report.lines(verbose=args.verbose):
        say(line)
    if args.dry_run:
        return 0
    return _train(args, config, out, tokenizer, rows, report, say)


def _train(args, config: TrainConfig, out: Path, tokenizer, rows, report, say) -> int:
    import torch

    from teletype.train.trainer import (
        TrainError,
        add_lora,
        checkpoint_to_resume,
        load_base,
        make_trainer,
        merge,
        resolve_precision,
        save_adapter,
        train_steps,
        write_model_card,
    )

    try:
        resume_from = checkpoint_to_resume(out, args.resume)
        cuda = torch.cuda.is_available()
        dtype, fp16, bf16 = resolve_precision(config.precision, cuda)
        from transformers import set_seed

        set_seed(config.seed)  # the LoRA matrices are drawn in add_lora, before the Trainer seeds anything
        if config.finetune == "full":
            if args.merge or getattr(args, "gguf", False):
                raise TrainError("--merge and --gguf are for LoRA adapters; --finetune full writes the "
                                 "whole model to --out")
            dtype = torch.float32 if dtype == torch.bfloat16 else dtype  # fp32 master weights, bf16 autocast
            model = load_base(args.base, dtype)
        else:
            model = add_lora(load_base(args.base, dtype), config)
    except TrainError as exc:
        print(f"teletype train: {exc}", file=sys.stderr)
        return 2
    if config.finetune == "full":
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        what = "full fine-tune"
    else:
        trainable, total = model.get_nb_trainable_parameters()
        what = f"LoRA r={config.lora_r} alpha={config.lora_alpha} on {','.join(config.target_modules)}"
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    say(f"{what}: "
        f"{trainable:,} trainable of {total:,} parameters; {str(dtype).replace('torch.', '')} on {device}; "
        f"~{train_steps(len(rows), config)} optimiser steps (effective batch {config.effective_batch()})"
        + (f"; resuming {resume_from}" if resume_from else ""))
    out.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(model, tokenizer, rows, config, out, fp16=fp16, bf16=bf16, echo=say)
    t0 = time.monotonic()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = round(time.monotonic() - t0, 1)
    save_adapter(trainer, tokenizer, out, config.save_dtype)
    if not trainer.is_world_process_zero():
        return 0
    merged = None
    if args.merge:
        merged = merge(args.base, out, dtype, tokenizer)
    if getattr(args, "gguf", False):
        from teletype.engine.model.gguflora import convert

        say(f"GGUF LoRA in {convert(out, out / 'adapter-f16.gguf', base=args.base)}")
    summary = {"steps": result.global_step, "loss": round(result.training_loss, 4), "seconds": seconds,
               "device": device}
    write_model_card(out, base=args.base, config=config, report=report, command=command_line(args),
                     invoked=shlex.join(sys.argv), result=summary, merged=merged)
    say(f"trained {result.global_step} steps in {seconds}s (loss {summary['loss']}); adapter in {out}"
        + (f", merged model in {merged}" if merged else ""))
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    """`python -m teletype.train.cli ...` (what `accelerate launch -m teletype.train.cli` runs on each process)."""
    p = argparse.ArgumentParser(prog="teletype train", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    from teletype.engine.threads import ThreadsError, configure

    try:
        configure("train", override=args.threads)  # before torch is imported
    except ThreadsError as exc:
        print(f"teletype train: {exc}", file=sys.stderr)
        return 2
    return cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
