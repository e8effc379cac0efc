"""The shell on a terminal: typing a command and knowing, from the shell itself, when it finished.

Completion is event-driven. Every primary prompt ends with an invisible marker that carries the
session's nonce and `$?`; a continuation prompt (heredoc, open quote) carries another. A prompt marker
counts only when the shell's own process group holds the terminal's foreground, so output that merely
looks like a prompt does not end a command. There are no fixed sleeps and no idle timers: the reader
thread wakes the waiter on every chunk; a slow tick (0.2 s) only re-checks bounds and whether the
foreground program is waiting on the keyboard.

Every command is bounded: a time limit, an output limit (a flood is interrupted), and programs that
wait for keyboard input (vi, less, `read`) are interrupted too. Interrupting means ^C, then SIGKILL to
the foreground process group, then restoring the terminal modes; the model is told what happened.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .printout import elide_middle, printout
from .sandbox.base import LOGIN_OSC, PANIC_OSC, PS1_OSC, PS2_OSC, Terminal

Listener = Callable[[bytes], None]


@dataclass(frozen=True)
class Limits:
    command_timeout: float = 30.0
    """Seconds a command may run before it is interrupted."""
    login_timeout: float = 15.0
    """Seconds to wait for the first prompt."""
    output_bytes: int = 4 << 20
    """Raw bytes one command may print before it is interrupted as a flood."""
    observation_chars: int = 8000
    """Characters of one command's output kept for the model (start and end, middle elided)."""
    input_grace: float = 0.4
    """Seconds a program must sit waiting on the keyboard before it is interrupted."""
    line_bytes: int = 4000
    """Longest single line that can be typed (the terminal's line buffer holds 4095 bytes)."""


@dataclass
class Observation:
    """The outcome of typing one command."""

    text: str
    """What the model reads: the output as a teletype prints it, notes, then the next prompt."""
    status: int | None = None
    """Exit status from the prompt marker (None when the shell did not come back)."""
    interrupted: str | None = None
    """Why the command was interrupted: timeout, input, flood, incomplete; None if it finished."""
    ended: bool = False
    """The shell is gone (exit, panic, or killed)."""
    panic: str | None = None
    """The reason given to `panic`, when the command was (or ran) panic."""
    output_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class ShellError(RuntimeError):
    pass


class LoginTimeout(ShellError):
    """The shell printed no first prompt in time (the session retries once with a fresh shell)."""


class _Capture:
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


