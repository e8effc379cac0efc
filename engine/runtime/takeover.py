"""Operator takeover: a person's keystrokes go straight to the terminal, and each command line they
enter at the shell's prompt becomes a step of the session, as if typed through Session.execute().

Keys are sent one by one, so that an Enter is seen exactly where it falls. Keys typed while an
entered command runs (into an editor, a pager, a `read`) are that program's, not new commands; lines
entered at a continuation prompt (a heredoc, an open quote) join the command. A watcher thread waits
for the shell's next prompt after each entered command and hands the observation to the session.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from teletype.engine.runtime.shell import Observation, Shell

log = logging.getLogger(__name__)

Done = Callable[[list[str], Observation], None]
"""Called on the watcher thread with a command's lines (the first, then any continuation lines)
and its observation."""


class Takeover:
    """The keys of one session's operator: the line being typed, the last one entered, and the
    command (if any) that is still running."""

    def __init__(self, done: Done):
        self._done = done
        self.line = ""
        """The line being typed (what the keys since the last Enter make of it)."""
        self.last = ""
        """The last line entered (how the session knows that a typed `exit` or `panic` ended it)."""
        self._watcher: _Command | None = None
        self._lock = threading.Lock()

    def keys(self, shell: Shell, data: bytes) -> None:
        """Send `data` to `shell` key by key, starting a step at each Enter."""
        for ch in data.decode("utf-8", "replace"):
            if ch in "\r\n":
                line, self.line = self.line, ""
                self.last = line
                self._entered(shell, line)
                continue
            if ch in "\x7f\b":
                self.line = self.line[:-1]
            elif ch in "\x03\x15":
                self.line = ""
            elif ch >= " ":
                self.line += ch
            shell.send(ch.encode("utf-8"))

    def _entered(self, shell: Shell, line: str) -> None:
        with self._lock:
            watcher = self._watcher
            if watcher is not None and watcher.is_alive():
                if shell.at_continuation(watcher.last_mark):
                    watcher.lines.append(line)
                watcher.last_mark = shell.offset()
                shell.send(b"\r")
                return
            mark = shell.offset()
            shell.send(b"\r")
            if not line.strip():
                return  # an empty line is no command
            watcher = _Command(shell, line, mark, self._done)
            self._watcher = watcher
            watcher.start()

    def running(self) -> bool:
        """Whether a command the operator entered is still running."""
        w = self._watcher
        return w is not None and w.is_alive()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop waiting for a running command: it is recorded if its prompt has come back (or the
        shell has ended) by now; one still running is not a step."""
        w = self._watcher
        if w is not None and w.is_alive():
            w.stop.set()
            w.join(timeout=timeout)


class _Command(threading.Thread):
    """Waits for the shell's next prompt after a line the operator entered, then reports the step."""

    def __init__(self, shell: Shell, line: str, mark: int, done: Done):
        super().__init__(name="teletype-takeover", daemon=True)
        self.shell, self.lines, self.mark, self.done = shell, [line], mark, done
        self.last_mark = mark  # where the last line was entered (its continuation prompt comes after)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            obs = self.shell.observe_typed(self.lines[0], self.mark, self.stop)
            if obs is not None:
                self.done(self.lines, obs)
        except Exception:
            log.error("recording a command typed during takeover failed", exc_info=True)


__all__ = ["Done", "Takeover"]
