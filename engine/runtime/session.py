"""A session: one scenario, one sandbox, one shell, driven step by step.

The step API is what the console, the CLI, eval and the tests drive:

    s = Session(scenario, sandbox="bwrap", policy=policy, record_dir=run_dir)
    s.start()                       # sandbox up, shell logged in, orientation is messages[0]
    p = s.propose(on_token=...)     # the policy's next command (nothing is typed yet)
    r = s.execute(p.command, source=p.source, stats=p.stats)   # type it, observe
    s.check()                       # the checker, any time
    outcome = s.finish()            # checks, outcome, trajectory.json; the sandbox is closed

`run()` is the headless loop on top of them. Nothing here blocks on a UI; nothing here imports one.
"""
from __future__ import annotations

import logging
import re
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from teletype.engine.policy.base import Policy, Proposal, ProposalCancelled, Source, TokenCallback
from teletype.engine.record.checker import CheckReport, run_checks
from teletype.engine.record.outcome import Outcome, classify, is_terminal, turn_operated
from teletype.engine.record.recorder import SCHEMA, Recorder
from teletype.engine.runtime.shell import Limits, LoginTimeout, Observation, Shell, ShellError
from teletype.engine.runtime.takeover import Takeover
from teletype.engine.sandbox import DEFAULT, open_sandbox
from teletype.engine.sandbox.base import Sandbox, prompt_setup
from teletype.engine.worlds.scenario import Scenario

DEFAULT_STEP_BUDGET = 30
log = logging.getLogger(__name__)


class SessionError(RuntimeError):
    pass


_PANIC_WORD = re.compile(r"(?:^|[;&|({}!\n]|\b(?:then|else|do|elif)\b)\s*panic(?:\s|$|;|&|\|)")


def runs_panic(command: str) -> bool:
    """Whether the typed command runs `panic` as a command of its own (`test -f x || panic ...`)."""
    return bool(_PANIC_WORD.search(command))


def _panic_reason(command: str, output: str) -> str:
    """The reason: the words after `panic` when the command is one, else what `panic` printed."""
    if is_terminal(command) == "panic":
        return command.strip()[5:].strip()
    for line in reversed(output.splitlines()):
        if line.startswith("panic: "):
            return line[7:].strip()
    return ""


@dataclass
class StepResult:
    command: str
    observation: Observation
    ended: str | None
    """None while the session goes on; else exit, panic, budget or shell_lost."""
    step: int


