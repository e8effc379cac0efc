"""Stopping on SIGTERM and SIGINT without losing the recording or leaving the sandbox behind.

Python ends a process on SIGTERM at once, without unwinding: no `finally` runs, so the session's
trajectory.json is never written and its staging dir stays in /tmp. Under `stop_on_signals()` both
signals raise `Stopped` (a KeyboardInterrupt) in the main thread instead, once: the session in the way
finishes as `stopped` (Session.run), and the signals that follow while it finishes are ignored, so
that a second ^C cannot cut the clean-up short. Threads that run sessions (eval --jobs N) cannot be
interrupted; they look at `stop_event` between steps (see `StopAware`).
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """A signal asked the process to stop; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


stop_event = threading.Event()
"""Set by the first SIGTERM or SIGINT under stop_on_signals(); cleared when it exits."""
_caught = [signal.SIGTERM]   # which signal set it


@contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        if stop_event.is_set():
            print(f"teletype: {signal.Signals(signum).name} again: still finishing the recording "
                  "and cleaning up (SIGKILL ends it at once, leaving the staging dir to `teletype clean`)",
                  file=sys.stderr, flush=True)
            return
        _caught[0] = signum
        stop_event.set()
        raise Stopped(signum)

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        stop_event.clear()


def caught() -> int:
    """The signal that set stop_event (SIGTERM when none did)."""
    return _caught[0]


class StopAware:
    """A policy wrapper for sessions run in threads: once one of `events` (default: stop_event) is
    set, the next proposal raises Stopped, so the session finishes as `stopped` at its next step."""

    def __init__(self, policy, *events: threading.Event):
        self._policy = policy
        self._events = events or (stop_event,)

    def propose(self, messages, on_token=None):
        if any(e.is_set() for e in self._events):
            raise Stopped(_caught[0])
        return self._policy.propose(messages, on_token=on_token)

    def __getattr__(self, name):
        return getattr(self._policy, name)
