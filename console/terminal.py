"""The live terminal pane: the sandbox's pty through pyte, with colours, cursor, scrollback, resize.

This is the console's hottest path (STYLE.md 5, 6). The pty reader thread only appends bytes to an
`OutputBuffer` under a lock and posts at most one pending `Output` message; the pane drains the whole
buffer per message through one incremental UTF-8 decoder, emulates for at most FEED_BUDGET_S per turn
of the event loop (so keystrokes and frames keep flowing during a flood), jump-scrolls when the
emulator falls behind (vt.JUMP_AT), and refreshes only the rows pyte marks dirty.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from teletype.console.vt import Feeder, StripRenderer, TermScreen, key_bytes, screen_text

FEED_BUDGET_S = 0.010
"""Longest stretch of emulation per turn of the event loop."""
FEED_SHARE = 0.3
"""Most of the event loop's time the emulator may take while output keeps coming and it is behind.
The rest keeps input, frames and (through the GIL) the pty reader thread going; jump-scrolling
absorbs the difference."""
CATCH_UP_SHARE = 0.8
"""The same once the output has stopped: catch up quickly, nothing else needs the time."""
SLICE_CHARS = 1024
PUMP_EVERY_S = 1 / 60
"""Shortest time between two drains of the buffer (an isolated chunk, such as an echo, is drained
at once; a stream of them is gathered)."""
FULL_FRAME_S = 1 / 15
"""While output keeps scrolling, the whole view is redrawn at most this often; isolated updates
(a command's few lines, a keystroke's echo) are drawn at once."""
HAND_BACK_KEY = "ctrl+right_square_bracket"
DECCKM = 1 << 5  # pyte stores private mode ?1 (application cursor keys) shifted by 5
BUFFER_CAP = 8 << 20
"""Bytes the reader thread may queue before it drops the oldest (the UI is stalled, not just slow)."""


class OutputBuffer:
    """Reader thread to UI: bytes appended under a lock; at most one notification pending."""

    def __init__(self, notify: Callable[[], None]):
        self._notify = notify
        self._lock = threading.Lock()
        self._data = bytearray()
        self._pending = False
        self.received = 0
        """Bytes written in all (the benchmark's measure of what the pane absorbed)."""
        self.dropped = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            self._data += data
            self.received += len(data)
            if len(self._data) > BUFFER_CAP:
                cut = self._data.find(b"\n", len(self._data) - (1 << 20))
                cut = cut + 1 if cut != -1 else len(self._data) - (1 << 20)
                self.dropped += cut
                del self._data[:cut]
            if self._pending:
                return
            self._pending = True
        self._notify()

    def take(self) -> bytes:
        with self._lock:
            data = bytes(self._data)
            self._data.clear()
            self._pending = False
        return data


class TerminalPane(ScrollView, can_focus=True):
    """A VT100/xterm screen fed from a pty (live) or from a recording (replay)."""

    DEFAULT_CSS = """
    TerminalPane { overflow-y: scroll; overflow-x: hidden; scrollbar-size-vertical: 1; }
    """

    class Output(Message):
        """Output is waiting in the buffer (posted by the reader thread; at most one queued)."""

    class Keys(Message):
        """Keystrokes for the pty, during takeover."""

        def __init__(self, data: bytes) -> None:
            super().__init__()
            self.data = data

    class HandBack(Message):
        """The operator gave the keyboard back."""

    class Resized(Message):
        """The pane's character grid changed size (the pty should follow)."""

        def __init__(self, rows: int, cols: int) -> None:
            super().__init__()
            self.rows, self.cols = rows, cols

    takeover: reactive[bool] = reactive(False)
    follow_size = True
    """Resize the emulated screen with the pane (live); a replay keeps the recorded size."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.feeder = Feeder(80, 24)
        self.buffer = OutputBuffer(self._notify)
        self.renderer = StripRenderer()
        self._seen_history = 0   # screen.history_total at the last update (-1: a new screen)
        self._seen_len = 0       # len(screen.history) then
        self._cursor = (0, 0)
        self._pump_scheduled = False
        self._next_pump = 0.0     # perf_counter before which the emulator rests
        self._last_sync = 0.0     # when the view last followed the scrollback
        self._sync_pending = False
        self._noted = 0.0
        self._note_pending = False
        self._history_cache: dict[int, Strip] = {}
        self._row_cache: dict[int, tuple] = {}   # id(pyte row) -> (row, strip)
        self._base = None
        self._resize_timer = None

    # -- the stream (any thread) --------------------------------------------------------------------
    def _notify(self) -> None:
        self.post_message(self.Output())

    def listener(self, data: bytes) -> None:
        """Hand this to the shell as a stream listener (called on the reader thread)."""
        self.buffer.write(data)

    # -- geometry ------------------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) the pane has room for."""
        region = self.scrollable_content_region
        return max(2, region.height), max(10, region.width)

    @property
    def term(self) -> TermScreen:
        """The emulated screen (pyte), with its scrollback."""
        return self.feeder.screen

    def reset(self, rows: int | None = None, cols: int | None = None) -> None:
        """A blank screen (a new session), sized to the pane unless told otherwise."""
        r, c = self.grid if self.size.width else (24, 80)
        self.buffer.take()
        self.feeder = Feeder(cols or c, rows or r)
        self._after_screen_change()

    def load_screen(self, screen: TermScreen) -> None:
        """Show a screen built elsewhere (replay builds one per step in a worker)."""
        self.feeder = Feeder(screen.columns, screen.lines, screen)
        self._after_screen_change()
        self._set_title()

    def feed_text(self, text: str) -> None:
        """Emulate text now, all of it (recordings, tests)."""
        self.feeder.add(text)
        self.feeder.feed()
        self._after_feed()

    def _after_screen_change(self) -> None:
        self._seen_history = -1
        self._history_cache.clear()
        self._row_cache.clear()
        self.border_subtitle = ""
        self._after_feed()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self._resize_timer is not None:
            self._resize_timer.stop()
        self._resize_timer = self.set_timer(0.05, self._apply_resize)

    def _apply_resize(self) -> None:
        self._resize_timer = None
        if not self.follow_size:
            self._set_title()
            return
        rows, cols = self.grid
        screen = self.feeder.screen
        if (rows, cols) != (screen.lines, screen.columns):
            screen.resize(rows, cols)
            self._after_screen_change()
        self._set_title()
        self.post_message(self.Resized(rows, cols))

    def _set_title(self) -> None:
        term = self.feeder.screen
        if self.takeover:
            self.border_title = "TAKEOVER: keys go to the shell; ctrl+] hands back"
        else:
            self.border_title = f"terminal {term.columns}x{term.lines}" + ("" if self.follow_size else " (as recorded)")

    # -- the pump (event loop) ---------------------------------------------------------------------
    def on_terminal_pane_output(self, message: Output) -> None:
        message.stop()
        if self._pump_scheduled:
            return  # a pump is due soon and will drain everything; the buffer stays quiet till then
        wait = self._next_pump - time.perf_counter()
        if wait > 0:
            self._pump_scheduled = True
            self.set_timer(wait, self.pump)
        else:
            self.pump()

    def pump(self) -> None:
        """Drain the buffer, emulate within the budget, refresh what changed; pace the next round."""
        self._pump_scheduled = False
        data = self.buffer.take()
        if data:
            before = self.feeder.skipped
            self.feeder.add(data)
            if self.feeder.skipped != before:
                self._note_skipped()
        spent = 0.0
        if self.feeder.backlog:
            t0 = time.perf_counter()
            self.feeder.feed(budget_s=FEED_BUDGET_S, slice_chars=SLICE_CHARS)
            spent = time.perf_counter() - t0
        self._after_feed()
        # Emulation takes at most FEED_SHARE of the loop: the next round waits as long as this one
        # worked, so keystrokes, frames and the pty reader thread (through the GIL) keep flowing.
        share = FEED_SHARE if data else CATCH_UP_SHARE
        rest = spent * (1 - share) / share
        # and drains at most PUMP_EVERY_S apart: a flood arrives in thousands of small reads a second
        self._next_pump = time.perf_counter() + max(rest, PUMP_EVERY_S)
        if self.feeder.backlog and not self._pump_scheduled:
            self._pump_scheduled = True
            self.set_timer(max(0.001, rest), self.pump)

    def _note_skipped(self) -> None:
        """Say how much was jump-scrolled past, at most twice a second (a border change re-lays out
        the widget, which costs as much as a dozen frames)."""
        now = time.perf_counter()
        if now - self._noted < 0.5:
            if not self._note_pending:
                self._note_pending = True
                self.set_timer(0.5 - (now - self._noted), self._note_skipped)
            return
        self._note_pending = False
        self._noted = now
        self.border_subtitle = f"jump-scrolled past {_size(self.feeder.skipped + self.buffer.dropped)}"

    def _after_feed(self) -> None:
        screen = self.feeder.screen
        hist = len(screen.history)
        total = screen.history_total
        cursor = (screen.cursor.x, screen.cursor.y)
        cache = self._row_cache
        touched = screen.take_touched()
        if len(cache) > 4 * screen.lines:
            cache.clear()
        else:
            for key in touched:
                cache.pop(key, None)
        if total != self._seen_history or self._sync_pending:
            # Output scrolled: the whole view moves. In a burst, at most FULL_FRAME_S apart (a
            # full frame costs Textual far more than emulating a screenful does).
            wait = self._last_sync + FULL_FRAME_S - time.perf_counter()
            if wait > 0 and self._seen_history >= 0:
                if not self._sync_pending:
                    self._sync_pending = True
                    self.set_timer(wait, self._sync_view)
            else:
                self._sync_view()
        else:
            dirty = screen.dirty
            if cursor != self._cursor:
                dirty.update((cursor[1], self._cursor[1]))
            for y in dirty:
                self.refresh_line(hist + y)
        screen.dirty.clear()
        self._cursor = cursor

    def _sync_view(self) -> None:
        """Scrollback grew: size the view to it, follow the end (unless the reader scrolled up), redraw."""
        self._sync_pending = False
        self._last_sync = time.perf_counter()
        screen = self.feeder.screen
        hist, total = len(screen.history), screen.history_total
        fresh = self._seen_history < 0
        follow = fresh or self.scroll_y >= self.max_scroll_y - 1
        # lines that left the front of a full scrollback: a reader scrolled up keeps their place
        gone = 0 if fresh else (total - self._seen_history) - (hist - self._seen_len)
        self._seen_history, self._seen_len = total, hist
        self.virtual_size = Size(screen.columns, hist + screen.lines)
        if follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        elif gone > 0:
            self.scroll_to(y=max(0, self.scroll_y - gone), animate=False, immediate=True)
        self.refresh()

    # -- drawing -------------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        self._base = None
        self._history_cache.clear()
        self._row_cache.clear()
        super().notify_style_update()

    @property
    def base_style(self):
        """The pane's own style (background, colour), cached: Textual computes it from every ancestor."""
        if self._base is None:
            self._base = self.rich_style
            self.renderer.set_base(self._base)
        return self._base

    def render_line(self, y: int) -> Strip:
        base = self.base_style
        screen = self.feeder.screen
        width = self.scrollable_content_region.width or screen.columns
        index = self.scroll_offset.y + y
        history = screen.history
        n = len(history)
        if index < n:
            number = screen.history_total - n + index
            strip = self._history_cache.get(number)
            if strip is None:
                strip = self.renderer.history_line(history[index], screen.columns)
                if len(self._history_cache) > 4 * screen.lines:
                    self._history_cache.clear()
                self._history_cache[number] = strip
        elif index - n < screen.lines:
            y = index - n
            row = screen.buffer[y]
            cursor = screen.cursor
            if not cursor.hidden and y == cursor.y:
                strip = self.renderer.line(row, screen.columns, cursor.x)
            else:
                # rows move up unchanged while output scrolls: a row object keeps its strip until
                # pyte marks it dirty (see _after_feed)
                cached = self._row_cache.get(id(row))
                if cached is not None and cached[0] is row:
                    strip = cached[1]
                else:
                    strip = self.renderer.line(row, screen.columns)
                    self._row_cache[id(row)] = (row, strip)
        else:
            return Strip.blank(width, base)
        return strip.adjust_cell_length(width, base)

    def text(self, history: bool = False) -> str:
        """What the screen shows (and, with history, the scrollback above it) as plain text."""
        return screen_text(self.feeder.screen, history=history)

    # -- takeover ----------------------------------------------------------------------------------
    def watch_takeover(self, on: bool) -> None:
        self.set_class(on, "-takeover")
        self._set_title()
        if on:
            self.focus()

    async def _on_key(self, event: events.Key) -> None:
        if not self.takeover:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        if event.key == HAND_BACK_KEY:
            self.post_message(self.HandBack())
            return
        data = key_bytes(event.key, event.character, DECCKM in self.feeder.screen.mode)
        if data:
            self.post_message(self.Keys(data))

    def on_paste(self, event: events.Paste) -> None:
        if self.takeover:
            event.stop()
            self.post_message(self.Keys(event.text.replace("\n", "\r").encode("utf-8")))


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.0f} KB"
