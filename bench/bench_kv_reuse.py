"""KV-cache reuse in the hf policy: prefill tokens and wall time per step, reuse vs re-encoding.

A 30-step session with the tiny model (teletype.engine.model.tinymodel) on a synthetic conversation with realistic
observation sizes (mostly a few lines, some tens, now and then a couple of hundred, elided to a third of
the budget). Both policies see exactly the same prompts (the conversation's own commands are typed, not
the tiny model's babble), one reuses its KV cache from step to step, the other prefills every prompt
from scratch. Printed side by side in one run, with the ratios.

    python bench/bench_kv_reuse.py [--steps 30] [--budget 3072] [--model DIR] [--max-new-tokens 16]
                                   [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teletype.engine.model.tinymodel import build_tiny_model, synthetic_conversation  # noqa: E402
from teletype.engine.policy.hf import HFPolicy  # noqa: E402


def step(policy: HFPolicy, messages: list[dict]) -> dict:
    t0 = time.perf_counter()
    proposal = policy.propose(messages)
    return {**proposal.stats, "wall_s": time.perf_counter() - t0}


def run(policies: dict, conversation: list[dict], steps: int, repeats: int) -> dict[str, list[dict]]:
    """Each mode's rows, one per step. The modes take turns step by step (so both see the same machine
    load), the session is run `repeats` times, and each step keeps its fastest times (token counts are
    the same every time)."""
    best: dict[str, list[dict]] = {name: [] for name in policies}
    for r in range(repeats):
        for policy in policies.values():
            policy.reset()
        for k in range(steps):
            order = list(policies.items()) if (k + r) % 2 == 0 else list(policies.items())[::-1]
            for name, policy in order:
                row = step(policy, conversation[: 2 * k + 1])
                if r == 0:
                    best[name].append(row)
                else:
                    kept = best[name][k]
                    assert kept["prefill_tokens"] == row["prefill_tokens"]
                    for key in ("prefill_s", "decode_s", "wall_s"):
                        kept[key] = min(kept[key], row[key])
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--budget", type=int, default=3072)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--model", help="a model directory (default: build the tiny model in a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="runs of the session; each step keeps its best time")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_model(Path(tmp) / "tiny", seed=0)
        conversation = synthetic_conversation(args.steps, seed=args.seed)
        options = dict(base=str(model_dir), budget=args.budget, max_new_tokens=args.max_new_tokens)
        reuse_policy = HFPolicy(reuse_cache=True, **options)
        full_policy = HFPolicy(reuse_cache=False, **options)
        rows = run({"reuse": reuse_policy, "full": full_policy}, conversation, args.steps, args.repeats)
        reuse, full = rows["reuse"], rows["full"]

    print(f"model: {model_dir if args.model else 'tiny (teletype.engine.model.tinymodel)'}; budget {args.budget}; "
          f"{args.steps} steps; max_new_tokens {args.max_new_tokens}; best of {args.repeats} runs per step")
    head = (f"{'step':>4} {'prompt':>6} {'dropped':>7} | {'prefill':>7} {'cached':>6} {'prefill_s':>9} "
            f"{'wall_s':>7} | {'prefill':>7} {'prefill_s':>9} {'wall_s':>7}")
    print(f"{'':>20} | {'KV reuse':^33} | {'re-encode every step':^27}")
    print(head)
    for i, (r, f) in enumerate(zip(reuse, full), start=1):
        print(f"{i:>4} {r['prompt_tokens']:>6} {r['dropped_turns']:>7} | {r['prefill_tokens']:>7} "
              f"{r['cached_tokens']:>6} {r['prefill_s']:>9.4f} {r['wall_s']:>7.4f} | "
              f"{f['prefill_tokens']:>7} {f['prefill_s']:>9.4f} {f['wall_s']:>7.4f}")

    def total(rows, key):
        return sum(r[key] for r in rows)

    pt_r, pt_f = total(reuse, "prefill_tokens"), total(full, "prefill_tokens")
    ps_r, ps_f = total(reuse, "prefill_s"), total(full, "prefill_s")
    w_r, w_f = total(reuse, "wall_s"), total(full, "wall_s")
    slides = sum(1 for a, b in zip(reuse, reuse[1:]) if b["dropped_turns"] != a["dropped_turns"])
    print()
    print(f"{'':24}{'KV reuse':>12}{'re-encode':>12}{'ratio':>9}")
    print(f"{'prefill tokens':24}{pt_r:>12}{pt_f:>12}{pt_f / pt_r:>8.2f}x")
    print(f"{'prefill seconds':24}{ps_r:>12.3f}{ps_f:>12.3f}{ps_f / ps_r:>8.2f}x")
    print(f"{'wall seconds (propose)':24}{w_r:>12.3f}{w_f:>12.3f}{w_f / w_r:>8.2f}x")
    print(f"window slides: {slides} in {args.steps} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
