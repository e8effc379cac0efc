"""The replay screen: step through a recording with the terminal as it was, and branch from a step.

Screens are rebuilt from session.cast in a worker (teletype.console.cast) and handed to the pane whole; the
newest request wins (an exclusive worker), so holding an arrow key never queues up stale frames.
"Branch here" starts a live session that re-types the first N commands (provenance `replay`) and then
hands over to the operator, or to the model when one is configured.
"""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from teletype.console.cast import Recording, load_recording
from teletype.console.driver import ConsoleConfig
from teletype.console.panels import SOURCE_STYLE, BudgetPanel, ChecksPanel, OutcomePanel, console_layout, fit
from teletype.console.status import shorten, shown_path
from teletype.console.terminal import TerminalPane
from teletype.engine.record.outcome import is_terminal


class ReplayScreen(Screen):
    BINDINGS = [
        Binding("left,k", "move(-1)", "Back", priority=True),
        Binding("right,j,space", "move(1)", "Forward", priority=True),
        Binding("home,g", "go(0)", "First", priority=True),
        Binding("end,G", "go(-1)", "Last", priority=True),
        Binding("b", "branch('operator')", "Branch → operator"),
        Binding("m", "branch('model')", "Branch → model"),
        Binding("q", "app.quit", "Quit"),
    ]

    class Built(Message):
        def __init__(self, frame: int, screen) -> None:
            super().__init__()
            self.frame, self.screen = frame, screen

    class Loaded(Message):
        def __init__(self, recording: Recording | None, error: Exception | None = None) -> None:
            super().__init__()
            self.recording, self.error = recording, error

    def __init__(self, config: ConsoleConfig, run_dir) -> None:
        super().__init__()
        self.config = config
        self.run_dir = run_dir
        self.recording: Recording | None = None
        self.frame = 0
        self.shown = -1

    def compose(self):
        yield from console_layout(TerminalPane(id="terminal"), Static(id="turn"))

    @property
    def pane(self) -> TerminalPane:
        return self.query_one(TerminalPane)

    def on_resize(self) -> None:
        fit(self)
        if self.recording is not None:
            self._show_turn()

    def on_mount(self) -> None:
        fit(self)
        self.pane.can_focus = False  # the arrow keys step through the recording, not the scrollback
        self.pane.follow_size = False  # the terminal stays the size it was recorded at
        self.query_one("#turn").border_title = "turn"
        self.query_one("#status", Static).update(Text(f" teletype replay  {shown_path(self.run_dir)}  loading..."))
        self._load()

    @work(thread=True, exit_on_error=False, exclusive=True, group="load")
    def _load(self) -> None:
        try:
            self.post_message(self.Loaded(load_recording(self.run_dir)))
        except Exception as exc:
            self.post_message(self.Loaded(None, exc))

    def on_replay_screen_loaded(self, msg: Loaded) -> None:
        if msg.recording is None:
            self.notify(f"cannot open {self.run_dir}: {msg.error}", severity="error", timeout=10)
            self.query_one("#status", Static).update(Text(f" teletype replay  {msg.error}", style="red"))
            return
        self.recording = msg.recording
        outcome = self.recording.trajectory.get("outcome")
        self.query_one(OutcomePanel).show(outcome, note="final outcome" if outcome else
                                          "no outcome recorded (the session did not finish)")
        self.go(len(self.recording.turns))

    # -- moving --------------------------------------------------------------------------------------
    def go(self, frame: int) -> None:
        if self.recording is None:
            return
        last = self.recording.frames - 1
        self.frame = max(0, min(last, frame))
        self._show_turn()
        self._build(self.frame)

    def action_move(self, delta: int) -> None:
        self.go(self.frame + delta)

    def action_go(self, frame: int) -> None:
        self.go(frame if frame >= 0 else 1 << 30)

    @work(thread=True, exit_on_error=False, exclusive=True, group="build")
    def _build(self, frame: int) -> None:
        screen = self.recording.build(frame)
        self.post_message(self.Built(frame, screen))

    def on_replay_screen_built(self, msg: Built) -> None:
        if msg.frame == self.frame:
            self.pane.load_screen(msg.screen)
            self.shown = msg.frame

    def _show_turn(self) -> None:
        rec = self.recording
        n = len(rec.turns)
        traj = rec.trajectory
        width = max(self.size.width, 40)
        status = Text(no_wrap=True, overflow="ellipsis")   # the step first: long names come after it
        status.append(" teletype replay ", style="bold reverse")
        status.append(f"  {traj.get('scenario')}", style="bold")
        status.append(f"  step {self.frame}/{n}", style="italic")
        status.append(f"  model: {shorten(str(traj.get('model')), max(12, width // 4))}")
        status.append(f"  {shorten(shown_path(rec.path), max(12, width // 4))}")
        self.query_one("#status", Static).update(status)
        text = Text()
        if self.frame == 0:
            text.append("the login (before the first command)", style="dim")
        else:
            turn = rec.turns[self.frame - 1]
            source = turn.get("source", "?")
            text.append(f" {source} ", style=f"reverse {SOURCE_STYLE.get(source, 'bold')}")
            text.append(f"  step {turn.get('step', self.frame)}\n")
            text.append("$ ", style="dim")
            text.append(turn.get("command", ""))
            if turn.get("original"):
                text.append("\nproposed: ", style="dim")
                text.append(turn["original"], style="strike dim")
            status = turn.get("status")
            if is_terminal(turn.get("command", "")):  # exit and panic: no prompt came back after them
                status_text = "ended the session" + (f" (the shell's exit status {status})"
                                                     if status is not None else "")
            else:
                status_text = "no status" if status is None else f"status {status}"
            bits = [status_text, f"{turn.get('seconds', 0):.2f} s", f"{turn.get('output_bytes', 0)} bytes"]
            if turn.get("interrupted"):
                bits.append(f"interrupted: {turn['interrupted']}")
            text.append("\n" + " · ".join(bits), style="dim")
        self.query_one("#turn", Static).update(text)
        self.query_one("#turn").border_subtitle = f"{self.frame}/{n}"
        self.query_one(ChecksPanel).show(rec.check_at(self.frame), when=f"after step {self.frame}")
        stats = rec.turns[self.frame - 1].get("stats") if self.frame else None
        self.query_one(BudgetPanel).show(stats, self.frame, int(traj.get("step_budget") or 30))

    # -- branching -----------------------------------------------------------------------------------
    def branch_commands(self) -> list[str] | None:
        """The commands a branch at this frame re-types; None when the frame is past the end."""
        if self.recording is None:
            return None
        commands = [t.get("command", "") for t in self.recording.turns[:self.frame]]
        if commands and is_terminal(commands[-1]):
            return None
        return commands

    def action_branch(self, hand_to: str) -> None:
        from teletype.console.live import LiveScreen

        commands = self.branch_commands()
        if commands is None:
            self.notify("this step ended the session; branch from an earlier one", severity="warning")
            return
        if hand_to == "model" and self.config.policy is None:
            self.notify("no model is configured (give --model, --endpoint or --policy)", severity="warning")
            return
        scenario = self.recording.scenario_spec or self.config.scenario
        self.app.push_screen(LiveScreen(self.config, scenario=scenario, replay=commands,
                                        use_policy=hand_to == "model"))
