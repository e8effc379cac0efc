"""bench/bench_gpu.py runs on the CPU with a small model of the Mistral-7B architecture (the GPU run is the
same code at full size): decoding through the hf policy, batched sessions, one LoRA step, the projection."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

REPO = Path(__file__).resolve().parent.parent


def test_bench_gpu_tiny_runs_every_part_and_prints_its_ratios():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_gpu.py"), "--tiny", "--tokens", "8",
                          "--length", "64", "--batches", "4"], capture_output=True, text=True, timeout=600,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    one = re.search(r"batch 1, KV reused\s+([\d.]+)\s+([\d.]+)x\s+1\.00x\s+\((\d+) cached, (\d+) prefilled, (\d+) new\)",
                    text)
    assert one, text
    assert float(one.group(1)) > 0 and int(one.group(3)) > 0 and int(one.group(5)) > 0  # the cache was reused
    assert re.search(r"4 sessions batched\s+[\d.]+\s+[\d.]+x\s+[\d.]+x", text), text
    assert re.search(r"one optimiser step [\d.]+ s", text), text
    projected = re.search(r"= 378 steps: ([\d.]+) min .*reference 31 min on one V100: ([\d.]+)x", text)
    assert projected and float(projected.group(1)) > 0, text
