"""The teletype console: a Textual app with a live screen (console) and a replay screen (replay).

The screens hold the work: teletype.console.live drives a session through teletype.console.driver in workers;
teletype.console.replay steps through a recording. The app only picks the first screen, adds the console's
actions and the bundled scenarios to the command palette (ctrl+p), and tunes the interpreter for a
live terminal pane while it runs (GIL switch interval, a frozen start-up heap).
"""
from __future__ import annotations

import gc
import sys
from pathlib import Path

from textual.app import App, SystemCommand

from teletype.console.commands import ScenarioCommands
from teletype.console.driver import ConsoleConfig
from teletype.console.live import LiveScreen
from teletype.console.replay import ReplayScreen

SWITCH_INTERVAL = 0.001
"""Python's GIL switch interval while the console runs (default 5 ms). The pty reader thread needs
the GIL for a moment per chunk; with the default it waits up to 5 ms behind the event loop each
time, which caps what the pane can absorb during a flood (bench/bench_pane.py)."""


class ConsoleApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "teletype"
    COMMANDS = App.COMMANDS | {ScenarioCommands}
    ENABLE_COMMAND_PALETTE = True
    # The screens get one of these classes by the terminal's width (app.tcss sizes the side column by
    # them): the shell pane keeps most of the width at any size.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-medium"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    def __init__(self, config: ConsoleConfig | None = None, *, replay: str | Path | None = None):
        super().__init__()
        self.config = config or ConsoleConfig()
        self.replay_dir = Path(replay) if replay is not None else None

    def on_mount(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        if self.replay_dir is not None:
            self.push_screen(ReplayScreen(self.config, self.replay_dir))
        else:
            self.push_screen(LiveScreen(self.config))
        # Everything alive once the first screen is up (the imports, Textual's DOM and styles: ~80k
        # objects) is frozen out of garbage collection, so a full collection during a flood walks only
        # what the session made since; otherwise it stalls the event loop 40-80 ms about once a second.
        self.call_after_refresh(gc.freeze)

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        gc.unfreeze()

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        if isinstance(screen, LiveScreen):
            for title, help_text, action in (
                ("Run the proposal", "type the proposed command as one step", screen.action_run),
                ("Override", "type your own command instead of the proposal", screen.action_override),
                ("Auto mode on/off", "the model runs by itself until the session ends", screen.action_auto),
                ("Take over the keyboard", "keys go straight to the shell; ctrl+] hands back",
                 screen.action_takeover),
                ("Run the checker", "grade the current state now", screen.action_check),
                ("End with exit", "type `exit` as a step", screen.action_end_exit),
                ("End with panic", "type `panic reason` as a step", screen.action_end_panic),
                ("Restart the scenario", "finish this session and start a fresh sandbox",
                 screen.action_restart),
                ("Recording on/off", "record sessions into the runs directory", screen.action_record),
            ):
                yield SystemCommand(title, help_text, action)
