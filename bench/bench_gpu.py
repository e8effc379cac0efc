"""The 7B path: a randomly initialised Mistral-7B-architecture model through the hf policy's own code.

    python bench/bench_gpu.py                  # Mistral-7B-Instruct-v0.2's shapes, fp16, on CUDA
    python bench/bench_gpu.py --tiny           # a small model of the same architecture, on the CPU (the test)

No weights are downloaded: the model is built from its config (random weights; the speed of a forward
pass does not depend on their values), saved, and loaded by HFPolicy like any base. Measured:

1. decode at batch 1 with KV reuse: two steps of one conversation through `HFPolicy.propose` (the second
   prefills only its new turn), tok/s of the second step's decoding, against the HBM bound: weight bytes
   over the device's measured copy bandwidth (read + write of a large buffer);
2. batched decode: 8 and 32 sessions proposing at once through `SharedHF` (what `eval --jobs N` uses),
   the aggregate tok/s and its ratio to batch 1;
3. one LoRA optimiser step at the reference configuration (r=16 on q/k/v/o, batch 1 x accumulation 8,
   sequences of 4096 tokens; --tiny: 256) through teletype.train.trainer, and the projection to 3 epochs over
   1,003 trajectories (3 x ceil(1003 / 8) = 378 steps, every sequence at the full length: an upper
   bound), next to the reference run's 31 minutes on one V100.

The random model rarely emits its end-of-turn token, so the answers run to --tokens.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REFERENCE_MINUTES = 31.0       # the reference adapter's training run, one V100 (its model card)
TRAJECTORIES, EPOCHS, ACCUM = 1003, 3, 8

MISTRAL_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=32768,
                  rope_theta=1e6, sliding_window=None, rms_norm_eps=1e-5, tie_word_embeddings=False)
TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=448, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=1, head_dim=32, max_position_embeddings=8192, rope_theta=1e6,
            sliding_window=None, rms_norm_eps=1e-5, tie_word_embeddings=False)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def build(out: Path, shapes: dict, dtype, device) -> Path:
    """A random-init MistralForCausalLM of `shapes` (weights made on `device`), with the tiny tokenizer."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from teletype.engine.model.tinymodel import build_tokenizer

    tok = build_tokenizer()
    config = MistralConfig(**shapes, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        model = MistralForCausalLM(config).to(dtype)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


def copy_bandwidth(device, nbytes: int = 1 << 30) -> float:
    """Bytes per second moved by a device copy (read + write), best of 5."""
    import torch

    src = torch.empty(nbytes // 2, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = 1e9
    for _ in range(5):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def conversation(turns: int, seed: int) -> list[dict]:
    from teletype.engine.model.tinymodel import synthetic_conversation

    return synthetic_conversation(turns, seed=seed)


def decode_batch1(model_dir: Path, device, dtype, tokens: int) -> dict:
    from teletype.engine.policy.hf import HFPolicy

    policy = HFPolicy(base=str(model_dir), device=str(device), dtype=dtype, max_new_tokens=tokens)
    msgs = conversation(6, seed=1)
    first = policy.propose(msgs[:3])                                    # prefills the conversation
    second = policy.propose(msgs[:3] + [{"role": "assistant", "content": first.command or "ls"}, msgs[4]])
    st = second.stats
    weight_bytes = sum(p.numel() * p.element_size() for p in policy.model.parameters())
    policy.close()
    return {"tok_s": (st["new_tokens"] - 1) / st["decode_s"] if st["decode_s"] else float("nan"),
            "cached": st["cached_tokens"], "prefill_tokens": st["prefill_tokens"], "new": st["new_tokens"],
            "weight_bytes": weight_bytes}


def decode_batched(model_dir: Path, device, dtype, tokens: int, sessions: int) -> dict:
    from teletype.engine.policy.hfbatch import SharedHF

    shared = SharedHF(jobs=sessions, max_batch=sessions, base=str(model_dir), device=str(device), dtype=dtype,
                      max_new_tokens=tokens)
    policies = [shared.policy() for _ in range(sessions)]
    convs = [conversation(3, seed=10 + i)[:3] for i in range(sessions)]
    for p, c in zip(policies, convs):     # warm the caches one by one: prefill is not what is measured
        p.propose(c)
    results: list = [None] * sessions
    start = threading.Barrier(sessions + 1)

    def one(i):
        start.wait()
        results[i] = policies[i].propose(convs[i] + [{"role": "assistant", "content": "ls"}, conversation(3, i)[2]])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    shared.close()
    new = sum(r.stats["new_tokens"] for r in results)
    decode = max(r.stats["decode_s"] for r in results)
    return {"sessions": sessions, "tok_s": new / decode, "wall_tok_s": new / wall,
            "batches": sorted({r.stats["batch"] for r in results})}


def lora_step(model_dir: Path, length: int, checkpointing: bool) -> dict:
    """One optimiser step (ACCUM sequences of `length` tokens) through teletype.train.trainer."""
    import torch
    from transformers import AutoTokenizer

    from teletype.train.config import TrainConfig
    from teletype.train.trainer import add_lora, load_base, make_trainer, resolve_precision

    cuda = torch.cuda.is_available()
    dtype, fp16, bf16 = resolve_precision("auto", cuda)
    config = TrainConfig(epochs=1, batch_size=1, grad_accum=ACCUM, warmup=0.0, save_steps=10 ** 9,
                         logging_steps=10 ** 9, gradient_checkpointing=checkpointing)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = add_lora(load_base(str(model_dir), dtype), config)
    if cuda:
        model.to("cuda")
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(ACCUM):
        ids = torch.randint(3, len(tok), (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length,
                     "labels": [-100] * (length // 2) + ids[length // 2:]})
    with tempfile.TemporaryDirectory() as work:
        trainer = make_trainer(model, tok, rows, config, Path(work), fp16=fp16, bf16=bf16, echo=lambda *a: None)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None
    steps = EPOCHS * math.ceil(TRAJECTORIES / ACCUM)
    return {"seconds": seconds, "steps": result.global_step, "projected_min": steps * seconds / 60,
            "projected_steps": steps, "peak_gib": peak, "loss": result.training_loss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a small model of the architecture, on the CPU")
    ap.add_argument("--tokens", type=int, default=None, help="tokens per answer (default 64; --tiny 16)")
    ap.add_argument("--length", type=int, default=None, help="training sequence length (default 4096; --tiny 256)")
    ap.add_argument("--batches", default=None, help="batched session counts (default 8,32; --tiny 8)")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="for the LoRA step")
    ap.add_argument("--skip-train", action="store_true", help="decoding only")
    args = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    shapes = TINY if args.tiny else MISTRAL_7B
    tokens = args.tokens or (16 if args.tiny else 64)
    length = args.length or (256 if args.tiny else 4096)
    batches = [int(x) for x in (args.batches or ("8" if args.tiny else "8,32")).split(",")]
    name = torch.cuda.get_device_name(0) if cuda else f"cpu x{torch.get_num_threads()}"
    print(f"teletype GPU benchmark: {'tiny' if args.tiny else 'Mistral-7B'} architecture, random weights, "
          f"{str(dtype).replace('torch.', '')} on {name}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model_dir = build(Path(tmp) / "model", shapes, dtype, device)
        print(f"built and saved in {time.perf_counter() - t0:.0f} s", flush=True)
        bw = copy_bandwidth(device, (1 << 30) if cuda else (1 << 27))
        one = decode_batch1(model_dir, device, dtype, tokens)
        bound = bw / one["weight_bytes"]
        print(f"\n{'decode':<34} {'tok/s':>8} {'vs bound':>9} {'vs batch 1':>10}")
        print(f"{'batch 1, KV reused':<34} {one['tok_s']:>8.1f} {one['tok_s'] / bound:>8.2f}x {1:>9.2f}x"
              f"   ({one['cached']} cached, {one['prefill_tokens']} prefilled, {one['new']} new)")
        print(f"{'bandwidth bound':<34} {bound:>8.1f}      1.00x"
              f"   ({one['weight_bytes'] / 1e6:,.1f} MB of weights, copy {bw / 1e9:.0f} GB/s)")
        for n in batches:
            r = decode_batched(model_dir, device, dtype, tokens, n)
            print(f"{f'{n} sessions batched':<34} {r['tok_s']:>8.1f} {r['tok_s'] / bound:>8.2f}x "
                  f"{r['tok_s'] / one['tok_s']:>9.2f}x   (batch sizes {r['batches']}, "
                  f"{r['wall_tok_s']:.1f} tok/s over the wall)", flush=True)
        if not args.skip_train:
            r = lora_step(model_dir, length, args.gradient_checkpointing)
            print(f"\nLoRA r=16 q/k/v/o, batch 1 x accumulation {ACCUM}, length {length}"
                  f"{', gradient checkpointing' if args.gradient_checkpointing else ''}: one optimiser step "
                  f"{r['seconds']:.1f} s" + (f", peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] else ""))
            print(f"projected {EPOCHS} epochs x {TRAJECTORIES} trajectories = {r['projected_steps']} steps: "
                  f"{r['projected_min']:.1f} min (every sequence at {length} tokens: an upper bound); "
                  f"reference {REFERENCE_MINUTES:.0f} min on one V100: {r['projected_min'] / REFERENCE_MINUTES:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
