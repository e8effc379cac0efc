"""Eval throughput: sessions per minute for --jobs 1, 2, 4, 8, measured side by side in one run.

Scripted sessions over the bundled scenarios (each scenario copied --copies times). With
`--model M` (a preset such as teletype-smollm2, a hub id or a model directory such as the tiny test
model), the same with the hf policy on that model, over a quarter of the sessions (at least 8):
`--jobs 1` is one model with its KV cache reused step to step; more jobs share one model, each
session with its own KV cache, decoded as one batch.

    python bench/bench_eval.py [--copies 4] [--jobs 1,2,4,8] [--model M [--only-model]
                               [--max-new-tokens N]] [--steps S]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teletype.engine.eval.evaluate import run_eval  # noqa: E402
from teletype.engine.policy.options import ModelChoice, add_model_options, resolve_model  # noqa: E402
from teletype.engine.worlds.scenario import find_scenarios  # noqa: E402


def copies(n: int, root: Path) -> list[Path]:
    out = []
    for path in find_scenarios():
        for i in range(n):
            dest = root / f"{path.parent.name}" / f"{path.stem}_{i}.toml"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
            out.append(dest)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--jobs", default="1,2,4,8")
    ap.add_argument("--only-model", action="store_true", help="skip the scripted measurement")
    ap.add_argument("--steps", type=int, default=30)
    add_model_options(ap)   # the same model options as teletype eval
    args = ap.parse_args()
    model = resolve_model(args, default=None)
    choices = [] if model and args.only_model else [("scripted", ModelChoice("scripted", {}))]
    if model:
        choices.append(("hf " + Path(args.model or args.base).name, model))
    with tempfile.TemporaryDirectory() as tmp:
        paths = copies(args.copies, Path(tmp) / "scenarios")
        if model:
            paths = paths[: max(8, len(paths) // 4)]
        print(f"{len(paths)} sessions per measurement")
        print(f"{'policy':<16} {'jobs':>4} {'seconds':>8} {'sessions/min':>13} {'speed-up':>9}")
        for label, choice in choices:
            base = None
            for jobs in map(int, args.jobs.split(",")):
                out = Path(tmp) / f"ev-{label.replace(' ', '_')}-{jobs}"
                t0 = time.perf_counter()
                run_eval(paths, choice, out, jobs=jobs, steps=args.steps, progress=False)
                dt = time.perf_counter() - t0
                base = base or dt
                print(f"{label:<16} {jobs:>4} {dt:8.2f} {len(paths) / dt * 60:13.1f} {base / dt:8.2f}x")


if __name__ == "__main__":
    main()
