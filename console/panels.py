"""The right-hand column: the proposal (and its editor), the checker, the budget, the outcome.

These widgets only display what they are given (attributes down); the screens decide what that is.
The editor posts `Submitted` / `Cancelled` (messages up).
"""
from __future__ import annotations

import re

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Static, TextArea

SOURCE_STYLE = {"model": "bold cyan", "edited": "bold yellow", "operator": "bold magenta",
                "scripted": "bold blue", "replay": "bold green",
                "detour": "yellow"}
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def needs_more(text: str) -> bool:
    """Would a shell ask for another line (PS2)? A trailing backslash, an open quote, an open heredoc."""
    if text.endswith("\\"):
        return True
    single = double = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and not single:
            escaped = True
        elif ch == "'" and not double:
            single = not single
        elif ch == '"' and not single:
            double = not double
    if single or double:
        return True
    lines = text.split("\n")
    for i, line in enumerate(lines):
        for m in _HEREDOC.finditer(line):
            word, strip = m.group(3), m.group(1) == "-"
            rest = [(ln.lstrip("\t") if strip else ln) for ln in lines[i + 1:]]
            if word not in rest:
                return True
    return False


class CommandEditor(TextArea):
    """Where the operator edits a proposal or types a command. Enter runs it unless the command is
    unfinished (an open quote or heredoc, a trailing backslash), as a shell would ask for more."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Run it"),
        Binding("escape", "cancel", "Cancel"),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cancelled(Message):
        pass

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter" and not needs_more(self.text):
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key == "escape":  # TextArea would move the focus away on its own
            event.stop()
            event.prevent_default()
            self.action_cancel()
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self.text))

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class ProposalPanel(Vertical):
    """The next command: as the model streams it, as the operator edits it, or typed from scratch."""

    def compose(self):
        yield Static(id="proposal-source")
        yield Static(id="proposal-text")
        yield CommandEditor(id="editor", soft_wrap=True, show_line_numbers=False, tab_behavior="indent")
        yield Static(id="proposal-hint")

    def on_mount(self) -> None:
        self.border_title = "proposal"
        self.query_one(CommandEditor).display = False

    @property
    def editor(self) -> CommandEditor:
        return self.query_one(CommandEditor)

    @property
    def editing(self) -> bool:
        return self.editor.display

    def show(self, text: str, source: str | None, *, note: str = "", hint: str = "",
             error: str = "") -> None:
        label = Text()
        if source:
            label.append(f" {source} ", style=f"reverse {SOURCE_STYLE.get(source, 'bold')}")
        if note:
            label.append(f"  {note}", style="dim")
        self.query_one("#proposal-source", Static).update(label)
        if error:
            body = Text(error, style="red")
        elif text:
            body = Text("$ ", style="dim") + Text(text, style="bold")
        else:
            body = Text("(nothing proposed)", style="dim")
        self.query_one("#proposal-text", Static).update(body)
        self.query_one("#proposal-text").display = True
        self.editor.display = False
        self.query_one("#proposal-hint", Static).update(Text(hint, style="dim"))

    def open_editor(self, text: str, source: str, hint: str) -> None:
        label = Text(f" {source} ", style=f"reverse {SOURCE_STYLE.get(source, 'bold')}")
        self.query_one("#proposal-source", Static).update(label)
        self.query_one("#proposal-text").display = False
        editor = self.editor
        editor.text = text
        editor.display = True
        editor.move_cursor(editor.document.end)
        editor.focus()
        self.query_one("#proposal-hint", Static).update(Text(hint, style="dim"))


class ChecksPanel(Static):
    """Each check, pass or fail, as of the last run of the checker."""

    def on_mount(self) -> None:
        self.border_title = "checker"
        self.show(None)

    def show(self, report: dict | None, *, when: str = "", running: bool = False) -> None:
        if report is None:
            self.update(Text("checking..." if running else "not checked yet", style="dim"))
            self.border_subtitle = ""
            return
        results = report.get("results", [])
        text = Text()
        for r in results:
            ok = r.get("passed")
            text.append("PASS " if ok else "FAIL ", style="bold green" if ok else "bold red")
            text.append(f"{r.get('kind')} {r.get('target')}")
            detail = r.get("detail") or ""
            if detail:
                text.append(f"\n     {detail}", style="dim")
            if r.get("description"):
                text.append(f"\n     {r['description']}", style="italic dim")
            text.append("\n")
        passed = sum(bool(r.get("passed")) for r in results)
        text.rstrip()
        self.update(text if results else Text("no checks", style="dim"))
        self.border_subtitle = f"{passed}/{len(results)} pass" + (f" · {when}" if when else "")
        self.set_class(bool(results) and passed == len(results), "-passed")


def bar(used: float, total: float, width: int = 24) -> Text:
    frac = 0.0 if not total else max(0.0, min(1.0, used / total))
    full = round(frac * width)
    style = "green" if frac < 0.75 else ("yellow" if frac < 0.95 else "red")
    return Text("█" * full, style=style) + Text("░" * (width - full), style="dim")


class BudgetPanel(Static):
    """Context used against the token budget, steps against the step budget, the last step's timing.

    Reads the stats of either model backend: hf (prefill_s, decode_s, cached_tokens...) or an
    OpenAI-compatible endpoint (first_token_s, latency_s)."""

    def on_mount(self) -> None:
        self.border_title = "budget"
        self.show({}, 0, 0)

    def on_resize(self) -> None:
        self.show(*self._shown)

    def show(self, stats: dict | None, steps: int, step_budget: int) -> None:
        self._shown = (stats, steps, step_budget)
        stats = stats or {}
        # The bars take what the panel leaves them after the labels and "3072/3072 tok".
        width = max(6, min(24, (self.content_region.width or 56) - 22))
        text = Text()
        used, budget = stats.get("prompt_tokens"), stats.get("budget")
        text.append("context ")
        if used is not None and budget:
            text += bar(used, budget, width)
            text.append(f" {used}/{budget} tok")
        else:
            text += bar(0, 1, width)
            text.append(f" {used} tok" if used is not None else " -", style="" if used is not None else "dim")
        text.append("\nsteps   ")
        text += bar(steps, step_budget, width)
        text.append(f" {steps}/{step_budget}")
        text.append("\nlast    ")
        parts = _timing(stats)
        text.append(" · ".join(parts) if parts else "no model timing", style="" if parts else "dim")
        trimmed = [f"{stats[k]} {label}" for k, label in (("dropped_turns", "old turns left the context"),
                                                          ("elided_outputs", "outputs elided"))
                   if stats.get(k)]
        for line in trimmed + ([stats["note"]] if stats.get("note") else []):
            text.append(f"\n        {line}", style="italic yellow")
        self.update(text)


def _timing(stats: dict) -> list[str]:
    parts = []
    new = stats.get("new_tokens")
    if stats.get("prefill_s") is not None:
        extra = []
        if stats.get("prefill_tokens") is not None:
            extra.append(f"{stats['prefill_tokens']} tok")
        if stats.get("cached_tokens"):
            extra.append(f"{stats['cached_tokens']} cached")
        parts.append(f"prefill {stats['prefill_s']:.2f} s" + (f" ({', '.join(extra)})" if extra else ""))
    elif stats.get("first_token_s") is not None:
        parts.append(f"first token {stats['first_token_s']:.2f} s")
    decode = stats.get("decode_s")
    if decode is None and stats.get("latency_s") is not None:
        decode = stats["latency_s"] - (stats.get("first_token_s") or 0.0)
    if decode is not None:
        rate = f", {new / decode:.0f} tok/s" if new and decode > 0 else ""
        parts.append(f"decode {decode:.2f} s" + (f" ({new} tok{rate})" if new is not None else ""))
    return parts


class OutcomePanel(Static):
    """The session's outcome, once it has one."""

    def on_mount(self) -> None:
        self.border_title = "outcome"
        self.show(None)

    def show(self, outcome: dict | None, *, note: str = "") -> None:
        self.set_class(outcome is not None and bool(outcome.get("clean")), "-clean")
        self.set_class(outcome is not None and not outcome.get("clean"), "-unclean")
        if outcome is None:
            self.update(Text(note or "the session is running", style="dim"))
            return
        text = Text()
        text.append(outcome["outcome"].replace("_", " "), style="bold")
        text.append(f"\nended by {outcome.get('ended_by')} after {outcome.get('steps')} steps; "
                    f"verified: {'yes' if outcome.get('verified') else 'no'}; expect {outcome.get('expect')}")
        if outcome.get("panic_reason"):
            text.append(f"\npanic: {outcome['panic_reason']}", style="italic")
        if note:
            text.append(f"\n{note}", style="dim")
        self.update(text)


