"""Eval throughput: sessions per minute for --jobs 1, 2, 4, 8, measured side by side in one run.

Scripted sessions over the bundled scenarios (each scenario copied --copies times). With
`--model DIR`, the same with the hf policy on that model (e.g. the tiny test model).

    python bench/bench_eval.py [--copies 4] [--jobs 1,2,4,8] [--model DIR]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.evaluate import run_eval  # noqa: E402
from engine.models import ModelChoice  # noqa: E402
from engine.scenario import find_scenarios  # noqa: E402


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
    ap.add_argument("--model", help="also measure the hf policy on this model directory")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    choices = [("scripted", ModelChoice("scripted", {}))]
    if args.model:
        choices.append(("hf " + Path(args.model).name, ModelChoice("hf", {"base": args.model})))
    with tempfile.TemporaryDirectory() as tmp:
        paths = copies(args.copies, Path(tmp) / "scenarios")
        if args.model:
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
