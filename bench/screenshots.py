"""Render the README's screenshots from the console itself (SVG, via App.save_screenshot).

    python bench/screenshots.py [--out docs/screenshots]

Runs real sessions in bwrap: the scenario's reference solution proposes (scripted policy), one
proposal is edited, the session is replayed; the console once more in an 80x24 terminal (the layout
adapts: a narrower side column, the session's keys first in the footer). Recordings go to a temporary
directory.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from teletype.console.app import ConsoleApp  # noqa: E402
from teletype.console.driver import ConsoleConfig  # noqa: E402
from teletype.engine.policy.scripted import ScriptedPolicy  # noqa: E402

SIZE = (140, 36)


async def two_steps(app, pilot):
    """Run the first two proposals; (the live screen, ready(n): waiting with a proposal after n steps)."""
    s = app.screen

    def ready(steps):
        return s.phase == "ready" and s.proposal is not None and s.session.steps == steps

    await until(pilot, lambda: ready(0))
    for n in (1, 2):
        await pilot.press("r")
        await until(pilot, lambda n=n: ready(n))
    await pilot.pause(0.2)
    return s, ready


async def until(pilot, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the console did not get there")
        await pilot.pause(0.02)


async def live(out: Path, run: Path) -> None:
    commands = ["cat ~/ASSIGNMENTS", "ls -l ~/bin", "chmod 644 ~/bin/deploy.sh", "exit"]
    config = ConsoleConfig(policy=lambda sc: ScriptedPolicy(commands=commands), runs=run.parent,
                           record_dir=run)
    app = ConsoleApp(config)
    async with app.run_test(size=SIZE) as pilot:
        s, ready = await two_steps(app, pilot)
        app.save_screenshot(path=str(out), filename="console.svg")
        await pilot.press("e")
        s.panel.editor.text = "chmod 755 ~/bin/deploy.sh"
        await pilot.pause(0.2)
        app.save_screenshot(path=str(out), filename="console-edit.svg")
        await pilot.press("enter")
        await until(pilot, lambda: ready(3))
        await pilot.press("r")
        await until(pilot, lambda: s.phase == "ended")
        await pilot.pause(0.2)
        app.save_screenshot(path=str(out), filename="console-ended.svg")


async def small(out: Path, run: Path) -> None:
    """The console in the smallest terminal it is made for, after two steps."""
    commands = ["cat ~/ASSIGNMENTS", "ls -l ~/bin", "chmod 755 ~/bin/deploy.sh", "exit"]
    config = ConsoleConfig(policy=lambda sc: ScriptedPolicy(commands=commands), runs=run.parent,
                           record_dir=run, model_label="teletype-smollm2")
    app = ConsoleApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await two_steps(app, pilot)
        app.save_screenshot(path=str(out), filename="console-80x24.svg")


async def replay(out: Path, run: Path) -> None:
    app = ConsoleApp(ConsoleConfig(), replay=run)
    async with app.run_test(size=SIZE) as pilot:
        s = app.screen
        await until(pilot, lambda: s.shown >= 0)
        s.go(3)
        await until(pilot, lambda: s.shown == 3)
        await pilot.pause(0.2)
        app.save_screenshot(path=str(out), filename="replay.svg")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the status line shows the run directory relative to here: runs/demo
        run = Path("runs") / "demo"
        asyncio.run(live(out, run))
        asyncio.run(replay(out, run))
        asyncio.run(small(out, Path("runs") / "small"))
    for name in ("console.svg", "console-edit.svg", "console-ended.svg", "replay.svg", "console-80x24.svg"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
