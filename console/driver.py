"""The console's side of the engine: one Session at a time, driven by blocking calls made in workers.

Nothing here touches Textual. The live screen calls these methods from thread workers and turns the
results into messages; a lock keeps engine calls one at a time even if the operator acts while the
model is still proposing (the newer action simply waits for the engine).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from teletype.engine.policy.base import Policy, Proposal
from teletype.engine.record.checker import CheckReport
from teletype.engine.record.outcome import Outcome
from teletype.engine.record.recorder import default_run_dir
from teletype.engine.runtime.session import Session, StepResult
from teletype.engine.runtime.shell import Limits
from teletype.engine.worlds.scenario import Scenario, find_scenarios, load_scenario

# A train archetype the embedded default solves on auto; held-out ones are a key away (s: Scenarios)
DEFAULT_SCENARIO = "file_create/hello_script"

PolicyFactory = Callable[[Scenario], Policy]


@dataclass
class ConsoleConfig:
    """Everything `teletype console` / `teletype replay` decide before the first session."""

    scenario: str = DEFAULT_SCENARIO
    """A bundled name (archetype/name) or a .toml path."""
    policy: PolicyFactory | None = None
    """Builds the policy for a scenario; None: the operator types every command (demonstrations)."""
    model_label: str | None = None
    """What the status line calls the model (default: the policy's name)."""
    sandbox: str = "bwrap"
    sandbox_options: dict = field(default_factory=dict)
    step_budget: int = 30
    limits: Limits = field(default_factory=Limits)
    runs: Path = Path("runs")
    """Where recordings go, one directory per session (RUNS/<time>-<scenario>)."""
    record: bool = True
    record_dir: Path | None = None
    """A fixed directory for the first session (tests, scripts); later sessions use `runs`."""


def load_named(spec: str) -> Scenario:
    paths = find_scenarios(spec)
    if len(paths) != 1:
        from teletype.engine.worlds.scenario import ScenarioError

        raise ScenarioError(f"{spec!r} names {len(paths)} scenarios; the console runs one")
    return load_scenario(paths[0])


def scenario_names() -> list[tuple[str, str]]:
    """(name, description) of every bundled scenario, for the scenario picker."""
    out = []
    for path in find_scenarios(None):
        try:
            sc = load_scenario(path)
            out.append((sc.name, f"{sc.scenario.split}, expect {sc.scenario.expect}: {sc.scenario.description}"))
        except Exception as exc:  # a broken file is listed, not fatal
            out.append((f"{path.parent.name}/{path.stem}", f"invalid: {exc}"))
    return out


class Driver:
    """Owns the current Session; every method blocks and is meant for a worker thread."""

    def __init__(self, config: ConsoleConfig):
        self.config = config
        self.session: Session | None = None
        self.scenario: Scenario | None = None
        self.lock = threading.Lock()
        self._policies: list[Policy] = []
        self.policy_error: Exception | None = None
        """Why the last start has no policy although one was configured (shown to the operator)."""
        self._fixed_dir = config.record_dir

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, spec: str, *, rows: int, cols: int, record: bool, use_policy: bool = True,
              replay: list[str] | None = None,
              on_output: Callable[[bytes], None] | None = None,
              on_note: Callable[[str], None] | None = None) -> tuple[Session, str]:
        """Finish any current session, start one on `spec`, and re-type `replay` (branching).
        `on_output` receives the raw pty stream on the reader thread; `on_note` hears what start is
        doing when it takes a while (loading the model, re-typing a branch's commands)."""
        note = on_note or (lambda text: None)
        with self.lock:
            self._finish_locked("stopped")
            scenario = load_named(spec)
            policy = None
            self.policy_error = None
            if use_policy and self.config.policy is not None:
                if not self._policies:
                    note("loading the model (the embedded one is converted once, on first use: half a "
                         "minute; then a few seconds)...")
                try:
                    policy = self.config.policy(scenario)
                except Exception as exc:  # a model that fails to load: the operator types instead
                    self.policy_error = exc
                if policy is not None and policy not in self._policies:
                    self._policies.append(policy)
                note("starting the sandbox...")
            record_dir = None
            if record:
                record_dir = self._fixed_dir or default_run_dir(self.config.runs, scenario.name)
                self._fixed_dir = None
            session = Session(scenario, sandbox=self.config.sandbox, policy=policy,
                              record_dir=record_dir, step_budget=self.config.step_budget,
                              limits=self.config.limits, rows=rows, cols=cols,
                              sandbox_options=dict(self.config.sandbox_options),
                              on_output=on_output)
            self.session, self.scenario = session, scenario
            orientation = session.start()
            if replay:
                note(f"re-typing the first {len(replay)} commands...")
            for command in replay or []:
                result = session.execute(command, source="replay")
                if result.ended:
                    break
            return session, orientation

    def propose(self, on_token: Callable[[str], None]) -> Proposal:
        with self.lock:
            return self._live().propose(on_token=on_token)

    def step(self, command: str, *, source: str, original: str | None = None,
             proposal: Proposal | None = None) -> tuple[StepResult, CheckReport | None, Outcome | None]:
        """Type one command; then the checker, or (when it ended the session) the outcome."""
        with self.lock:
            session = self._live()
            raw = stats = None
            if proposal is not None:
                raw, stats = proposal.raw, proposal.stats
            result = session.execute(command, source=source, original=original, raw=raw, stats=stats)
            if result.ended:
                return result, None, session.finish()
            return result, session.check(), None

    def check(self) -> CheckReport:
        with self.lock:
            if self.session is None:
                raise RuntimeError("no session")
            return self.session.check()

    def finish(self, ended_by: str = "stopped") -> Outcome | None:
        with self.lock:
            return self._finish_locked(ended_by)

    def send_keys(self, data: bytes) -> None:
        session = self.session
        if session is not None and session.outcome is None:
            session.send_keys(data)

    def resize(self, rows: int, cols: int) -> None:
        session = self.session
        if session is not None and session.outcome is None and session.shell is not None:
            session.resize(rows, cols)

    def close(self, wait: float = 2.0) -> None:
        """At shutdown: finish the session (its recording gets a trajectory) and close policies.

        If a step or a proposal still holds the engine after `wait` seconds, the sandbox is closed
        under it instead (the step ends at once; events.jsonl keeps the record, `load_run` reads it)."""
        got = self.lock.acquire(timeout=wait)
        try:
            if got:
                self._finish_locked("stopped")
            elif self.session is not None:
                self.session.close()
        finally:
            if got:
                self.lock.release()
            for policy in self._policies:
                try:
                    policy.close()
                except Exception:
                    pass
            self._policies.clear()

    # -- helpers -----------------------------------------------------------------------------------
    def _live(self) -> Session:
        if self.session is None:
            raise RuntimeError("no session is running")
        return self.session

    def _finish_locked(self, ended_by: str) -> Outcome | None:
        session = self.session
        if session is None:
            return None
        if session.outcome is not None:
            return session.outcome
        if session.shell is None:  # never started
            session.close()
            return None
        return session.finish(ended_by)
