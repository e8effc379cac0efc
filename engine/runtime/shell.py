"""The shell on a terminal: typing a command and knowing, from the shell itself, when it finished.

Completion is event-driven. Every primary prompt ends with an invisible marker that carries the
session's nonce and `$?`; a continuation prompt (heredoc, open quote) carries another. A marker is
authenticated by the shell's own state, not by its bytes: it counts only when the shell's process
group holds the terminal and the shell itself is seen waiting in its command-line input (a read of
its terminal on fd 0), and then the *last* marker counts. Output that copies a marker (a file, a
motd, a program that found the nonce) cannot end a step or set a status: the shell is busy while it
prints, and its real prompt comes after. There are no fixed sleeps and no idle timers: the reader
thread wakes the waiter on every chunk; a slow tick (0.2 s) only re-checks bounds and whether the
foreground program is waiting on the keyboard.

Before each command the terminal gets its login modes back and pending input is discarded
(`stty -echo`, `stty raw`, an unread terminal reply cannot reach the next command). A command that
loses the prompt (`exec sh`, `PS1='$ '`, `exec 2>&-`) leaves the shell waiting at its input with no
marker: the prompt is set again and the model is told.

Every command is bounded: a time limit, an output limit (a flood is interrupted), and programs that
wait for keyboard input (vi, less, `read`) are interrupted too. Interrupting means ^C, then SIGKILL to
the foreground process group, then restoring the terminal modes; the model is told what happened.
"""
from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from teletype.engine.runtime.capture import Capture, Markers, Observation, interrupt_note, observation, split_prompt
from teletype.engine.runtime.printout import elide_middle, printout
from teletype.engine.sandbox.base import Terminal

Listener = Callable[[bytes], None]
log = logging.getLogger(__name__)
SETTLE = 0.005
"""Seconds the shell must sit at its input, all its output read, before its last marker counts."""
BACK_AFTER_KILL = 6.0
"""Seconds a shell has to show its prompt again after its foreground group was killed. Only a shell
that does not come back waits them out; on a loaded machine a docker sandbox's shell was seen to
take more than 2 s, and was then wrongly given up on."""


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


class ShellError(RuntimeError):
    pass


class LoginTimeout(ShellError):
    """The shell printed no first prompt in time (the session retries once with a fresh shell)."""


