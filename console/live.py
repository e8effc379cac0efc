"""The live console: a session driven step by step by the operator, the model, or both.

This module is the screen's state machine (starting, proposing, ready, running, ended) and the
operator's actions; the engine calls themselves run in workers (teletype.console.bridge). The screen never
waits on the engine; keystrokes for takeover go through a one-thread executor so they stay in order
and never block the event loop.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from textual.binding import Binding
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from teletype.console.bridge import EngineBridge, TokenStream
from teletype.console.driver import ConsoleConfig, Driver
from teletype.console.panels import (
    BudgetPanel,
    ChecksPanel,
    CommandEditor,
    OutcomePanel,
    ProposalPanel,
    console_layout,
    fit,
)
from teletype.console.status import status_line
from teletype.console.terminal import TerminalPane

RUN_HINT = "r run · e edit · o override · a auto"
TYPE_HINT = "enter runs · esc cancels · an open quote or heredoc continues the line"


class LiveScreen(EngineBridge):
    BINDINGS = [
        # In the footer's order: the keys a session needs come first, so a narrow footer cuts only
        # the ones the command palette (ctrl+p) also offers.
        Binding("r", "run", "Run"),
        Binding("r", "retry", "Retry"),  # instead of Run when the model failed to propose
        Binding("e", "edit", "Edit"),
        Binding("o", "override", "Override"),
        Binding("a", "auto", "Auto"),
        Binding("t", "takeover", "Take over"),
        Binding("x", "end_exit", "Exit"),
        Binding("p", "end_panic", "Panic"),
        Binding("q", "quit", "Quit"),
        Binding("c", "check", "Check"),
        Binding("R", "restart", "Restart"),
        Binding("s", "scenarios", "Scenarios"),
        Binding("w", "record", "Rec on/off"),
        Binding("ctrl+right_square_bracket", "hand_back", "Hand the keyboard back"),
    ]

    def __init__(self, config: ConsoleConfig, *, scenario: str | None = None,
                 replay: list[str] | None = None, use_policy: bool = True) -> None:
        super().__init__()
        self.config = config
        self.spec = scenario or config.scenario
        self.record = config.record
        self.use_policy = self._want_policy = use_policy and config.policy is not None
        self._replay = replay
        self.driver: Driver | None = None
        self.gen = 0
        self.phase = "starting"
        """starting, proposing, ready, running, ended, failed."""
        self.auto = False
        self.proposal = None
        self.mode: str | None = None
        """What the open editor is for: edit, override, panic (None: closed)."""
        self.error: str | None = None
        self.propose_error: str | None = None
        """Why the model's last proposal failed (r retries), None when it did not."""
        self._stream: TokenStream | None = None
        """The proposal being generated, cancelled when the operator acts before it is done."""
        self._keys = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teletype-keys")

    def compose(self):
        yield from console_layout(TerminalPane(id="terminal"), ProposalPanel(id="proposal"))

    @property
    def pane(self) -> TerminalPane:
        return self.query_one(TerminalPane)

    @property
    def panel(self) -> ProposalPanel:
        return self.query_one(ProposalPanel)

    @property
    def session(self):
        return self.driver.session if self.driver else None

    def on_mount(self) -> None:
        fit(self)  # the layout for this size before the first refresh: the session starts at the pane's size
        self.driver = Driver(self.config)
        self.call_after_refresh(self.begin)

    def on_resize(self) -> None:
        fit(self)
        self.query_one("#status", Static).update(status_line(self))

    def on_unmount(self) -> None:
        self.cancel_proposal()
        self._keys.shutdown(wait=False)
        if self.driver is not None:
            self.driver.close()

    # -- the state shown ---------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.query_one("#status", Static).update(status_line(self))
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        panes = self.query(TerminalPane)
        if panes and panes.first().takeover:  # every key but ctrl+] goes to the shell
            return action == "hand_back"
        if action == "hand_back":
            return False
        live = self.phase not in ("starting", "ended", "failed")
        if action in ("run", "edit", "auto", "retry") and not self.use_policy:
            return False
        if action == "retry" or (action == "run" and self.propose_error):  # r is Run or Retry, not both
            failed = self.propose_error is not None and self.phase == "ready" and self.mode is None
            return failed if action == "retry" else False
        if action in ("run", "edit"):
            return True if self.phase == "ready" and self.proposal is not None else None
        if action == "auto":
            return True if live else None
        if action in ("override", "takeover", "end_exit", "end_panic", "check"):
            return True if live else None
        return True

    # -- lifecycle ---------------------------------------------------------------------------------
    def begin(self, spec: str | None = None) -> None:
        """Start (or restart) a session on `spec` (default: the current scenario)."""
        self.spec = spec or self.spec
        self.cancel_proposal()
        self.use_policy = self._want_policy  # a model that failed to load is tried again
        self.gen += 1
        self.auto, self.proposal, self.mode, self.error = False, None, None, None
        self.propose_error = None
        self.pane.takeover = False
        self.pane.reset()
        self.panel.show("", None, note="starting the sandbox...")
        self.query_one(ChecksPanel).show(None, running=True)
        self.query_one(OutcomePanel).show(None)
        self.query_one(BudgetPanel).show({}, 0, self.config.step_budget)
        self.set_phase("starting")
        rows, cols = self.pane.grid
        replay, self._replay = self._replay, None
        self._start(self.gen, self.spec, rows, cols, self.record, replay)

    def on_engine_bridge_note(self, msg: EngineBridge.Note) -> None:
        if msg.gen == self.gen and self.phase == "starting":
            self.panel.show("", None, note=msg.text)

    def on_engine_bridge_started(self, msg: EngineBridge.Started) -> None:
        if msg.gen != self.gen:
            return
        if self.driver.policy_error is not None:
            err = self.driver.policy_error
            self.use_policy = False
            self.error = f"the model did not load ({type(err).__name__}: {err}); you type the commands"
            self.notify(self.error, title="teletype", severity="error", timeout=15)
        steps = self.session.steps if self.session is not None else 0  # a branch re-typed some
        self.query_one(ChecksPanel).show(msg.report.to_dict(), when=f"after step {steps}" if steps else "at start")
        self._update_budget()
        if self.session is not None and self.session.ended:  # a replayed command ended it
            self._finish(self.gen, self.session.ended)
            return
        self._next()

    def _next(self) -> None:
        """After a start or a step: the model proposes, or the operator types."""
        session = self.session
        if session is not None and session.ended:
            return
        if self.use_policy:
            self.propose()
        else:
            self.set_phase("ready")
            self._open_editor("", "override")

    # -- proposing ---------------------------------------------------------------------------------
    def propose(self) -> None:
        self.proposal, self.propose_error = None, None
        self.set_phase("proposing")
        if self.mode is None:
            self.panel.show("", "model", note="proposing...")
        gen = self.gen
        stream = TokenStream(lambda: self.post_message(self.Streaming(gen, stream)))
        self._stream = stream
        self._propose(gen, stream)

    def cancel_proposal(self) -> None:
        """Stop a generation still running (at its next token), so that what the operator asked for
        gets the engine now instead of after the model's whole answer."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    def on_engine_bridge_streaming(self, msg: EngineBridge.Streaming) -> None:
        if msg.gen == self.gen and self.phase == "proposing" and self.mode is None:
            self.panel.show(msg.stream.read(), "model", note="proposing...")

    def on_engine_bridge_proposed(self, msg: EngineBridge.Proposed) -> None:
        if msg.gen != self.gen or self.phase != "proposing":
            return
        if msg.stream is not None and msg.stream is not self._stream:
            return  # a proposal for a context that has changed since (takeover steps)
        self.proposal, self._stream = msg.proposal, None
        self.last_stats = msg.proposal.stats  # the status line shows its decode rate
        self._update_budget(msg.proposal.stats)
        self.set_phase("ready")
        if self.mode is None:
            self._show_proposal()
            if self.auto:
                self.action_run()

    def _show_proposal(self) -> None:
        p = self.proposal
        if p is not None:
            note = f"raw: {p.raw!r}" if p.raw and p.raw.strip() != p.command.strip() else ""
            self.panel.show(p.command, p.source, note=note[:80], hint=RUN_HINT)

    # -- steps -------------------------------------------------------------------------------------
    def step(self, command: str, source: str, original: str | None = None, proposal=None) -> None:
        self.cancel_proposal()
        self.mode = None
        self.set_phase("running")
        self.panel.show(command, source, note="running..." + (" (original kept)" if original else ""))
        self.query_one(ChecksPanel).show(None, running=True)
        self._step(self.gen, command, source, original, proposal)

    def on_engine_bridge_stepped(self, msg: EngineBridge.Stepped) -> None:
        if msg.gen != self.gen:
            return
        self._update_budget(self.proposal.stats if self.proposal else None)
        self.proposal = None
        if msg.outcome is not None:
            self._ended(msg.outcome)
            return
        session = self.session
        self.query_one(ChecksPanel).show(msg.report.to_dict(), when=f"after step {session.steps}")
        self._next()

    def _ended(self, outcome) -> None:
        self.auto, self.mode = False, None
        self.pane.takeover = False
        data = outcome.to_dict()
        self.query_one(ChecksPanel).show({"passed": data["verified"], "results": data["checks"]},
                                         when="final")
        self.query_one(OutcomePanel).show(data, note="R restarts · s picks another scenario · q quits")
        self.panel.show("", None, note="the session has ended")
        self._update_budget()
        self.set_phase("ended")

    def _update_budget(self, stats: dict | None = None) -> None:
        session = self.session
        steps = session.steps if session else 0
        self.query_one(BudgetPanel).show(stats, steps, self.config.step_budget)

    # -- failures ----------------------------------------------------------------------------------
    def on_engine_bridge_failed(self, msg: EngineBridge.Failed) -> None:
        if msg.gen != self.gen:
            return
        text = f"{type(msg.error).__name__}: {msg.error}"
        self.error = f"{msg.op} failed: {text}"
        self.notify(self.error, title="teletype", severity="error", timeout=10)
        self.auto = False
        if msg.op == "start":
            self.panel.show("", None, note="no session", error=text, hint="R retries · s picks another scenario")
            self.query_one(ChecksPanel).show(None)
            self.query_one(OutcomePanel).show(None, note="no session")
            self.set_phase("failed")
            return
        session = self.session
        if session is not None and session.outcome is not None:
            self._ended(session.outcome)
        elif session is not None and session.ended:
            self._finish(self.gen, "stopped")
        else:
            self.set_phase("ready")
            if msg.op == "propose":
                self.propose_error = text
                if self.mode is None:
                    self.panel.show("", None, note="the model failed to propose", error=text,
                                    hint="r retry · o override · x exit · p panic")
                self.refresh_bindings()
            elif msg.op == "step" and not self.use_policy:
                self._open_editor("", "override")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:  # a bug, not an engine error: say so, keep running
            self.notify(f"internal error: {event.worker.error!r}", severity="error", timeout=10)

    # -- operator actions --------------------------------------------------------------------------
    def action_run(self) -> None:
        if self.phase == "ready" and self.proposal is not None:
            p = self.proposal
            self.step(p.command, p.source, proposal=p)

    def action_retry(self) -> None:
        """Ask the model again after a failed proposal (an endpoint that was down may be up now)."""
        if self.phase == "ready" and self.propose_error is not None and self.use_policy:
            self.propose()

    def action_edit(self) -> None:
        if self.phase == "ready" and self.proposal is not None:
            self.auto = False
            self._open_editor(self.proposal.command, "edit")

    def action_override(self) -> None:
        if self.phase in ("ready", "proposing"):
            self.auto = False
            self._open_editor("", "override")

    def action_end_panic(self) -> None:
        if self.phase in ("ready", "proposing"):
            self.auto = False
            self._open_editor("panic ", "panic")

    def action_end_exit(self) -> None:
        if self.phase in ("ready", "proposing"):
            self.auto = False
            self.step("exit", "operator")

    def _open_editor(self, text: str, mode: str) -> None:
        self.mode = mode
        source = "edited" if mode == "edit" else "operator"
        self.panel.open_editor(text, source, TYPE_HINT)

    def on_command_editor_submitted(self, msg: CommandEditor.Submitted) -> None:
        text = msg.text.rstrip("\n")
        if not text.strip():
            self.notify("type a command first (esc cancels)", timeout=3)
            return
        if self.phase not in ("ready", "proposing"):
            self.notify("the engine is busy; wait for the prompt", timeout=3)
            return
        if self.mode == "edit" and self.proposal is not None:
            p = self.proposal
            if text == p.command:
                self.step(text, p.source, proposal=p)
            else:
                self.step(text, "edited", original=p.command, proposal=p)
        else:
            self.step(text, "operator")

    def on_command_editor_cancelled(self, msg: CommandEditor.Cancelled) -> None:
        if not self.use_policy and self.phase == "ready":
            self.pane.focus()  # demonstration mode: the editor stays; esc frees the letter keys
            return
        self.mode = None
        if self.proposal is not None:
            self._show_proposal()
        elif self.propose_error is not None:
            self.panel.show("", None, note="the model failed to propose", error=self.propose_error,
                            hint="r retry · o override · x exit · p panic")
            self.refresh_bindings()
        else:
            self.panel.show("", "model", note="proposing..." if self.phase == "proposing" else "")
        self.pane.focus()

    def action_auto(self) -> None:
        self.auto = not self.auto
        self.set_phase(self.phase)
        if self.auto and self.phase == "ready" and self.mode is None:
            self.action_run()

    def action_check(self) -> None:
        if self.session is not None and self.phase not in ("ended", "failed", "starting"):
            self.query_one(ChecksPanel).show(None, running=True)
            self._check(self.gen)

    def on_engine_bridge_checked(self, msg: EngineBridge.Checked) -> None:
        if msg.gen == self.gen:
            self.query_one(ChecksPanel).show(msg.report.to_dict(), when="on demand")

    # -- takeover ----------------------------------------------------------------------------------
    def action_takeover(self) -> None:
        if self.phase in ("ready", "proposing", "running"):
            self.auto = False
            self._steps_at_takeover = self.session.steps if self.session is not None else 0
            self.pane.takeover = True
            self.set_phase(self.phase)

    def on_engine_bridge_takeover_stepped(self, msg: EngineBridge.TakeoverStepped) -> None:
        """Each command line entered during takeover is an operator step (engine Session.send_keys):
        the step count and the checks follow it; an `exit` or `panic` typed by hand ends the session."""
        if msg.gen != self.gen:
            return
        self._update_budget()
        if msg.result.ended:
            self.pane.takeover = False
            self._finish(self.gen, msg.result.ended)
            return
        self.query_one(ChecksPanel).show(None, running=True)
        self._check(self.gen)

    def on_terminal_pane_keys(self, msg: TerminalPane.Keys) -> None:
        self._keys.submit(self.driver.send_keys, msg.data)

    def action_hand_back(self) -> None:
        self.on_terminal_pane_hand_back(TerminalPane.HandBack())

    def on_terminal_pane_hand_back(self, msg: TerminalPane.HandBack) -> None:
        session = self.session
        if session is not None and session.takeover_running():
            self.notify("a command you entered is still running: finish it (or ^C), then hand back",
                        title="teletype", severity="warning", timeout=6)
            return
        self.pane.takeover = False
        self.set_phase(self.phase)
        changed = session is not None and session.steps != getattr(self, "_steps_at_takeover", session.steps)
        if changed and self.use_policy and self.phase in ("ready", "proposing") and self.mode is None:
            # The model's proposal was made before the operator's commands: ask again.
            self.cancel_proposal()
            self.propose()
        elif self.mode is not None:
            self.panel.editor.focus()

    def on_terminal_pane_resized(self, msg: TerminalPane.Resized) -> None:
        if self.driver is not None:
            self._keys.submit(self.driver.resize, msg.rows, msg.cols)

    # -- sessions ----------------------------------------------------------------------------------
    def action_restart(self) -> None:
        self.begin()

    def switch_scenario(self, spec: str) -> None:
        self.begin(spec)

    def action_scenarios(self) -> None:
        from textual.command import CommandPalette

        from teletype.console.commands import ScenarioCommands

        self.app.push_screen(CommandPalette(providers=[ScenarioCommands], placeholder="Pick a scenario..."))

    def action_record(self) -> None:
        self.record = not self.record
        session = self.session
        if self.phase == "ready" and session is not None and session.steps == 0:
            self.begin()  # nothing done yet: start over with the new setting
        else:
            self.notify(f"recording {'on' if self.record else 'off'} from the next session (R restarts)",
                        timeout=4)
            self.set_phase(self.phase)

    def action_quit(self) -> None:
        if self.session is None or self.session.outcome is not None or self.phase not in ("ready", "ended"):
            self.app.exit()  # busy or not started: on_unmount stops the session (Driver.close)
            return
        self.set_phase("ending")
        self._finish(self.gen, "stopped", then_quit=True)

    def on_engine_bridge_finished(self, msg: EngineBridge.Finished) -> None:
        if msg.then_quit:
            self.app.exit()
        elif msg.gen == self.gen and msg.outcome is not None:
            self._ended(msg.outcome)
