"""Scenario validation: the reference solution must end clean and an empty session must not.

Without this, a metric measures the checker (Terminal-Bench's oracle and no-op agents).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from teletype.engine.policy.scripted import ScriptedPolicy
from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits
from teletype.engine.worlds.scenario import Scenario, ScenarioError, load_scenario


@dataclass
class Validation:
    path: str
    name: str
    ok: bool
    reference: str = ""
    empty: str = ""
    problem: str = ""


def validate_scenario(path: str | Path, sandbox: str = "bwrap", limits: Limits = Limits(command_timeout=20)
                      ) -> Validation:
    try:
        sc: Scenario = load_scenario(path)
    except ScenarioError as exc:
        return Validation(str(path), Path(path).stem, False, problem=str(exc))
    want = "correct_panic" if sc.scenario.expect == "panic" else "success"
    try:
        ref = Session(sc, sandbox=sandbox, policy=ScriptedPolicy(sc), limits=limits,
                      step_budget=max(30, len(sc.solution.commands))).run()
        empty = Session(sc, sandbox=sandbox, policy=ScriptedPolicy(commands=["exit"]), limits=limits).run()
    except Exception as exc:  # a sandbox failure is a validation failure with its message
        return Validation(str(path), sc.name, False, problem=f"{type(exc).__name__}: {exc}")
    problems = []
    failed = "; ".join(f"{c['kind']} {c['target']}: {c['detail']}" for c in ref.checks if not c["passed"])
    if ref.outcome != want:
        problems.append(f"reference solution ended {ref.outcome}, expected {want}"
                        + (f" ({failed})" if failed else ""))
    elif not ref.verified:  # correct_panic says how it ended; the checks say what it left behind
        problems.append(f"reference solution leaves checks failing ({failed})")
    if empty.clean:
        problems.append(f"an empty session ends {empty.outcome}: the checks do not test the task")
    return Validation(str(path), sc.name, not problems, ref.outcome, empty.outcome, "; ".join(problems))


def validate_all(paths: list[Path], sandbox: str = "bwrap", jobs: int = 2) -> list[Validation]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda p: validate_scenario(p, sandbox), paths))
