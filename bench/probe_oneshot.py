"""The one-shot competence probe (teletype.engine.eval.oneshot): each generated world's task put to a
model as a plain chat question, its answer typed into the world's sandbox and graded by the world's
checker. Models run side by side on the same worlds, and so do the reference solutions, the probe's
own check (they verify everywhere, or the probe is broken).

    python bench/probe_oneshot.py --model M [--model M2 ...] [--archetypes a,b|train|heldout|all]
                                  [--seed 40] [--n 3] [--max-new-tokens 128] [--out FILE.jsonl]

Each `--model` is a preset (teletype-smollm2 is the base with the adapter), a hub id or a model
directory (the embedded base is `python -c 'from teletype.engine.model.smollm import smollm2_dir;
print(smollm2_dir())'`; the tiny test model works too). It prints verified per archetype for each,
then the totals. Greedy decoding, as in the evals. The question comes after one worked exchange of
another task (teletype.engine.eval.oneshot.FORMAT_EXAMPLE), so that a chat model answers in
commands.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teletype.engine.errors import SandboxError  # noqa: E402
from teletype.engine.eval.oneshot import probe, reference, worlds  # noqa: E402
from teletype.engine.policy.base import PolicyError  # noqa: E402
from teletype.engine.policy.options import resolve_preset  # noqa: E402
from teletype.engine.worlds.generators import ARCHETYPES  # noqa: E402


def archetypes(spec: str) -> list[str]:
    if spec in ("train", "heldout"):
        return [a for a, split in ARCHETYPES.items() if split == spec]
    if spec == "all":
        return list(ARCHETYPES)
    return [a.strip() for a in spec.split(",") if a.strip()]


def answerer(base: str, adapter: str | None, max_new_tokens: int):
    from teletype.engine.policy.hf import HFPolicy

    policy = HFPolicy(base=base, adapter=adapter, max_new_tokens=max_new_tokens)

    def answer(chat: list[dict]) -> str:
        policy.reset()
        return policy.propose(chat).raw

    return answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="a preset, hub id or model directory (repeat)")
    ap.add_argument("--archetypes", default="all")
    ap.add_argument("--seed", type=int, default=40)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--sandbox", default="bwrap")
    ap.add_argument("--out", default=None, help="write every probe (question, answer, typed, checks) as JSONL")
    args = ap.parse_args()
    try:
        todo = worlds(archetypes(args.archetypes), args.seed, args.n)
    except ValueError as e:
        sys.exit(f"probe_oneshot: {e}")
    if not todo:
        sys.exit("probe_oneshot: no worlds to probe (--n must be 1 or more; panic is never probed)")
    runs: list[tuple[str, str | None, str | None]] = [("reference", None, None)]
    for m in args.model:
        base, adapter = resolve_preset(m, None, None)
        runs.append((Path(m).name if Path(m).is_dir() else m, str(base or m), adapter))
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    table: dict[str, dict[str, list[bool]]] = {}
    for name, b, a in runs:
        try:
            answer = answerer(b, a, args.max_new_tokens) if b else None
        except PolicyError as e:
            sys.exit(f"probe_oneshot: {e}")
        t0 = time.perf_counter()
        for arch, seed, i in todo:
            try:
                if answer is None:
                    p = probe(arch, seed, i, lambda chat, w=(arch, seed, i): reference(*w), sandbox=args.sandbox,
                              most=None)
                else:
                    p = probe(arch, seed, i, answer, sandbox=args.sandbox)
            except (PolicyError, SandboxError) as e:
                sys.exit(f"probe_oneshot: {arch}_{seed}_{i} ({name}): {e}")
            table.setdefault(arch, {}).setdefault(name, []).append(p.verified)
            if out:
                out.write(json.dumps({"model": name, **p.to_dict()}) + "\n")
                out.flush()
        print(f"{name}: {len(todo)} worlds in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    names = [r[0] for r in runs]
    width = max(len(a) for a in table) + 2
    print("one-shot verified (the task told plainly, the answer typed and checked)")
    print(f"{'archetype':<{width}}" + "".join(f"{n[:22]:>24}" for n in names))
    totals: dict[str, list[bool]] = {n: [] for n in names}
    for arch, by in table.items():
        for n in names:
            totals[n] += by[n]
        print(f"{arch:<{width}}" + "".join(f"{sum(by[n])}/{len(by[n])}".rjust(24) for n in names))
    print(f"{'all':<{width}}" + "".join(f"{sum(totals[n])}/{len(totals[n])}".rjust(24) for n in names))


if __name__ == "__main__":
    main()
