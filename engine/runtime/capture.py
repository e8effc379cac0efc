"""What one command printed: the bytes kept of it, the prompt markers found in it, and the text the
model reads of it.

shell.py decides *when* a command is over (from the shell's own state); this module holds what is
seen on the way, and turns a finished command's bytes into an Observation. Nothing here blocks or
touches the terminal, so all of it is called with the Shell's lock held.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from teletype.engine.runtime.printout import elide_middle, printout
from teletype.engine.sandbox.base import LOGIN_OSC, PS1_OSC, PS2_OSC

PROMPT_CHARS = 256
"""Longest prompt line kept whole; text before it on the same line counts as output."""


@dataclass
class Observation:
    """The outcome of typing one command."""

    text: str
    """What the model reads: the output as a teletype prints it, notes, then the next prompt."""
    status: int | None = None
    """Exit status from the prompt marker (None when the shell did not come back)."""
    interrupted: str | None = None
    """Why the command was interrupted: timeout, input, flood, incomplete, too_long, prompt_lost
    (the command took the prompt away and teletype set it again); None if it finished."""
    ended: bool = False
    """The shell is gone (exit, panic, or killed)."""
    exit_code: int | None = None
    """When the shell is gone: its exit status (128 + N when signal N ended it), if known."""
    output_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Capture:
    """Bytes of the current command: its first and last part, and a count of what fell between."""

    HEAD = 64 << 10
    TAIL = 64 << 10

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.TAIL:
                cut = len(self.tail) - self.TAIL
                self.dropped += cut
                del self.tail[:cut]

    def bytes(self) -> tuple[bytes, int]:
        return bytes(self.head) + bytes(self.tail), self.dropped


_NUM = rb"(-?\d+)"


class Markers:
    """The prompt markers of one session's nonce seen on the stream, as (stream offset where the
    marker ends, kind, value) in stream order. Kinds: ps1 (its value is `$?`), ps2, login.

    A marker split across two chunks is found when its end arrives; one is never recorded twice,
    nor out of order. Whether a marker *counts* is the Shell's decision, not this log's."""

    def __init__(self, nonce: str) -> None:
        n = re.escape(nonce.encode())
        self._rx = (("ps1", re.compile(rb"\x1b\]%d;%s;%s\x07" % (PS1_OSC, n, _NUM))),
                    ("ps2", re.compile(rb"\x1b\]%d;%s\x07" % (PS2_OSC, n))),
                    ("login", re.compile(rb"\x1b\]%d;%s\x07" % (LOGIN_OSC, n))))
        self.login = self._rx[2][1]
        self._tail = b""
        self.events: list[tuple[int, str, bytes]] = []
        self._offsets: list[int] = []

    def scan(self, data: bytes, total: int) -> None:
        """Record the markers that end in `data`, a chunk that starts at stream offset `total`."""
        window = self._tail + data
        base = total - len(self._tail)
        found = []
        for kind, rx in self._rx:
            for m in rx.finditer(window):
                end = base + m.end()
                if end <= total:
                    continue  # it ended in the previous chunk: seen then already
                found.append((end, kind, m.group(1) if m.groups() else b""))
        for ev in sorted(found):
            if self._offsets and ev[0] < self._offsets[-1]:
                continue  # never out of order
            self.events.append(ev)
            self._offsets.append(ev[0])
        self._tail = window[-128:]

    def clear(self) -> None:
        """Forget every marker seen so far (those before a command can never end it)."""
        self.events.clear()
        self._offsets.clear()

    def first_after(self, offset: int, kinds: tuple[str, ...]) -> tuple[int, str, bytes] | None:
        for i in range(bisect.bisect_right(self._offsets, offset), len(self.events)):
            if self.events[i][1] in kinds:
                return self.events[i]
        return None

    def last_after(self, offset: int, kinds: tuple[str, ...]) -> tuple[int, str, bytes] | None:
        first = bisect.bisect_right(self._offsets, offset)
        for i in range(len(self.events) - 1, first - 1, -1):
            if self.events[i][1] in kinds:
                return self.events[i]
        return None


def observation(raw: bytes, dropped: int, notes: list[str], first_line: str, *, limit: int,
                final: bool = False, typed_ahead: bool = False, hide: bytes | None = None) -> Observation:
    """What the model reads of a command's captured bytes `raw` (`dropped` bytes fell out of their
    middle): the output without the echo of what was typed, elided to `limit` characters, then the
    notes, then the prompt (none when `final`: the shell is gone). `hide` is a line teletype typed
    itself (setting the prompt again), which is not the model's output."""
    if hide is not None:
        at = raw.find(hide)
        if at >= 0:
            nl = raw.find(b"\n", at)
            raw = raw[:at] + (raw[nl + 1:] if nl >= 0 else b"")
    # The terminal echoes the first typed line; the model already knows what it typed. Output
    # from background jobs may come before the echo: keep it, drop only the echo itself.
    echo = first_line.encode("utf-8") + b"\r\n"
    at = raw.find(echo) if first_line else -1
    if at >= 0:
        body = raw[:at] + raw[at + len(echo):]
    else:
        # No exact echo: a line editor redrew it (busybox ash past the right margin), or echo is
        # off for this line (ash does not edit, and so does not echo, under `stty -echo`). Drop
        # the first line only if it shows what was typed.
        nl = raw.find(b"\n")
        first = printout(raw[:nl].decode("utf-8", "replace")).rstrip() if nl >= 0 else ""
        tail = first_line.rstrip()[-16:]
        # A person types ahead of the shell (takeover): the start of the line was echoed before
        # the prompt, so the echo here is the rest of it.
        partial = typed_ahead and first.strip() and first_line.rstrip().endswith(first.strip())
        if nl >= 0 and (not tail or first.endswith(tail) or partial):
            body = raw[nl + 1:]
        else:
            body = raw if first_line else (raw[nl + 1:] if nl >= 0 else b"")
    text = printout(body.decode("utf-8", "replace"))
    if final:
        output, prompt = text, ""
    else:
        output, prompt = split_prompt(text)
    output = elide_middle(output, limit, already=dropped)
    note_text = "".join(n + "\n" for n in notes)
    return Observation(text=output + note_text + prompt, notes=notes)


def split_prompt(text: str) -> tuple[str, str]:
    """(output, prompt): the prompt is the last line, at most PROMPT_CHARS of it; output printed
    without a final newline stays on the prompt's line, and whatever exceeds that counts as output."""
    if "\n" in text:
        output, prompt = text.rsplit("\n", 1)
        output += "\n"
    else:
        output, prompt = "", text
    if len(prompt) > PROMPT_CHARS:
        output, prompt = output + prompt[:-PROMPT_CHARS] + "\n", prompt[-PROMPT_CHARS:]
    return output, prompt


def interrupt_note(reason: str, command: str, limit: float) -> str:
    """What the model is told about a command teletype interrupted, by reason."""
    name = command.strip().split("\n")[0].split()[0] if command.strip() else "the command"
    return {
        "timeout": f"[teletype: the command did not finish within {limit:g} s; it was interrupted]",
        "input": (f"[teletype: {name} waited for keyboard input; this terminal has no one to answer "
                  "interactive programs, so it was interrupted. Use non-interactive commands.]"),
        "flood": "[teletype: the command printed too much output; it was interrupted]",
        "incomplete": ("[teletype: the command is incomplete (an unterminated heredoc or quote) and "
                       "the shell asked for more input; it was cancelled with ^C]"),
    }[reason]


__all__ = ["PROMPT_CHARS", "Capture", "Markers", "Observation", "interrupt_note", "observation", "split_prompt"]
