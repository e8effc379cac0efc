"""The bridge between the live screen and the engine: thread workers that call the Driver, and the
messages they post back.

Every engine call (start, propose, execute + check, check, finish) runs in a thread worker; its
result comes back as a message tagged with the session generation, so a reply that belongs to a
session the operator has since restarted is ignored. Threads only post messages (STYLE.md 4).
"""
from __future__ import annotations

import threading

from textual import work
from textual.message import Message
from textual.screen import Screen

from teletype.console.driver import Driver
from teletype.engine.policy.base import ProposalCancelled


class TokenStream:
    """The model's text as it streams, handed from the policy's thread with one message pending.

    `cancel()` (the operator typed their own command) makes the next piece raise ProposalCancelled in
    the policy's thread, which stops the generation there instead of letting it run to its end."""

    def __init__(self, post):
        self._post, self._lock = post, threading.Lock()
        self.text, self._pending = "", False
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def add(self, piece: str) -> None:
        if self.cancelled.is_set():
            raise ProposalCancelled
        with self._lock:
            self.text += piece
            if self._pending:
                return
            self._pending = True
        self._post()

    def read(self) -> str:
        with self._lock:
            self._pending = False
            return self.text


class EngineBridge(Screen):
    """A screen that drives one Driver from workers. Subclasses handle the messages."""

    driver: Driver
    gen: int = 0
    use_policy: bool = False

    class Started(Message):
        def __init__(self, gen: int, report) -> None:
            super().__init__()
            self.gen, self.report = gen, report

    class Note(Message):
        """What a start is doing while it takes a while (loading the model...)."""

        def __init__(self, gen: int, text: str) -> None:
            super().__init__()
            self.gen, self.text = gen, text

    class Streaming(Message):
        def __init__(self, gen: int, stream: TokenStream) -> None:
            super().__init__()
            self.gen, self.stream = gen, stream

    class Proposed(Message):
        def __init__(self, gen: int, proposal, stream: TokenStream | None = None) -> None:
            super().__init__()
            self.gen, self.proposal, self.stream = gen, proposal, stream

    class TakeoverStepped(Message):
        """A command the operator entered during takeover finished: it is a step of its own."""

        def __init__(self, gen: int, result) -> None:
            super().__init__()
            self.gen, self.result = gen, result

    class Stepped(Message):
        def __init__(self, gen: int, result, report, outcome) -> None:
            super().__init__()
            self.gen, self.result, self.report, self.outcome = gen, result, report, outcome

    class Checked(Message):
        def __init__(self, gen: int, report) -> None:
            super().__init__()
            self.gen, self.report = gen, report

    class Finished(Message):
        def __init__(self, gen: int, outcome, then_quit: bool = False) -> None:
            super().__init__()
            self.gen, self.outcome, self.then_quit = gen, outcome, then_quit

    class Failed(Message):
        def __init__(self, gen: int, op: str, error: BaseException) -> None:
            super().__init__()
            self.gen, self.op, self.error = gen, op, error

    def _listener(self, gen: int):
        """The pane's stream listener for session `gen`: a restarted session's last words are dropped."""
        listener = self.pane.listener

        def on_output(data: bytes) -> None:
            if gen == self.gen:
                listener(data)

        return on_output

    @work(thread=True, exit_on_error=False, group="engine")
    def _start(self, gen, spec, rows, cols, record, replay) -> None:
        try:
            self.driver.start(spec, rows=rows, cols=cols, record=record, use_policy=self.use_policy,
                              replay=replay, on_output=self._listener(gen),
                              on_note=lambda text: self.post_message(self.Note(gen, text)))
            report = self.driver.check()
        except Exception as exc:
            self.post_message(self.Failed(gen, "start", exc))
            return
        if self.driver.session is not None:
            self.driver.session.on_takeover_step = (
                lambda result: self.post_message(self.TakeoverStepped(gen, result)))
        self.post_message(self.Started(gen, report))

    @work(thread=True, exit_on_error=False, group="engine")
    def _propose(self, gen: int, stream: TokenStream) -> None:
        try:
            proposal = self.driver.propose(stream.add)
        except ProposalCancelled:
            return  # the operator's own command is waiting for the engine; nothing to show
        except Exception as exc:
            self.post_message(self.Failed(gen, "propose", exc))
            return
        self.post_message(self.Proposed(gen, proposal, stream))

    @work(thread=True, exit_on_error=False, group="engine")
    def _step(self, gen, command, source, original, proposal) -> None:
        try:
            result, report, outcome = self.driver.step(command, source=source, original=original,
                                                       proposal=proposal)
        except Exception as exc:
            self.post_message(self.Failed(gen, "step", exc))
            return
        self.post_message(self.Stepped(gen, result, report, outcome))

    @work(thread=True, exit_on_error=False, group="engine")
    def _check(self, gen: int) -> None:
        try:
            report = self.driver.check()
        except Exception as exc:
            self.post_message(self.Failed(gen, "check", exc))
            return
        self.post_message(self.Checked(gen, report))

    @work(thread=True, exit_on_error=False, group="engine")
    def _finish(self, gen: int, ended_by: str, then_quit: bool = False) -> None:
        try:
            outcome = self.driver.finish(ended_by)
        except Exception as exc:
            self.post_message(self.Failed(gen, "finish", exc))
            outcome = None
        self.post_message(self.Finished(gen, outcome, then_quit))
