"""The terminal emulator behind the pane: pyte with scrollback, rendered to Textual strips.

Kept apart from the widget so the replay can build a screen in a worker thread and hand it over
whole, and so the benchmark can time pyte alone on the same data. pyte's own HistoryScreen wraps every
method call in a Python-level hook (about four times slower here); TermScreen overrides only
`index()` (the line scrolling off the top goes to the scrollback, compacted) and `resize()`.
"""
from __future__ import annotations

import codecs
import time
from collections import deque

import pyte
from pyte.screens import Margins
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

HISTORY_LINES = 5000
JUMP_AT = 256 << 10
"""Characters waiting to be emulated beyond which the pane jump-scrolls (as xterm does)."""
JUMP_KEEP = 64 << 10
"""How much of the newest backlog a jump keeps (cut at a line start). A backlog that starts with
more plain lines than this (no escape sequences) jumps already, keeping their last three
screenfuls: nothing else of them could show, and emulating them is what makes a pane lag."""

_ANSI = ["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"]
_NAMED: dict[str, int] = {name: i for i, name in enumerate(_ANSI)}
_NAMED.update({f"bright{name}": i + 8 for i, name in enumerate(_ANSI)})
_NAMED["bfightmagenta"] = 13  # pyte 0.8 spells bright magenta background this way


def _color(value: str) -> Color | None:
    if value == "default":
        return None
    number = _NAMED.get(value)
    if number is not None:
        return Color.from_ansi(number)
    try:
        return Color.parse(f"#{value}")
    except Exception:
        return None


def compact_row(row, columns: int) -> tuple:
    """A row leaving the screen as ((text, style key), ...) runs, trailing blanks dropped.

    pyte keeps a row as a dict of one Char tuple per written cell; thousands of those in the
    scrollback are hundreds of thousands of objects for the garbage collector to walk (pyte ran a
    quarter slower with 5000 such lines kept, and each full collection stalled the event loop).
    Tuples of strings and booleans are untracked by the collector and a tenth of the memory."""
    runs = []
    text: list[str] = []
    key = None
    pos = 0
    blank = row.default[1:]
    for x in sorted(row):
        if x >= columns:
            break
        char = row[x]
        if x > pos:
            if key != blank:
                if text:
                    runs.append(("".join(text), key))
                    text = []
                key = blank
            text.append(" " * (x - pos))
        k = char[1:]
        if k != key:
            if text:
                runs.append(("".join(text), key))
                text = []
            key = k
        text.append(char[0])
        pos = x + 1
    if text:
        runs.append(("".join(text), key))
    return tuple(runs)


class TermScreen(pyte.Screen):
    """A pyte screen that keeps the lines scrolled off its top (scrollback), compacted."""

    def __init__(self, columns: int, lines: int, history: int = HISTORY_LINES):
        self.history: deque = deque(maxlen=history)
        self.history_total = 0
        """Lines ever pushed to history (so a line keeps its number when the oldest leave)."""
        self.touched: set[int] = set()
        super().__init__(columns, lines)

    def index(self) -> None:
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y != bottom or top != 0:
            super().index()
            return
        # The full screen scrolls (every line of a flood): pyte moves the rows one by one in Python;
        # here the top row goes to the scrollback and the dict is rebuilt in one C-level update.
        buffer = self.buffer
        for y in self.dirty:  # rows really written so far, by identity (their positions all change)
            if y in buffer:
                self.touched.add(id(buffer[y]))
        self.dirty.clear()  # a view redraws everything when the scrollback grows
        self.history.append(compact_row(buffer[0], self.columns))
        self.history_total += 1
        rows = [buffer[y] for y in range(1, bottom + 1)]
        buffer.clear()
        buffer.update(enumerate(rows))

    def take_touched(self) -> set[int]:
        """ids of row objects written since the last call (for views that cache rendered rows)."""
        buffer = self.buffer
        touched = self.touched
        for y in self.dirty:
            if y in buffer:
                touched.add(id(buffer[y]))
        self.touched = set()
        return touched

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """As xterm: a shorter screen loses blank rows below the cursor first, and only then rows
        from the top, which go to the scrollback (pyte always deletes from the top)."""
        lines = lines or self.lines
        columns = columns or self.columns
        if (lines, columns) == (self.lines, self.columns):
            return
        if lines < self.lines:
            excess = max(0, self.cursor.y - (lines - 1))
            rows = [self.buffer[y] for y in range(self.lines)]
            for row in rows[:excess]:
                self.history.append(compact_row(row, self.columns))
                self.history_total += 1
            self.buffer.clear()
            for y, row in enumerate(rows[excess:excess + lines]):
                self.buffer[y] = row
            self.cursor.y -= excess
        if columns < self.columns:
            for row in self.buffer.values():
                for x in range(columns, self.columns):
                    row.pop(x, None)
        self.lines, self.columns = lines, columns
        self.dirty.update(range(lines))
        self.set_margins()
        self.ensure_hbounds()
        self.ensure_vbounds()


