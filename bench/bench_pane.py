"""Terminal pane throughput and event-loop lag during a flood, side by side in one run.

Measured on a real bwrap sandbox through the engine's Session (so the pty, the reader thread and
the shell are the real ones):

  pty alone     `yes` typed at the prompt, output counted by a no-op listener (no UI): the rate the
                engine delivers without a console attached
  pyte alone    the same bytes fed to a bare pyte screen of the pane's size (one decoder)
  pane          the console app (headless, 160x48) with the same flood: bytes the pane absorbed per
                second, what it emulated and what it jump-scrolled past, the process's CPU time per
                MB, and the event loop's lag measured by a 10 ms timer that records its own lateness
  naive pane    the same pane with its time budget, pacing and jump-scroll turned off (everything
                emulated on the event loop as it arrives, every change drawn), for comparison

Then a step: `seq 1 N` executed as one command, with and without the pane attached.

    python bench/bench_pane.py [--seconds 3] [--seq 300000]
"""
from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyte  # noqa: E402

from teletype.console import terminal, vt  # noqa: E402
from teletype.console.app import ConsoleApp  # noqa: E402
from teletype.console.driver import ConsoleConfig  # noqa: E402
from teletype.engine.runtime.session import Session  # noqa: E402
from teletype.engine.worlds.scenario import find_scenarios, load_scenario  # noqa: E402

SCENARIO = "permissions/deploy_exec"
SIZE = (160, 48)


def pty_alone(seconds: float, rows: int, cols: int) -> tuple[float, bytes]:
    sc = load_scenario(find_scenarios(SCENARIO)[0])
    got: list[bytes] = []
    session = Session(sc, rows=rows, cols=cols, on_output=got.append)
    session.start()
    got.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    session.send_keys(b"yes\n")
    time.sleep(seconds)
    n = sum(map(len, got))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    session.send_keys(b"\x03")
    session.finish()
    return {"rate": n / dt, "cpu_per_mb": cpu / (n / 1e6)}, b"".join(got)


def pyte_alone(data: bytes, rows: int, cols: int, limit_s: float = 3.0) -> float:
    screen = pyte.Screen(cols, rows)
    stream = pyte.Stream(screen)
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    t0 = time.perf_counter()
    fed = 0
    for i in range(0, len(data), 16384):
        stream.feed(dec.decode(data[i:i + 16384]))
        fed += min(16384, len(data) - i)
        if time.perf_counter() - t0 > limit_s:
            break
    return fed / (time.perf_counter() - t0)


def _cursor_line(pane) -> str:
    term = pane.term
    row = term.buffer[term.cursor.y]
    return "".join(row[x].data for x in range(term.columns))


NAIVE = {  # everything emulated on the event loop as it arrives, every frame drawn
    (terminal, "FEED_BUDGET_S"): None, (terminal, "FEED_SHARE"): 1.0, (terminal, "CATCH_UP_SHARE"): 1.0,
    (terminal, "PUMP_EVERY_S"): 0.0, (terminal, "FULL_FRAME_S"): 0.0,
    (vt, "JUMP_AT"): 1 << 62, (vt, "JUMP_KEEP"): 1 << 62,
}


def pane_run(seconds: float, seq: int, naive: bool = False) -> dict:
    saved = {key: getattr(*key) for key in NAIVE}
    if naive:
        for (module, name), value in NAIVE.items():
            setattr(module, name, value)
    result: dict = {}

    async def main() -> None:
        app = ConsoleApp(ConsoleConfig(scenario=SCENARIO, policy=None, record=False))
        async with app.run_test(size=SIZE) as pilot:
            while not (getattr(app.screen, "phase", None) == "ready"):
                await pilot.pause(0.02)
            screen = app.screen
            pane, driver = screen.pane, screen.driver
            late: list[float] = []
            done = False

            async def probe() -> None:
                while not done:
                    t = time.perf_counter()
                    await asyncio.sleep(0.01)
                    late.append(time.perf_counter() - t - 0.01)

            fed0 = pane.buffer.received
            task = asyncio.create_task(probe())
            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.to_thread(driver.send_keys, b"yes\n")
            await asyncio.sleep(seconds)
            absorbed = pane.buffer.received - fed0
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            await asyncio.to_thread(driver.send_keys, b"\x03")
            t1 = time.perf_counter()
            while not _cursor_line(pane).rstrip().endswith("$"):
                await asyncio.sleep(0.01)
                if time.perf_counter() - t1 > 20:
                    break  # the naive pane may need minutes; the table says >= 20 s
            settle = time.perf_counter() - t1
            done = True
            await task
            result.update(rate=absorbed / dt, cpu_per_mb=cpu / (absorbed / 1e6), skipped=pane.feeder.skipped, absorbed=absorbed,
                          lag_p50=statistics.median(late), lag_p99=sorted(late)[int(len(late) * 0.99)],
                          lag_max=max(late), settle=settle, rows=pane.grid[0], cols=pane.grid[1])
            # a step that floods: seq, executed as one command
            if seq:
                screen.step(f"seq 1 {seq}", "operator")
                t0 = time.perf_counter()
                while screen.phase != "ready" or screen.session.steps < 1:
                    await pilot.pause(0.01)
                result["seq_s"] = time.perf_counter() - t0

    try:
        asyncio.run(main())
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)
    return result