class ConsoleFooter(Footer):
    """The footer, less the keys the command palette also offers when the terminal is too narrow to
    show them all (they still work; ctrl+p lists them): the session's own keys are never cut off."""

    SECONDARY = frozenset({"c", "R", "s", "w"})
    narrow = reactive(False, recompose=True)

    def compose(self):
        from textual.widgets._footer import FooterKey

        for widget in super().compose():
            if self.narrow and isinstance(widget, FooterKey) and widget.key in self.SECONDARY:
                continue
            yield widget


def fit(screen) -> None:
    """Fit the screen to the terminal's size now: its breakpoint classes (which Textual sets on the
    first resize, after the first layout: too late for a session that starts with the terminal's size),
    and a compact footer below the widest class, so that the keys a session needs stay visible."""
    width, height = screen.app.size
    classes = {}
    for breakpoints, value in ((screen.app.HORIZONTAL_BREAKPOINTS or [], width),
                               (screen.app.VERTICAL_BREAKPOINTS or [], height)):
        chosen = None
        for at, name in breakpoints:
            classes[name] = False
            if value >= at:
                chosen = name
        if chosen:
            classes[chosen] = True
    screen.update_classes(classes, animate=False)
    footer = screen.query_one(ConsoleFooter)
    footer.compact = not screen.has_class("-wide")
    footer.narrow = width < 100


def console_layout(pane, first):
    """The layout the live and replay screens share, for their compose(): the status line; the terminal
    `pane` beside a side column of `first` (the proposal, or the recorded turn), the checks, the budget
    and the outcome; the footer."""
    yield Static(id="status")
    with Horizontal(id="main"):
        yield pane
        with VerticalScroll(id="side"):
            yield first
            yield ChecksPanel(id="checks")
            yield BudgetPanel(id="budget")
            yield OutcomePanel(id="outcome")
    yield ConsoleFooter()
