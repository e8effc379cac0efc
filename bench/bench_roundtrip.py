"""Command round trip through the sandbox pty against subprocess.run(["sh", "-c", ...]), and sandbox
start-up per backend, measured side by side in one run (this machine is shared and noisy: compare
the ratios, not the absolute numbers).

    python bench/bench_roundtrip.py [--n 200] [--backends bwrap,local,docker]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from teletype.engine.runtime.shell import Limits, Shell  # noqa: E402
from teletype.engine.sandbox import SandboxError, open_sandbox  # noqa: E402
from teletype.engine.worlds.scenario import load_scenario  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "permissions" / "deploy_exec.toml"
COMMANDS = {"true": "true", "4 KB output": "seq 1 1000"}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_subprocess(command: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", command], stdout=subprocess.PIPE, check=False)
        out.append(time.perf_counter() - t0)
    return out


def open_shell(backend: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb = open_sandbox(backend, load_scenario(SCENARIO))
    sh = Shell(sb.start(), sb.login.nonce, Limits())
    sh.login()
    return sb, sh


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--backends", default="bwrap,local,docker")
    args = ap.parse_args()
    backends = args.backends.split(",")

    print(f"round trip, median of {args.n} (interleaved per command)")
    print(f"{'command':<12} {'backend':<8} {'pty ms':>8} {'subprocess ms':>14} {'ratio':>7}")
    for backend in backends:
        try:
            sb, sh = open_shell(backend)
        except SandboxError as exc:
            print(f"{'-':<12} {backend:<8} skipped: {str(exc).splitlines()[0][:70]}")
            continue
        try:
            for label, command in COMMANDS.items():
                pty, sub = [], []
                for _ in range(args.n):  # interleave so both see the same machine load
                    t0 = time.perf_counter()
                    sh.run(command)
                    pty.append(time.perf_counter() - t0)
                    sub += time_subprocess(command, 1)
                p, s = median_ms(pty), median_ms(sub)
                print(f"{label:<12} {backend:<8} {p:8.2f} {s:14.2f} {p / s:7.2f}x")
        finally:
            sb.close()

    print("\nsandbox start-up to the first prompt, median of 10")
    base = None
    for backend in backends:
        samples = []
        try:
            for _ in range(10):
                t0 = time.perf_counter()
                sb, sh = open_shell(backend)
                samples.append(time.perf_counter() - t0)
                sb.close()
        except SandboxError as exc:
            print(f"{backend:<8} skipped: {str(exc).splitlines()[0][:70]}")
            continue
        m = median_ms(samples)
        base = base or m
        print(f"{backend:<8} {m:8.1f} ms   {m / base:6.2f}x of {backends[0]}")


if __name__ == "__main__":
    main()