class Feeder:
    """One screen, one stream, one incremental UTF-8 decoder, and the jump-scroll rule."""

    def __init__(self, columns: int, lines: int, screen: TermScreen | None = None):
        self.screen = screen or TermScreen(columns, lines)
        self.stream = pyte.Stream(self.screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.backlog = ""
        self.skipped = 0
        """Characters dropped by jump-scrolling, in all."""

    def add(self, data: bytes | str) -> None:
        text = self._decoder.decode(data) if isinstance(data, (bytes, bytearray)) else data
        if text:
            self.backlog = self.backlog + text if self.backlog else text
        size = len(self.backlog)
        if size > JUMP_AT or (size > JUMP_KEEP and _first_escape(self.backlog, 0) > JUMP_KEEP):
            self.skipped += jump_cut(self)

    def feed(self, budget_s: float | None = None, slice_chars: int = 4096) -> int:
        """Emulate the backlog; with a budget, stop after about that many seconds. Returns chars fed."""
        if budget_s is None:
            n = len(self.backlog)
            if n:
                self.stream.feed(self.backlog)
                self.backlog = ""
            return n
        t0 = time.perf_counter()
        fed = 0
        text = self.backlog
        while fed < len(text):
            self.stream.feed(text[fed:fed + slice_chars])
            fed += slice_chars
            if time.perf_counter() - t0 >= budget_s:
                break
            time.sleep(0)  # hand the GIL to a waiting reader thread now, not at the next forced switch
        fed = min(fed, len(text))
        self.backlog = text[fed:]
        return fed


def jump_cut(feeder: Feeder) -> int:
    """Jump-scroll: drop the oldest part of the backlog; return how many characters went.

    Beyond JUMP_AT, all but the newest JUMP_KEEP characters go (cut at a line start). Then, in the
    run of plain lines that starts there (no escape sequence, no charset shift) only its last three
    screenfuls stay: plain lines can only scroll each other away, so what follows them on the screen
    is the same either way. A flood of plain text (`yes`, `seq`, `cat`) thus catches up at once, even
    when the prompt that ends it carries escape sequences."""
    text = feeder.backlog
    start = 0
    if len(text) > JUMP_AT:
        start = len(text) - JUMP_KEEP
        nl = text.find("\n", start)
        if nl != -1 and nl + 1 < len(text):
            start = nl + 1
    plain_end = _first_escape(text, start)
    cut = plain_end
    for _ in range(3 * feeder.screen.lines + 1):
        cut = text.rfind("\n", start, cut)
        if cut == -1:
            break
    if cut != -1 and cut >= start:
        start = cut + 1
    feeder.backlog = text[start:]
    return start


def _first_escape(text: str, start: int) -> int:
    ends = [i for i in (text.find("\x1b", start), text.find("\x0e", start)) if i != -1]
    return min(ends) if ends else len(text)


class StripRenderer:
    """pyte rows to Textual strips, with a cache of styles (there are few distinct ones)."""

    def __init__(self, base: Style = Style()):
        self.base = base
        self._styles: dict[tuple, Style] = {}

    def set_base(self, base: Style) -> None:
        if base != self.base:
            self.base = base
            self._styles.clear()

    def style(self, key: tuple) -> Style:
        style = self._styles.get(key)
        if style is None:
            if len(self._styles) > 4096:  # truecolor gradients: keep the cache bounded
                self._styles.clear()
            fg, bg, bold, italics, underscore, strike, reverse, blink = key
            style = self.base + Style(color=_color(fg), bgcolor=_color(bg), bold=bold or None,
                                      italic=italics or None, underline=underscore or None,
                                      strike=strike or None, reverse=reverse or None,
                                      blink=blink or None)
            self._styles[key] = style
        return style

    def history_line(self, runs: tuple, width: int) -> Strip:
        """A compacted scrollback row (see compact_row) as a strip `width` cells wide."""
        return Strip([Segment(text, self.style(key)) for text, key in runs]).adjust_cell_length(width, self.base)

    def line(self, row, width: int, cursor_x: int | None = None) -> Strip:
        """One row (pyte's dict of x -> Char) as a strip exactly `width` cells wide."""
        segments: list[Segment] = []
        text: list[str] = []
        key = None
        for x in range(width):
            char = row[x]
            k = char[1:]
            if x == cursor_x:
                k = k[:6] + (not k[6],) + k[7:]  # the cursor: reverse video
            if k != key:
                if text:
                    segments.append(Segment("".join(text), self.style(key)))
                    text = []
                key = k
            text.append(char[0])  # "" right of a wide character, which already covers two cells
        if text:
            segments.append(Segment("".join(text), self.style(key)))
        return Strip(segments).adjust_cell_length(width, self.base)


def screen_text(screen: pyte.Screen, history: bool = False) -> str:
    """The screen (and its scrollback) as plain text, trailing blanks removed; for tests and tools."""
    rows = []
    if history and isinstance(screen, TermScreen):
        rows += ["".join(text for text, _ in runs) for runs in screen.history]
    rows += screen.display
    return "\n".join(r.rstrip() for r in rows).rstrip("\n")


# Keys as the terminal sends them (xterm), for takeover. Cursor keys follow DECCKM (application mode).
_KEYS = {
    "enter": "\r", "tab": "\t", "backspace": "\x7f", "escape": "\x1b", "shift+tab": "\x1b[Z",
    "insert": "\x1b[2~", "delete": "\x1b[3~", "pageup": "\x1b[5~", "pagedown": "\x1b[6~",
    "home": "\x1b[H", "end": "\x1b[F",
    "f1": "\x1bOP", "f2": "\x1bOQ", "f3": "\x1bOR", "f4": "\x1bOS", "f5": "\x1b[15~", "f6": "\x1b[17~",
    "f7": "\x1b[18~", "f8": "\x1b[19~", "f9": "\x1b[20~", "f10": "\x1b[21~", "f11": "\x1b[23~",
    "f12": "\x1b[24~",
}
_ARROWS = {"up": "A", "down": "B", "right": "C", "left": "D"}


def key_bytes(key: str, character: str | None, app_cursor: bool = False) -> bytes | None:
    """What a terminal would send for a Textual key event; None for keys it cannot express."""
    if key in _ARROWS:
        return (("\x1bO" if app_cursor else "\x1b[") + _ARROWS[key]).encode()
    if key in _KEYS:
        return _KEYS[key].encode()
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return bytes([ord(key[5].lower()) - 96])
    special = {"ctrl+space": b"\x00", "ctrl+at": b"\x00", "ctrl+backslash": b"\x1c",
               "ctrl+right_square_bracket": b"\x1d", "ctrl+circumflex_accent": b"\x1e",
               "ctrl+underscore": b"\x1f", "ctrl+h": b"\x08"}
    if key in special:
        return special[key]
    if key.startswith("alt+") and character:
        return b"\x1b" + character.encode()
    if character and character.isprintable():
        return character.encode("utf-8")
    return None