class Session:
    def __init__(self, scenario: Scenario, *, sandbox: str | Sandbox = DEFAULT,
                 policy: Policy | None = None, record_dir: str | Path | None = None,
                 step_budget: int = DEFAULT_STEP_BUDGET, limits: Limits = Limits(),
                 rows: int = 24, cols: int = 80, sandbox_options: dict | None = None,
                 on_output: Callable[[bytes], None] | None = None):
        self.scenario = scenario
        self.policy = policy
        self.step_budget = step_budget
        self.limits = limits
        self.rows, self.cols = rows, cols
        self._sandbox_spec = sandbox
        self._sandbox_options = sandbox_options or {}
        self._on_output = on_output
        self.record_dir = Path(record_dir) if record_dir else None
        self.recorder: Recorder | None = None
        self.sandbox: Sandbox | None = None
        self.shell: Shell | None = None
        self.messages: list[dict] = []
        self.turns: list[dict] = []
        self.steps = 0
        self.ended: str | None = None
        self.outcome: Outcome | None = None
        self.last_check: CheckReport | None = None
        self.panic_reason: str | None = None
        self._takeover = Takeover(self._takeover_done)
        self._step_lock = threading.RLock()
        self.on_takeover_step: Callable[[StepResult], None] | None = None
        """Called (on a background thread) after each command entered during takeover."""

    @property
    def model_name(self) -> str:
        return getattr(self.policy, "name", None) or "operator"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> str:
        """Create the sandbox, log in, and return the orientation (the first user turn)."""
        if isinstance(self._sandbox_spec, str):
            self.sandbox = open_sandbox(self._sandbox_spec, self.scenario, **self._sandbox_options)
        else:
            self.sandbox = self._sandbox_spec
        try:
            if self.record_dir is not None:
                self.recorder = Recorder(self.record_dir, rows=self.rows, cols=self.cols,
                                         title=self.scenario.name)
                self.recorder.event("start", scenario=self.scenario.name, archetype=self.scenario.archetype,
                                    expect=self.scenario.scenario.expect, split=self.scenario.scenario.split,
                                    model=self.model_name, sandbox=self.sandbox.name,
                                    source=self.scenario.source, step_budget=self.step_budget)
            for attempt in (1, 2):
                term = self.sandbox.start(rows=self.rows, cols=self.cols)
                listeners = [fn for fn in (self.recorder.output if self.recorder else None,
                                           self._on_output) if fn is not None]
                self.shell = Shell(term, self.sandbox.login.nonce, self.limits, listeners=listeners,
                                   rearm=prompt_setup(self.sandbox.login, typed=True))
                self.shell.rows, self.shell.cols = self.rows, self.cols
                try:
                    orientation = self.shell.login()
                    break
                except LoginTimeout as exc:
                    # A shell that never prompts is replaced once (its sandbox state is untouched:
                    # nothing was typed yet); a second silence is an error.
                    self.shell.close()
                    if self.recorder is not None:
                        self.recorder.event("login_retry", attempt=attempt, reason=str(exc))
                    if attempt == 2:
                        raise self._login_failed(exc) from None
                except ShellError as exc:
                    self.shell.close()
                    raise self._login_failed(exc) from None
        except BaseException:
            self.close()
            raise
        self._append("user", orientation)
        if self.recorder is not None:
            self.recorder.marker("login")
        log.info("session started: %s in %s%s", self.scenario.name, self.sandbox.name,
                 f", recording to {self.record_dir}" if self.record_dir else "")
        return orientation

    def _login_failed(self, exc: Exception) -> Exception:
        """The login shell never gave a prompt: an error that names the scenario's [login.shell]
        (or the sandbox, when it was the sandbox that failed to start)."""
        from teletype.engine.sandbox.base import SandboxError

        text = str(exc)
        if "bwrap:" in text:
            err: Exception = SandboxError(f"{self.scenario.source}: the sandbox did not start: "
                                          f"{text[text.index('bwrap:'):]}")
        else:
            err = SessionError(f"{self.scenario.source}: [login.shell] {self.scenario.login.shell!r}: {text}")
        if self.recorder is not None:
            self.recorder.event("start_failed", reason=str(err))
        return err

    def _append(self, role: str, content: str) -> None:
        self.messages.append({"role": role, "content": content})
        if self.recorder is not None:
            self.recorder.event("message", role=role, content=content)

    # -- steps ------------------------------------------------------------------------------------
    def propose(self, on_token: TokenCallback | None = None) -> Proposal:
        if self.policy is None:
            raise SessionError("this session has no policy; type commands with execute()")
        if self.ended:
            raise SessionError(f"the session has ended ({self.ended})")
        try:
            proposal = self.policy.propose(list(self.messages), on_token=on_token)
        except ProposalCancelled:
            if self.recorder is not None:
                self.recorder.event("proposal_cancelled", step=self.steps + 1)
            raise
        if self.recorder is not None:
            self.recorder.event("proposal", step=self.steps + 1, command=proposal.command,
                                raw=proposal.raw, source=proposal.source, stats=proposal.stats)
        return proposal

    def execute(self, command: str, *, source: Source = "operator", original: str | None = None,
                raw: str | None = None, stats: dict | None = None,
                timeout: float | None = None) -> StepResult:
        """Type `command` at the prompt as one assistant turn and observe the result."""
        if self.shell is None:
            raise SessionError("the session has not started")
        if self.ended:
            raise SessionError(f"the session has ended ({self.ended})")
        if self.takeover_running():
            raise SessionError("a command entered during takeover is still running; finish it (or ^C) "
                               "before the next step")
        with self._step_lock:
            return self._execute(command, source=source, original=original, raw=raw, stats=stats,
                                 timeout=timeout)

    def _execute(self, command: str, *, source: Source, original: str | None, raw: str | None,
                 stats: dict | None, timeout: float | None) -> StepResult:
        self.steps += 1
        if self.recorder is not None:
            self.recorder.step(self.steps, command)
        self._append("assistant", command)
        terminal = is_terminal(command)
        typed = command
        if terminal == "panic":
            # The reason is words, not shell syntax: `panic the token isn't there` must not leave the
            # shell waiting for a closing quote. The assistant turn keeps what the model wrote.
            reason = command.strip()[5:].strip()
            typed = "panic " + shlex.quote(reason) if reason else "panic"
        obs = self.shell.run(typed, timeout=timeout)
        return self._conclude(command, terminal, obs, source=source, original=original, raw=raw,
                              stats=stats)

    def _conclude(self, command: str, terminal: str | None, obs: Observation, *, source: str,
                  original: str | None = None, raw: str | None = None, stats: dict | None = None,
                  extra: dict | None = None) -> StepResult:
        """Record one typed command's turn and observation; decide whether it ended the session."""
        ended: str | None = None
        if terminal == "panic" or (obs.ended and runs_panic(command)):
            # A panic is known from what the model typed, never from what was printed. It ends the
            # session even where the shell ignored the hang-up (`trap '' HUP`, nohup).
            ended = "panic"
            self.panic_reason = _panic_reason(command, obs.text)
            if not obs.ended:
                self.shell.close()
                obs.ended = True
        elif obs.ended:
            # The shell ended because of this command: `exit`, `exit;`, `true && exit`, `exec true`
            # end the session as exit (with their status); a shell killed by a signal is lost.
            code = obs.exit_code
            ended = "exit" if (terminal == "exit" or (code is not None and code < 128)) else "shell_lost"
        turn = {
            "step": self.steps, "source": source, "command": command,
            "status": obs.exit_code if ended == "exit" and obs.status is None else obs.status,
            "interrupted": obs.interrupted,
            "seconds": round(obs.seconds, 4), "output_bytes": obs.output_bytes,
            "operated": turn_operated(command, obs.status, obs.interrupted, obs.text),
            **(extra or {}),
        }
        if original is not None and original != command:
            turn["original"] = original
        if raw is not None and raw != command:
            turn["raw"] = raw
        if stats:
            turn["stats"] = stats
        self.turns.append(turn)
        if self.recorder is not None:
            self.recorder.event("turn", turn=turn)
        log.debug("step %d (%s): %r -> status %s%s%s", self.steps, source, command[:200], turn["status"],
                  f", {obs.interrupted}" if obs.interrupted else "", f", ended: {ended}" if ended else "")
        if ended is None:
            self._append("user", obs.text)
            if self.steps >= self.step_budget:
                ended = "budget"
        self.ended = ended
        return StepResult(command=command, observation=obs, ended=ended, step=self.steps)

    def check(self) -> CheckReport:
        if self.sandbox is None:
            raise SessionError("the session has not started")
        report = run_checks(self.sandbox, self.scenario)
        self.last_check = report
        if self.recorder is not None:
            self.recorder.event("check", step=self.steps, **report.to_dict())
        return report

    def send_keys(self, data: bytes) -> None:
        """Operator takeover: keystrokes straight to the terminal (recorded as cast input).

        Each command line the operator enters at the shell's prompt becomes a step of its own, an
        `operator` turn with `"takeover": true` and its observation, as if typed through execute():
        the model sees it in its context and training can use it. Keys typed while that command
        runs (into an editor, a pager, a `read`) are the program's, not new commands; lines entered
        at a continuation prompt (a heredoc) join the command."""
        if self.shell is None or self.shell.closed or self.ended:
            return
        if self.recorder is not None:
            self.recorder.input(data)
        self._takeover.keys(self.shell, data)

    def takeover_running(self) -> bool:
        """Whether a command the operator entered during takeover is still running."""
        return self._takeover.running()

    def _takeover_done(self, lines: list[str], obs: Observation) -> None:
        command = "\n".join(lines)
        with self._step_lock:
            if self.ended or self.outcome is not None:
                return
            self.steps += 1
            if self.recorder is not None:
                self.recorder.step(self.steps, lines[0])
            self._append("assistant", command)
            result = self._conclude(command, is_terminal(command), obs, source="operator",
                                    extra={"takeover": True})
        if self.on_takeover_step is not None:
            self.on_takeover_step(result)

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        if self.shell is not None:
            self.shell.resize(rows, cols)
        if self.recorder is not None:
            self.recorder.resize(rows, cols)

    # -- the end ----------------------------------------------------------------------------------
    def finish(self, ended_by: str | None = None) -> Outcome:
        """Grade the final state, write trajectory.json, close the sandbox. Idempotent."""
        if self.outcome is not None:
            return self.outcome
        # A command entered during takeover: recorded if the shell has come back (or ended) by now;
        # one still running when the session is stopped is not a step.
        self._takeover.stop()
        if self.shell is not None and self.shell.closed and not self.ended:
            # It went away between steps: by a line typed during operator takeover, or a signal.
            code = self.shell.term.exit_code()
            if runs_panic(self._takeover.last):
                self.ended = "panic"
                self.panic_reason = _panic_reason(self._takeover.last, "")
            elif is_terminal(self._takeover.last) == "exit" or (code is not None and code < 128):
                self.ended = "exit"
            else:
                self.ended = "shell_lost"
        self.ended = self.ended or ended_by or "stopped"
        try:
            if self.shell is not None and not self.shell.closed:
                self.shell.close()  # checks see the state the session left, with nothing running
            report = self.check() if self.sandbox is not None else CheckReport([])
            operated = any(t.get("operated") for t in self.turns)
            outcome = Outcome(
                outcome=classify(expect=self.scenario.scenario.expect, ended_by=self.ended,
                                 verified=report.passed, operated=operated),
                verified=report.passed, ended_by=self.ended, operated=operated, steps=self.steps,
                expect=self.scenario.scenario.expect, checks=[r.to_dict() for r in report.results],
                panic_reason=self.panic_reason)
            self.outcome = outcome
            log.info("session ended: %s: %s (ended by %s, %d steps)", self.scenario.name,
                     outcome.outcome, outcome.ended_by, self.steps)
            if self.recorder is not None:
                self.recorder.event("end", outcome=outcome.to_dict())
                self.recorder.write_trajectory(self.trajectory())
        finally:
            self.close()
        return outcome

    def trajectory(self) -> dict:
        return {
            "schema": SCHEMA,
            "scenario": self.scenario.name,
            "archetype": self.scenario.archetype,
            "split": self.scenario.scenario.split,
            "expect": self.scenario.scenario.expect,
            "model": self.model_name,
            "sandbox": self.sandbox.name if self.sandbox is not None else None,
            "step_budget": self.step_budget,
            "messages": list(self.messages),
            "turns": list(self.turns),
            "outcome": self.outcome.to_dict() if self.outcome else None,
        }

    def close(self) -> None:
        """End the shell and remove the sandbox. A sandbox that cannot be removed (a container the
        daemon would not delete) is a leaked resource: it is logged as an error and recorded, and
        `teletype clean` removes it later; the recording is closed either way."""
        if self.shell is not None:
            self.shell.close()
        try:
            if self.sandbox is not None:
                try:
                    self.sandbox.close()
                except Exception as exc:
                    log.error("the %s sandbox of %s was not removed: %s (`teletype clean` removes what "
                              "was left)", self.sandbox.name, self.scenario.name, exc, exc_info=True)
                    if self.recorder is not None:
                        try:
                            self.recorder.event("sandbox_not_removed", error=str(exc))
                        except (OSError, ValueError):
                            pass
        finally:
            if self.recorder is not None:
                self.recorder.close()

    # -- headless ---------------------------------------------------------------------------------
    def run(self, on_step: Callable[[StepResult], None] | None = None) -> Outcome:
        """Start (if needed), let the policy drive until exit, panic or the step budget; finish."""
        if self.policy is None:
            raise SessionError("run() needs a policy")
        try:
            if self.shell is None:
                self.start()
            while not self.ended:
                proposal = self.propose()
                result = self.execute(proposal.command, source=proposal.source, raw=proposal.raw,
                                      stats=proposal.stats)
                if on_step is not None:
                    on_step(result)
        except BaseException:
            if self.outcome is None:
                try:
                    self.finish("stopped")
                except Exception:
                    log.error("finishing the stopped session %s failed; events.jsonl keeps every step",
                              self.scenario.name, exc_info=True)
                    self.close()
            raise
        return self.finish()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        if self.outcome is None:
            self.close()