def seq_alone(seq: int, rows: int, cols: int) -> float:
    sc = load_scenario(find_scenarios(SCENARIO)[0])
    session = Session(sc, rows=rows, cols=cols, on_output=lambda d: None)
    session.start()
    t0 = time.perf_counter()
    session.execute(f"seq 1 {seq}")
    dt = time.perf_counter() - t0
    session.finish()
    return dt


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="how long `yes` floods (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="pty-alone and pane runs, interleaved (median)")
    ap.add_argument("--seq", type=int, default=300000, help="N for the `seq 1 N` step (0: skip)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive pane (it lags by design)")
    args = ap.parse_args()

    panes, ptys = [], []
    data = b""
    for i in range(args.rounds):
        panes.append(pane_run(args.seconds, args.seq if i == 0 else 0))
        rows, cols = panes[0]["rows"], panes[0]["cols"]
        alone, got = pty_alone(args.seconds, rows, cols)
        ptys.append(alone)
        data = data or got
    pane = {k: _median(panes, k) for k in ("rate", "cpu_per_mb", "lag_p50", "lag_p99", "lag_max", "settle",
                                           "absorbed", "skipped")}
    pty_rate, pty_cpu = _median(ptys, "rate"), _median(ptys, "cpu_per_mb")
    pyte_rate = pyte_alone(data, rows, cols)
    naive = None if args.no_naive else pane_run(min(args.seconds, 1.0), 0, naive=True)
    seq_s = seq_alone(args.seq, rows, cols) if args.seq else None

    mb = 1e6
    print(f"terminal pane benchmark: `yes` typed at the prompt for {args.seconds:g} s, {cols}x{rows} pane, "
          f"bwrap sandbox, median of {args.rounds} interleaved rounds")
    print(f"{'':14}{'MB/s':>8}{'vs pty':>8}{'vs pyte':>9}{'CPU s/MB':>10}{'lag p50':>10}{'lag p99':>10}"
          f"{'lag max':>10}{'settle':>9}")
    print(f"{'pty alone':14}{pty_rate / mb:8.2f}{1:8.2f}{pty_rate / pyte_rate:9.1f}{pty_cpu:10.3f}")
    print(f"{'pyte alone':14}{pyte_rate / mb:8.2f}{pyte_rate / pty_rate:8.2f}{1:9.1f}{mb / pyte_rate:10.3f}")
    for name, r in (("pane", pane), ("naive pane", naive)):
        if r is None:
            continue
        print(f"{name:14}{r['rate'] / mb:8.2f}{r['rate'] / pty_rate:8.2f}{r['rate'] / pyte_rate:9.1f}"
              f"{r['cpu_per_mb']:10.3f}{r['lag_p50'] * 1e3:8.1f}ms{r['lag_p99'] * 1e3:8.1f}ms"
              f"{r['lag_max'] * 1e3:8.1f}ms{r['settle']:8.2f}s")
    print(f"pane: {pane['absorbed'] / mb:.1f} MB absorbed per run, {pane['skipped'] / mb:.1f} MB of it "
          f"jump-scrolled past ({pane['skipped'] / max(1, pane['absorbed']):.0%}), the rest emulated")
    print("pane rounds (MB/s): " + ", ".join(f"{r['rate'] / mb:.2f}" for r in panes)
          + "; pty alone rounds: " + ", ".join(f"{r['rate'] / mb:.2f}" for r in ptys))
    print(f"CPU s/MB is the whole process's CPU time per MB absorbed (pty alone: the engine's reader "
          f"thread): the pane costs {pane['cpu_per_mb'] / pty_cpu:.1f}x what the engine alone does. The machine's "
          f"load average was {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores).")
    if seq_s is not None:
        print(f"step `seq 1 {args.seq}`: {seq_s:.2f} s without a console, {panes[0]['seq_s']:.2f} s with the "
              f"pane ({panes[0]['seq_s'] / seq_s:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