class Shell:
    """Drives a login shell on a Terminal. Thread-safe for one caller plus stream listeners."""

    def __init__(self, terminal: Terminal, nonce: str, limits: Limits = Limits(),
                 listeners: list[Listener] | None = None, rearm: str | None = None):
        self.term = terminal
        self.limits = limits
        self._markers = Markers(nonce)
        self._rearm = rearm
        self._dsr = re.compile(rb"\x1b\[6n")
        self._cond = threading.Condition()
        self._listeners: list[Listener] = list(listeners or [])  # before the reader starts
        self._capture = Capture()
        self._total = 0               # bytes seen on the stream
        self._closed = False
        self._column = 0
        self.rows, self.cols = 24, 80
        self.shell_pgrp: int | None = None
        self.status: int | None = None
        self._cap_start = 0           # stream offset where the current capture starts
        self._dropped_last = 0        # bytes the last observation's capture dropped from its middle
        self._hide: tuple[int, bytes] | None = None  # a line teletype typed itself (not the model's)
        self._settled_at: float | None = None  # since when the shell sits at its input, output read
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
                log.warning("terminal read failed; the session's stream ends here", exc_info=True)
                break
            if not data:
                if not self.term.alive():
                    # drain what is left, then stop
                    try:
                        data = self.term.read(0.05)
                    except Exception:
                        break
                    if not data:
                        break
                else:
                    continue
            try:
                self._answer_queries(data)
            except Exception:
                log.warning("answering a terminal query failed", exc_info=True)
            with self._cond:
                listeners = list(self._listeners)
            for fn in listeners:
                try:
                    fn(data)
                except Exception:
                    # A listener (the recorder, the console's pane) must not stop the session,
                    # but its failure is worth knowing: a recorder that fails loses data.
                    log.error("an output listener failed (%r)", fn, exc_info=True)
            with self._cond:
                self._markers.scan(data, self._total)
                self._capture.add(data)
                self._total += len(data)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _answer_queries(self, data: bytes) -> None:
        """Answer cursor-position queries (busybox ash asks after every prompt) as a terminal would."""
        tail = data.rsplit(b"\n", 1)[-1].rsplit(b"\r", 1)[-1]
        if b"\n" in data or b"\r" in data:
            self._column = 0
        if self._dsr.search(data) and getattr(self.term, "raw_mode", lambda: True)() is not False:
            # Answered only for a program reading the keyboard key by key (busybox ash's line
            # editor asks after every prompt): in cooked mode the reply would wait in the input
            # queue and reach the next command as typed text.
            visible = len(printout(tail.decode("utf-8", "replace")))
            try:
                # A long line wraps: the column is where the wrapped text leaves the cursor.
                col = (self._column + visible) % max(1, self.cols) + 1
                self.term.write(b"\x1b[%d;%dR" % (self.rows, col))
            except EOFError:
                pass
        if tail:
            self._column = (self._column + len(printout(tail.decode("utf-8", "replace")))) % max(1, self.cols)

    # -- control --------------------------------------------------------------------------------
    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.term.resize(rows, cols)

    def send(self, data: bytes) -> None:
        """Raw keystrokes (operator takeover)."""
        self.term.write(data)

    def _at_prompt(self) -> bool:
        """The shell holds the terminal (or that cannot be known)."""
        fg = self.term.foreground_pgrp()
        return fg is None or self.shell_pgrp is None or fg == self.shell_pgrp

    def _shell_at_input(self) -> bool | None:
        if self.shell_pgrp is None:
            return None
        return self.term.at_line_input(self.shell_pgrp)

    def _prompt_after(self, mark: int, kinds: tuple[str, ...]) -> tuple[int, str, bytes] | None | bool:
        """The prompt marker that ends the wait, if there is one now.

        Returns the event; None when there is no marker after `mark`; False when there is one but
        the shell has not (yet) been seen waiting at its input. Called with the lock held.
        """
        if self._markers.first_after(mark, kinds) is None:
            return None
        if not self._at_prompt():
            return False
        at_input = self._shell_at_input()
        if at_input is None:  # cannot be known: the first marker counts, as it comes
            return self._markers.first_after(mark, kinds)
        if not at_input:
            self._settled_at = None
            return False
        # The shell waits at its input, so it has written its prompt: once everything it wrote has
        # been read (and a moment more, for the pty's own buffer to reach us), the last marker is it.
        drained = getattr(self.term, "drained", None)
        now = time.monotonic()
        if drained is not None and drained(self._total) is False:
            self._settled_at = None
            return False
        if self._settled_at is None:
            self._settled_at = now
        if now - self._settled_at < SETTLE:
            return False
        return self._markers.last_after(mark, kinds)

    def login(self) -> str:
        """Wait for the first prompt; return the orientation (banner, motd, prompt) as printed."""
        deadline = time.monotonic() + self.limits.login_timeout
        waiting_since: float | None = None
        with self._cond:
            while True:
                if self._markers.first_after(-1, ("ps1",)) is not None:
                    if self.shell_pgrp is None:
                        self.shell_pgrp = self.term.foreground_pgrp()
                    ev = self._prompt_after(-1, ("ps1",))
                    if ev:
                        break
                if self._closed:
                    raw, _ = self._capture.bytes()
                    said = printout(raw.decode("utf-8", "replace")).strip()[-300:]
                    raise ShellError("the shell exited before its first prompt"
                                     + (f" (exit status {self.term.exit_code()})"
                                        if self.term.exit_code() is not None else "")
                                     + (f": {said}" if said else ""))
                now = time.monotonic()
                if now > deadline:
                    raise LoginTimeout(f"no prompt from the shell within {self.limits.login_timeout:.0f} s")
                pgrp = self.term.foreground_pgrp()
                if self._markers.first_after(-1, ("ps1",)) is None and pgrp is not None \
                        and self.term.waiting_for_input(pgrp):
                    # It waits for the keyboard and never showed teletype's prompt: not a shell that
                    # reads $ENV (or one told to ignore it). Waiting longer would not help.
                    waiting_since = waiting_since or now
                    if now - waiting_since > 1.0:
                        raise ShellError("the login shell waits for input but never printed teletype's "
                                         "prompt: it must be a POSIX shell that reads $ENV when "
                                         "interactive (dash, ash, bash --posix)")
                else:
                    waiting_since = None
                self._cond.wait(0.002 if self._markers.first_after(-1, ("ps1",)) is not None else 0.2)
            raw = self._take(ev[0])
        self.term.save_modes()
        start = 0
        m = self._markers.login.search(raw)
        if m:
            start = m.end()
        text = printout(raw[start:].decode("utf-8", "replace")).lstrip("\n")
        output, prompt = split_prompt(text)
        return elide_middle(output, self.limits.observation_chars) + prompt

    def _take(self, end: int) -> bytes:
        """The captured bytes up to stream offset `end` (a prompt's end); the capture then holds
        what came after it, which belongs to the next turn. Called with the lock held."""
        raw, dropped = self._capture.bytes()
        cut = end - self._cap_start
        if cut > len(self._capture.head):
            cut -= dropped
        cut = max(0, min(cut, len(raw)))
        rest = raw[cut:]
        self._capture = Capture()
        self._capture.add(rest)
        self._cap_start = end
        self._dropped_last = dropped
        return raw[:cut]

    def run(self, command: str, timeout: float | None = None) -> Observation:
        """Type `command` (one or more lines), wait until the shell prompts again, and observe."""
        limit = self.limits.command_timeout if timeout is None else timeout
        lines = command.rstrip("\n").split("\n") if command.strip() else [""]
        t0 = time.monotonic()
        deadline = t0 + limit
        notes: list[str] = []
        interrupted: str | None = None
        status: int | None = None
        end: int | None = None         # stream offset of the prompt that ended the command
        with self._cond:
            self._capture.total = len(self._capture.bytes()[0])  # the flood bound counts from here
            if not self._closed:
                # Markers before this command can never end it.
                self._markers.clear()
        if not self._closed:
            self.term.prepare_input()
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
                mark = self._total
            try:
                self.term.write(encoded + b"\n")
            except EOFError:
                break
            last = i == len(lines) - 1
            outcome, status, end = self._wait(mark, deadline, last)
            if outcome in ("more", "prompt", "closed"):
                if outcome == "more":
                    continue
                break
            interrupted = outcome
            log.info("command interrupted (%s): %r", outcome, command[:200])
            if outcome == "prompt_lost":
                status, end = self._rearm_prompt(notes)
                break
            notes.append(interrupt_note(outcome, command, limit))
            status, end = self._interrupt()
            break
        with self._cond:
            obs = self._conclude(end, notes, lines[0], status, t0)
        obs.interrupted = interrupted
        return self._ending(obs)

    def _conclude(self, end: int | None, notes: list[str], first_line: str, status: int | None,
                  t0: float, typed_ahead: bool = False) -> Observation:
        """The observation of a command whose prompt ended at stream offset `end` (None: the shell is
        gone or never came back, and everything captured is this turn's). Called with the lock held."""
        closed = self._closed
        total = self._capture.total
        raw = self._take(end if end is not None else self._total)
        obs = self._observe(raw, self._dropped_last, notes, first_line, final=closed or end is None,
                            typed_ahead=typed_ahead)
        obs.status, obs.output_bytes, obs.seconds = status, total, time.monotonic() - t0
        obs.ended = closed
        return obs

    def _ending(self, obs: Observation) -> Observation:
        """Whether the shell is gone, and with what status (outside the lock: it waits for the reaper)."""
        obs.ended = obs.ended or not self.term.alive()
        if obs.ended:
            self._reader.join(timeout=1.0)
            obs.exit_code = self._exit_code()
        return obs

    # -- operator takeover ---------------------------------------------------------------------------
    def offset(self) -> int:
        """Bytes seen on the stream so far (a mark to wait after)."""
        with self._cond:
            return self._total

    def at_continuation(self, mark: int, wait: float = 0.2) -> bool:
        """Whether the shell shows its continuation prompt (a heredoc or quote is open), waiting up
        to `wait` seconds for keys typed ahead to reach it; False at once when a program other than
        the shell holds the terminal (the keys are that program's)."""
        deadline = time.monotonic() + wait
        self._settled_at = None
        with self._cond:
            while True:
                ev = self._prompt_after(mark, ("ps1", "ps2"))
                if ev:
                    return ev[1] == "ps2"
                now = time.monotonic()
                if self._closed or now >= deadline or not self._at_prompt():
                    return False
                self._cond.wait(min(0.005, deadline - now))

    def observe_typed(self, first_line: str, mark: int, stop: threading.Event) -> Observation | None:
        """A command the operator entered by hand (takeover): wait, with no bound (the operator is at
        the keys and may be in an editor), for the shell's next prompt, and observe like run()."""
        t0 = time.monotonic()
        end: int | None = None
        status: int | None = None
        self._settled_at = None
        pause = 0.001
        with self._cond:
            while True:
                ev = self._prompt_after(mark, ("ps1",))
                if ev:
                    end, status = ev[0], int(ev[2])
                    self.status = status
                    break
                if self._closed or stop.is_set():
                    break
                if ev is False:
                    self._cond.wait(pause)
                    pause = min(pause * 2, 0.05)
                else:
                    self._cond.wait(0.2)
            if stop.is_set() and end is None and not self._closed:
                return None
            obs = self._conclude(end, [], first_line, status, t0, typed_ahead=True)
        return self._ending(obs)

    def _exit_code(self) -> int | None:
        # The terminal closes a moment before its process is reaped: wait for the status.
        wait_until = time.monotonic() + 2.0
        code = self.term.exit_code()
        while code is None and self.term.alive() and time.monotonic() < wait_until:
            time.sleep(0.01)
            code = self.term.exit_code()
        return code if code is not None else self.term.exit_code()

    def _wait(self, mark: int, deadline: float, last: bool) -> tuple[str, int | None, int | None]:
        """Wait after typing one line: ('prompt' | 'more' | 'closed' | a reason to interrupt,
        status, the prompt's stream offset)."""
        waiting_since: float | None = None
        lost_since: float | None = None
        last_probe = time.monotonic()
        pause = 0.001
        self._settled_at = None
        with self._cond:
            while True:
                ev = self._prompt_after(mark, ("ps1", "ps2"))
                if ev:
                    if ev[1] == "ps1":
                        self.status = int(ev[2])
                        return "prompt", self.status, ev[0]
                    if not last:
                        return "more", None, ev[0]
                    return "incomplete", None, ev[0]
                if self._closed:
                    return "closed", None, None
                if self._capture.total > self.limits.output_bytes:
                    return "flood", None, None
                now = time.monotonic()
                if now >= deadline:
                    return "timeout", None, None
                seen = len(self._markers.events)
                if ev is False:
                    # A marker, but the shell is not (yet) at its input: it prints the prompt, then
                    # reads. Look again soon; a marker some output copied waits for the real one.
                    self._cond.wait(min(pause, deadline - now))
                    pause = min(pause * 2, 0.05)
                else:
                    self._cond.wait(min(0.2, deadline - now))
                if len(self._markers.events) != seen or self._closed:
                    continue
                now = time.monotonic()
                if now - last_probe < 0.2:
                    continue  # woken by output: /proc is read on the slow tick only (floods stay cheap)
                last_probe = now
                fg = self.term.foreground_pgrp()
                if fg is not None and fg == self.shell_pgrp and self._shell_at_input():
                    # The shell waits at its own input and showed no marker: the command took the
                    # prompt away (PS1 changed, `exec sh`, stderr closed).
                    lost_since = lost_since or now
                    if now - lost_since >= self.limits.input_grace:
                        return "prompt_lost", None, None
                    continue
                lost_since = None
                if self.term.waiting_for_input(fg):
                    now = time.monotonic()
                    waiting_since = waiting_since or now
                    if now - waiting_since >= self.limits.input_grace:
                        return "input", None, None
                else:
                    waiting_since = None

    def _rearm_prompt(self, notes: list[str]) -> tuple[int | None, int | None]:
        """Type the prompt's definition again (and point stderr, where prompts go, back at the
        terminal); the echo of that line is not the model's output."""
        with self._cond:
            mark = self._total
        line = "exec 2>/dev/tty; " + (self._rearm or "")
        try:
            self.term.prepare_input()
            self.term.write(line.encode() + b"\n")
        except EOFError:
            return None, None
        got = self._wait_prompt(mark, 3.0)
        if got is None:
            notes.append("[teletype: the command took the shell's prompt away, and teletype could not "
                         "set it again]")
            self.term.close()
            return None, None
        with self._cond:
            self._hide = (mark, line.encode())
        notes.append("[teletype: the command took the shell's prompt away (a new PS1, a new shell, or "
                     "stderr closed); teletype set it again]")
        return None, got[1]

    def _interrupt(self) -> tuple[int | None, int | None]:
        """^C; then SIGKILL the foreground group; then give up on the shell. Returns (status,
        the prompt's offset)."""
        with self._cond:
            mark = self._total
        try:
            self.term.prepare_input()  # cooked modes first, so that ^C is a signal even after `stty raw`
            self.term.write(b"\x03")
        except EOFError:
            return None, None
        got = self._wait_prompt(mark, 1.0)
        if got is not None:
            return got
        fg = self.term.foreground_pgrp()
        if fg is not None and fg != self.shell_pgrp:
            self.term.kill_pgrp(fg, signal.SIGKILL)
        self.term.restore_modes()
        got = self._wait_prompt(mark, BACK_AFTER_KILL)
        if got is not None:
            return got
        # The shell itself does not come back: the session cannot go on.
        log.info("the shell did not come back after an interrupt; closing it")
        self.term.close()
        return None, None

    def _wait_prompt(self, mark: int, seconds: float) -> tuple[int, int] | None:
        deadline = time.monotonic() + seconds
        pause = 0.001
        self._settled_at = None
        with self._cond:
            while True:
                ev = self._prompt_after(mark, ("ps1",))
                if ev:
                    self.status = int(ev[2])
                    return self.status, ev[0]
                now = time.monotonic()
                if self._closed or now >= deadline:
                    return None
                if ev is False:
                    self._cond.wait(min(pause, deadline - now))
                    pause = min(pause * 2, 0.05)
                else:
                    self._cond.wait(deadline - now)

    def _observe(self, raw: bytes, dropped: int, notes: list[str], first_line: str = "",
                 final: bool = False, typed_ahead: bool = False) -> Observation:
        hide, self._hide = self._hide, None
        return observation(raw, dropped, notes, first_line, limit=self.limits.observation_chars, final=final,
                           typed_ahead=typed_ahead, hide=hide[1] if hide is not None else None)

    def close(self) -> None:
        self.term.close()
        self._reader.join(timeout=2.0)


__all__ = ["Limits", "LoginTimeout", "Observation", "Shell", "ShellError"]