class Shell:
    """Drives a login shell on a Terminal. Thread-safe for one caller plus stream listeners."""

    def __init__(self, terminal: Terminal, nonce: str, limits: Limits = Limits(),
                 listeners: list[Listener] | None = None):
        self.term = terminal
        self.limits = limits
        n = re.escape(nonce.encode())
        self._ps1 = re.compile(rb"\x1b\]%d;%s;%s\x07" % (PS1_OSC, n, _NUM))
        self._ps2 = re.compile(rb"\x1b\]%d;%s\x07" % (PS2_OSC, n))
        self._login = re.compile(rb"\x1b\]%d;%s\x07" % (LOGIN_OSC, n))
        self._panic = re.compile(rb"\x1b\]%d;([^\x07\x1b]*)\x07" % PANIC_OSC)
        self._dsr = re.compile(rb"\x1b\[6n")
        self._cond = threading.Condition()
        self._listeners: list[Listener] = list(listeners or [])  # before the reader starts
        self._capture = _Capture()
        self._scan_tail = b""
        self._total = 0               # bytes seen on the stream
        self._events: list[tuple[int, str, bytes]] = []  # (stream offset, kind, value)
        self._closed = False
        self._column = 0
        self.rows, self.cols = 24, 80
        self.shell_pgrp: int | None = None
        self.panic_reason: str | None = None
        self.status: int | None = None
        self._prompt_end = 0          # stream offset just past the prompt that ended the last command
        self._cap_start = 0           # stream offset where the current capture starts
        self._carry = b""             # output that came after the last prompt (belongs to the next turn)
        self._reader = threading.Thread(target=self._read_loop, name="teletype-pty-reader", daemon=True)
        self._reader.start()

    # -- the stream ---------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        """Receive every raw byte chunk from the terminal (called on the reader thread)."""
        with self._cond:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self._cond:
            if fn in self._listeners:
                self._listeners.remove(fn)

    @property
    def closed(self) -> bool:
        return self._closed

    def _read_loop(self) -> None:
        while True:
            try:
                data = self.term.read(0.5)
            except EOFError:
                break
            except Exception:  # a broken terminal ends the stream, never the process
                break
            if not data:
                if not self.term.alive():
                    # drain what is left, then stop
                    try:
                        data = self.term.read(0.05)
                    except EOFError:
                        break
                    if not data:
                        break
                else:
                    continue
            self._answer_queries(data)
            with self._cond:
                listeners = list(self._listeners)
            for fn in listeners:
                try:
                    fn(data)
                except Exception:
                    pass
            with self._cond:
                panicked = self.panic_reason is not None
                self._scan(data)
                self._capture.add(data)
                self._total += len(data)
                self._cond.notify_all()
            if not panicked and self.panic_reason is not None:
                # `panic` ends the session whether or not the shell obeys its SIGHUP (an ignored
                # SIGHUP is inherited, e.g. under nohup).
                self.term.close()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _answer_queries(self, data: bytes) -> None:
        """Answer cursor-position queries (busybox ash asks after every prompt) as a terminal would."""
        tail = data.rsplit(b"\n", 1)[-1].rsplit(b"\r", 1)[-1]
        if b"\n" in data or b"\r" in data:
            self._column = 0
        if self._dsr.search(data):
            visible = len(printout(tail.decode("utf-8", "replace")))
            try:
                self.term.write(b"\x1b[%d;%dR" % (self.rows, min(self.cols, self._column + visible + 1)))
            except EOFError:
                pass
        self._column += len(printout(tail.decode("utf-8", "replace"))) if tail else 0

    def _scan(self, data: bytes) -> None:
        window = self._scan_tail + data
        base = self._total - len(self._scan_tail)
        for kind, rx in (("ps1", self._ps1), ("ps2", self._ps2), ("login", self._login),
                         ("panic", self._panic)):
            for m in rx.finditer(window):
                end = base + m.end()
                if any(e[0] == end and e[1] == kind for e in self._events[-8:]):
                    continue  # seen in the previous window already
                value = m.group(1) if m.groups() else b""
                self._events.append((end, kind, value))
                if kind == "panic":
                    self.panic_reason = value.decode("utf-8", "replace")
        self._scan_tail = window[-128:]

    # -- control --------------------------------------------------------------------------------
    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.term.resize(rows, cols)

    def send(self, data: bytes) -> None:
        """Raw keystrokes (operator takeover)."""
        self.term.write(data)

    def _event_after(self, offset: int, kinds: tuple[str, ...]) -> tuple[int, str, bytes] | None:
        for ev in self._events:
            if ev[0] > offset and ev[1] in kinds:
                return ev
        return None

    def _at_prompt(self, ev: tuple[int, str, bytes]) -> bool:
        """A prompt marker counts when the shell holds the terminal (or that cannot be known)."""
        fg = self.term.foreground_pgrp()
        return fg is None or self.shell_pgrp is None or fg == self.shell_pgrp

    def login(self) -> str:
        """Wait for the first prompt; return the orientation (banner, motd, prompt) as printed."""
        deadline = time.monotonic() + self.limits.login_timeout
        with self._cond:
            while True:
                ev = self._event_after(-1, ("ps1",))
                if ev is not None:
                    break
                if self._closed:
                    raw, _ = self._capture.bytes()
                    raise ShellError("the shell exited before its first prompt: "
                                     + printout(raw.decode("utf-8", "replace")).strip()[-500:])
                if time.monotonic() > deadline:
                    raise LoginTimeout(f"no prompt from the shell within {self.limits.login_timeout:.0f} s")
                self._cond.wait(0.2)
            raw, _ = self._capture.bytes()
            self._capture = _Capture()
            self._mark = ev[0]
        self.shell_pgrp = self.term.foreground_pgrp()
        self.term.save_modes()
        start = 0
        m = self._login.search(raw)
        if m:
            start = m.end()
        end = self._ps1.search(raw, start)
        text = raw[start:end.end() if end else len(raw)]
        return printout(text.decode("utf-8", "replace")).lstrip("\n")

    def run(self, command: str, timeout: float | None = None) -> Observation:
        """Type `command` (one or more lines), wait until the shell prompts again, and observe."""
        limit = self.limits.command_timeout if timeout is None else timeout
        lines = command.rstrip("\n").split("\n") if command.strip() else [""]
        t0 = time.monotonic()
        deadline = t0 + limit
        notes: list[str] = []
        interrupted: str | None = None
        status: int | None = None
        for i, line in enumerate(lines):
            encoded = line.encode("utf-8")
            if len(encoded) > self.limits.line_bytes:
                notes.append(f"[teletype: a line of {len(encoded)} bytes is longer than this terminal "
                             f"accepts ({self.limits.line_bytes}); it was not typed]")
                interrupted = "too_long"
                break
            with self._cond:
                if self._closed:
                    break
                if i == 0:
                    self._capture = _Capture()
                    self._capture.add(self._carry)
                    self._cap_start = self._total - len(self._carry)
                    self._carry = b""
                    self._prompt_end = -1
                mark = self._total
            try:
                self.term.write(encoded + b"\n")
            except EOFError:
                break
            last = i == len(lines) - 1
            outcome, status = self._wait(mark, deadline, last)
            if outcome == "more":
                continue
            if outcome == "prompt":
                break
            if outcome == "closed":
                break
            interrupted = outcome
            notes.append(self._interrupt_note(outcome, command, limit))
            status = self._interrupt(deadline_extra=3.0)
            break
        with self._cond:
            raw, dropped = self._capture.bytes()
            total = self._capture.total
            closed = self._closed
            if self._prompt_end >= self._cap_start:
                cut = self._prompt_end - self._cap_start
                if cut > len(self._capture.head):
                    cut -= dropped
                raw, self._carry = raw[:cut], raw[cut:]
        obs = self._observe(raw, dropped, notes, lines[0])
        obs.status = status
        obs.interrupted = interrupted
        obs.ended = closed or not self.term.alive()
        obs.panic = self.panic_reason
        obs.output_bytes = total
        obs.seconds = time.monotonic() - t0
        if not obs.ended:
            self.term.save_modes()
        return obs

    def _wait(self, mark: int, deadline: float, last: bool) -> tuple[str, int | None]:
        """Wait after typing one line: 'prompt', 'more', 'closed', or a reason to interrupt."""
        waiting_since: float | None = None
        last_probe = time.monotonic()
        with self._cond:
            while True:
                ev = self._event_after(mark, ("ps1", "ps2"))
                if ev is not None and ev[1] == "ps1":
                    if self._at_prompt(ev):
                        self.status = int(ev[2])
                        self._prompt_end = ev[0]
                        return "prompt", self.status
                    mark = ev[0]  # a marker printed by something else: keep waiting
                    continue
                if ev is not None and ev[1] == "ps2":
                    if not last:
                        return "more", None
                    if self._at_prompt(ev):
                        return "incomplete", None
                    mark = ev[0]
                    continue
                if self._closed:
                    return "closed", None
                if self._capture.total > self.limits.output_bytes:
                    return "flood", None
                now = time.monotonic()
                if now >= deadline:
                    return "timeout", None
                self._cond.wait(min(0.2, deadline - now))
                if self._event_after(mark, ("ps1", "ps2")) is not None or self._closed:
                    continue
                now = time.monotonic()
                if now - last_probe < 0.2:
                    continue  # woken by output: /proc is read on the slow tick only (floods stay cheap)
                last_probe = now
                fg = self.term.foreground_pgrp()
                if self.term.waiting_for_input(fg):
                    now = time.monotonic()
                    waiting_since = waiting_since or now
                    if now - waiting_since >= self.limits.input_grace:
                        return "input", None
                else:
                    waiting_since = None

    def _interrupt(self, deadline_extra: float) -> int | None:
        """^C; then SIGKILL the foreground group; then give up on the shell. Returns the status."""
        with self._cond:
            mark = self._total
        self.term.write(b"\x03")
        got = self._wait_prompt(mark, 1.0)
        if got is not None:
            return got
        fg = self.term.foreground_pgrp()
        if fg is not None and fg != self.shell_pgrp:
            self.term.kill_pgrp(fg, signal.SIGKILL)
        self.term.restore_modes()
        got = self._wait_prompt(mark, 2.0)
        if got is not None:
            return got
        # The shell itself does not come back: the session cannot go on.
        self.term.close()
        return None

    def _wait_prompt(self, mark: int, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        with self._cond:
            while True:
                ev = self._event_after(mark, ("ps1",))
                if ev is not None and self._at_prompt(ev):
                    self.status = int(ev[2])
                    self._prompt_end = ev[0]
                    return self.status
                if ev is not None:
                    mark = ev[0]
                    continue
                now = time.monotonic()
                if self._closed or now >= deadline:
                    return None
                self._cond.wait(deadline - now)

    @staticmethod
    def _interrupt_note(reason: str, command: str, limit: float) -> str:
        name = command.strip().split("\n")[0].split()[0] if command.strip() else "the command"
        return {
            "timeout": f"[teletype: the command did not finish within {limit:g} s; it was interrupted]",
            "input": (f"[teletype: {name} waited for keyboard input; this terminal has no one to answer "
                      "interactive programs, so it was interrupted. Use non-interactive commands.]"),
            "flood": "[teletype: the command printed too much output; it was interrupted]",
            "incomplete": ("[teletype: the command is incomplete (an unterminated heredoc or quote) and "
                           "the shell asked for more input; it was cancelled with ^C]"),
        }[reason]

    def _observe(self, raw: bytes, dropped: int, notes: list[str], first_line: str = "") -> Observation:
        # The terminal echoes the first typed line; the model already knows what it typed. Output
        # from background jobs may come before the echo: keep it, drop only the echo itself.
        echo = first_line.encode("utf-8") + b"\r\n"
        at = raw.find(echo) if first_line else -1
        if at >= 0:
            body = raw[:at] + raw[at + len(echo):]
        else:
            nl = raw.find(b"\n")
            body = raw[nl + 1:] if nl >= 0 else b""
        text = printout(body.decode("utf-8", "replace"))
        if "\n" in text:
            output, prompt = text.rsplit("\n", 1)
            output += "\n"
        else:
            output, prompt = "", text
        if self._closed:
            output, prompt = output + prompt, ""
        output = elide_middle(output, self.limits.observation_chars, already=dropped)
        note_text = "".join(n + "\n" for n in notes)
        return Observation(text=output + note_text + prompt, notes=notes)

    def close(self) -> None:
        self.term.close()
        self._reader.join(timeout=2.0)
