"""The training loop: transformers' Trainer over a peft LoRA model, and what is written at the end.

    model = add_lora(load_base(base, dtype), config)
    trainer = make_trainer(model, tokenizer, rows, config, out)      # PadCollator, checkpoints in OUT
    trainer.train(resume_from_checkpoint=...)                         # progress lines on stdout
    save_adapter(...); merge(...) if asked; write_model_card(...)

Precision: "auto" is fp16 weights with fp16 autocast on CUDA (peft keeps the LoRA weights in fp32,
so the gradient scaler has fp32 masters to unscale) and fp32 everywhere on CPU, where fp16 matmuls
are slow or missing. Checkpoints (`OUT/checkpoint-N`) hold the adapter, optimiser, scheduler and RNG
states; `resume=True` continues from the latest one with the same data order.

Several GPUs: `accelerate launch -m teletype.train.cli RECORDINGS --base MODEL --out DIR` runs one process per
GPU (data parallel); each renders the same examples, Trainer shards the batches, and only the main
process prints and writes the adapter and the card. The effective batch is then batch-size x
grad-accum x GPUs; lower --grad-accum to keep the reference 8.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from teletype.engine.policy.render import IGNORE_INDEX
from teletype.train.config import TrainConfig
from teletype.train.data import PadCollator, pad_id_of


class TrainError(RuntimeError):
    """Training cannot start or continue as asked (the message says what to do)."""


def resolve_precision(precision: str, cuda: bool) -> tuple[torch.dtype, bool, bool]:
    """(weights dtype, fp16 autocast, bf16 autocast) for a --precision choice on this machine."""
    if precision == "auto":
        precision = "fp16" if cuda else "fp32"
    if precision == "fp16":
        if not cuda:
            raise TrainError("--precision fp16 needs a CUDA device; on CPU use fp32 (the default) or bf16")
        return torch.float16, True, False
    if precision == "bf16":
        return torch.bfloat16, False, True
    return torch.float32, False, False


def load_base(base: str, dtype: torch.dtype):
    try:
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except Exception as exc:
        raise TrainError(f"could not load the base model {base!r}: {exc}") from exc


def init_adapter_dir(name: str) -> Path:
    """The adapter directory `--init-adapter` names (teletype-smollm2: the embedded one), or TrainError."""
    if name == "teletype-smollm2":
        from teletype.engine.policy.options import BUNDLED_ADAPTER

        return Path(BUNDLED_ADAPTER)
    path = Path(name).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise TrainError(f"--init-adapter {name}: no adapter_config.json in {path} (expected a LoRA adapter "
                         "directory, as `teletype train` writes, or teletype-smollm2)")
    return path


def load_init_adapter(model, config: TrainConfig):
    """`model` with the LoRA adapter of `config.init_adapter` loaded trainable; config takes its shape."""
    from peft import PeftModel

    path = init_adapter_dir(config.init_adapter)
    try:
        meta = json.loads((path / "adapter_config.json").read_text())
        if meta.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"it is a {meta.get('peft_type')} adapter, not LoRA")
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
    except Exception as exc:  # a torn file, another architecture's shapes, another kind of adapter
        raise TrainError(f"--init-adapter {config.init_adapter}: cannot load {path} onto this base: {exc}") from exc
    lora = peft_model.peft_config["default"]
    config.lora_r, config.lora_alpha, config.lora_dropout = int(lora.r), int(lora.lora_alpha), float(lora.lora_dropout)
    config.target_modules = sorted(lora.target_modules)
    config.init_adapter = str(path)
    for p in peft_model.parameters():  # LoRA masters in fp32, as get_peft_model keeps fresh ones
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return peft_model


def add_lora(model, config: TrainConfig):
    """Wrap `model` with fresh LoRA matrices on `config.target_modules` (all else frozen), or with the
    adapter `config.init_adapter` names, trainable."""
    from peft import LoraConfig, get_peft_model

    if config.gradient_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings: let checkpointed blocks see a grad
    if config.init_adapter:
        return saves_without_hub_lookup(load_init_adapter(model, config))
    lora = LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                      bias="none")
    try:
        return saves_without_hub_lookup(get_peft_model(model, lora))
    except ValueError as exc:  # e.g. a target module the architecture does not have
        raise TrainError(f"cannot add LoRA to this model: {exc}") from exc


def saves_without_hub_lookup(peft_model):
    """`peft_model`, whose save_pretrained (the Trainer's checkpoints, the final adapter) decides
    whether to save the embedding layers from the LoRA's own target modules.

    Left to itself (`save_embedding_layers="auto"`), peft asks the hub for the base's config.json
    whenever the adapter names its base by a hub id (an `--init-adapter` such as teletype-smollm2
    does), to see whether the vocabulary was resized; offline, that prints two warnings at every
    checkpoint. teletype never resizes the vocabulary, so the embeddings are saved exactly when the
    LoRA targets them."""
    from peft.utils.constants import EMBEDDING_LAYER_NAMES

    targets = peft_model.peft_config["default"].target_modules or []
    embeddings = any(name in EMBEDDING_LAYER_NAMES for name in targets)
    save = peft_model.save_pretrained

    def save_pretrained(*args, **kwargs):
        kwargs.setdefault("save_embedding_layers", embeddings)
        return save(*args, **kwargs)

    peft_model.save_pretrained = save_pretrained
    return peft_model


class PrintProgress(TrainerCallback):
    """One line per log: step, epoch, loss, learning rate, elapsed and remaining time."""

    def __init__(self, echo=print):
        self.echo = echo
        self.t0 = time.monotonic()
        self.first_step = 0

    def on_train_begin(self, args, state, control, **kw):
        self.t0, self.first_step = time.monotonic(), state.global_step

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        done = state.global_step - self.first_step
        elapsed = time.monotonic() - self.t0
        left = elapsed / done * (state.max_steps - state.global_step) if done else 0.0
        self.echo(f"step {state.global_step}/{state.max_steps}  epoch {logs.get('epoch', state.epoch or 0):.2f}  "
                  f"loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}  "
                  f"{elapsed:.0f}s elapsed, ~{left:.0f}s left")


def training_arguments(config: TrainConfig, out: Path, fp16: bool, bf16: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=config.epochs,
        learning_rate=config.lr,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup,  # a float in [0, 1): a share of the total steps (transformers 5)
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_grad_norm=config.max_grad_norm,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        fp16=fp16,
        bf16=bf16,
        activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit or None,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        disable_tqdm=True,  # PrintProgress prints plain lines (logs and CI stay readable)
        report_to="none",
        label_names=["labels"],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )


def _accepts_logits_to_keep(model) -> bool:
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


class TrainedTokensTrainer(Trainer):
    """A Trainer whose loss projects onto the vocabulary only the positions that carry loss.

    Why: the default loss computes logits for every position, and for SmolLM2-135M the output
    projection (576 x 49,152) is a fifth of the model's FLOPs, its log-softmax over 49,152 columns a
    pass through memory per token; in a teletype demonstration only the commands and their end of
    turn (about a tenth of the tokens) are trained. The loss is the same sum over the same tokens,
    normalised the same way (over the accumulated batch's trained tokens when the Trainer says how
    many, else over this batch's), so gradients match the default up to rounding (a test compares
    them). A model whose forward takes no `logits_to_keep` gets the default."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keep_ok = _accepts_logits_to_keep(self.model)   # False: transformers' own loss (bench_train's before)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        if return_outputs or labels is None or not self._keep_ok:
            self.loss_is_scaled_for_ga = None            # the Trainer's own rule, for its own loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # position t predicts token t + 1: its target is labels[:, t + 1]; the last position predicts nothing
        target = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
        keep = target != IGNORE_INDEX
        rest = {k: v for k, v in inputs.items() if k != "labels"}
        logits = model(**rest, logits_to_keep=keep).logits.reshape(-1, model.config.vocab_size)
        loss = torch.nn.functional.cross_entropy(logits.float(), target[keep], reduction="sum")
        if num_items_in_batch is not None:
            loss = loss / num_items_in_batch
            self.loss_is_scaled_for_ga = True            # already a share of the accumulated batch
        else:
            loss = loss / keep.sum().clamp(min=1)
            self.loss_is_scaled_for_ga = False           # a per-batch mean: the Trainer divides by the steps
        return loss


def make_trainer(model, tokenizer, rows: list[dict], config: TrainConfig, out: Path, fp16: bool = False,
                 bf16: bool = False, echo=print) -> Trainer:
    collator = PadCollator(pad_id_of(tokenizer), pad_to_multiple_of=8 if fp16 or bf16 else None)
    trainer = TrainedTokensTrainer(model=model, args=training_arguments(config, out, fp16, bf16), train_dataset=rows,
                      data_collator=collator, processing_class=tokenizer, callbacks=[PrintProgress(echo)])
    trainer.remove_callback(PrinterCallback)  # it prints raw dicts; PrintProgress replaces it
    return trainer


def checkpoint_to_resume(out: Path, resume: bool) -> str | None:
    """The checkpoint to continue from (resume) or None; refuses to mix a new run into old checkpoints."""
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if resume:
        if last is None:
            raise TrainError(f"--resume: no checkpoint-N folder in {out} to continue from")
        return last
    if last is not None:
        raise TrainError(f"{out} holds checkpoints of an earlier run ({Path(last).name}); --resume continues "
                         "it, or choose another --out")
    return None


def train_steps(examples: int, config: TrainConfig, devices: int = 1) -> int:
    """Optimiser steps the run will take (for the card and the progress line)."""
    per_epoch = max(1, math.ceil(math.ceil(examples / (config.batch_size * devices)) / config.grad_accum))
    return math.ceil(per_epoch * config.epochs)


def save_adapter(trainer: Trainer, tokenizer, out: Path, save_dtype: str = "fp32") -> None:
    """The adapter (adapter_config.json + weights) and the tokenizer it was trained with, into OUT;
    floating-point weights cast to `save_dtype` (fp32, bf16 or fp16)."""
    trainer.save_model(str(out))  # a PeftModel saves the adapter only
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        if save_dtype != "fp32":
            cast_weights(out, {"bf16": torch.bfloat16, "fp16": torch.float16}[save_dtype])


def cast_weights(out: Path, dtype: torch.dtype) -> list[Path]:
    """Rewrite OUT's *.safetensors with every floating-point tensor in `dtype` (metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    done = []
    for path in sorted(out.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        done.append(path)
    return done


def merge(base: str, adapter_dir: Path, dtype: torch.dtype, tokenizer) -> Path:
    """OUT/merged: the base with the adapter folded in (merge_and_unload), loadable without peft.

    An adapter trained on bf16 weights (--precision bf16, the fast choice on a CPU) is merged into the
    fp32 base: that is what the hf policy serves on a CPU, and bf16 would round the merged weights."""
    from peft import PeftModel

    if dtype == torch.bfloat16:
        dtype = torch.float32

    model = PeftModel.from_pretrained(load_base(base, dtype), str(adapter_dir)).merge_and_unload()
    target = adapter_dir / "merged"
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    return target


def write_model_card(out: Path, *, base: str, config: TrainConfig, report, command: str, invoked: str,
                     result: dict, merged: Path | None) -> Path:
    """OUT/README.md: what was trained on what, how, and the command that does it again."""
    import peft
    import transformers

    data = report.to_dict()
    sources = report.sources[:50]
    more = len(report.sources) - len(sources)
    full = config.finetune == "full"
    lines = [
        "---", f"library_name: {'transformers' if full else 'peft'}", f"base_model: {base}",
        f"tags: [teletype, {'full-finetune' if full else 'lora'}, sft]", "---", "",
        f"# teletype {'fine-tune' if full else 'LoRA adapter'} of `{base}`", "",
        ("Every weight of the base, fine-tuned" if full else "A LoRA adapter trained")
        + " with `teletype train` on recorded shell sessions, each rendered by "
        "`teletype.engine.policy.render` exactly as the hf policy renders it when serving (same chat template, same "
        f"{config.budget}-token context windows). Loss is on the assistant turns only (the commands, "
        "`exit`/`panic`, and the end-of-turn token).", "",
        "## Use", "", "```sh",
        *([f"teletype run SCENARIO --model {out} --budget {config.budget}",
           f"teletype eval heldout --model {out} --budget {config.budget} --out runs/eval"] if full else
          [f"teletype run SCENARIO --base {base} --adapter {out} --budget {config.budget}",
           f"teletype eval heldout --base {base} --adapter {out} --budget {config.budget} --out runs/eval"]),
        "```", "",
        "## Data", "",
        f"- sessions: {data['sessions']}", f"- examples: {data['examples']}",
        f"- tokens: {data['tokens']} ({data['trained_tokens']} trained)",
        f"- loss on the turns from: {', '.join(config.loss_on)}" + (
            f" ({data['masked_turns']} other turns are context only)" if data.get("masked_turns") else ""),
        f"- longest example: {data['longest']} tokens",
        f"- skipped sessions: {data['skipped']}" + (
            " (" + "; ".join(f"{n} {why}" for why, n in data["skipped_reasons"].items()) + ")"
            if data["skipped"] else ""),
        "", "<details><summary>recordings</summary>", "", *[f"- `{s}`" for s in sources],
        *([f"- ... and {more} more"] if more else []), "", "</details>", "",
        "## Training", "",
        f"- optimiser steps: {result.get('steps')}, final training loss: {result.get('loss')}",
        f"- runtime: {result.get('seconds')} s on {result.get('device')}",
        *([f"- started from the adapter `{config.init_adapter}` (its weights; a fresh optimiser and schedule)"]
          if config.init_adapter else []),
        f"- torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        *([f"- merged model: `{merged}`"] if merged else []), "",
        "Configuration:", "", "```json", json.dumps(config.to_dict(), indent=1), "```", "",
        "## Reproduce", "", "```sh", command, "```", "", f"Invoked as: `{invoked}`", "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
