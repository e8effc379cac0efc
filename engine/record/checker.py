"""The checker: grades the filesystem state inside the sandbox, never the transcript.

Checks run as the scenario's user inside the sandbox (so `~`, symlinks and absolute paths mean what
they meant to the model), after the session or at any moment during it (the console shows them live).
"""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Protocol

from teletype.engine.sandbox.base import ExecResult
from teletype.engine.worlds.scenario import Check, CommandCheck, ContentCheck, ModeCheck, PathCheck, Scenario


class Executor(Protocol):
    def exec(self, command: str, timeout: float = 20.0) -> ExecResult: ...


@dataclass
class CheckResult:
    kind: str
    target: str
    passed: bool
    detail: str
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckReport:
    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def summary(self) -> str:
        ok = sum(r.passed for r in self.results)
        return f"{ok}/{len(self.results)} checks pass"

    def to_dict(self) -> dict:
        return {"passed": self.passed, "results": [r.to_dict() for r in self.results]}


def shell_path(path: str) -> str:
    """A scenario path as a shell word: `~/x` and `x` under "$HOME", `/x` as is."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    if path.startswith("/"):
        return shlex.quote(path)
    return '"$HOME"/' + shlex.quote(path)


_MISSING = 3  # exit status our probes use for "no such file"


def _read(sandbox: Executor, path: str) -> tuple[bytes | None, str]:
    p = shell_path(path)
    res = sandbox.exec(f"if [ -f {p} ]; then cat -- {p}; else exit {_MISSING}; fi")
    if res.returncode == _MISSING:
        return None, f"{path} is not a regular file"
    if res.returncode != 0:
        return None, f"cannot read {path}: {res.text.strip()[:200]}"
    return res.output, ""


def run_check(sandbox: Executor, check: Check) -> CheckResult:
    if isinstance(check, PathCheck):
        p = shell_path(check.path)
        res = sandbox.exec(f"[ -e {p} ] || [ -L {p} ]")
        exists = res.returncode == 0
        passed = exists if check.kind == "exists" else not exists
        detail = f"{check.path} {'exists' if exists else 'does not exist'}"
        return CheckResult(check.kind, check.path, passed, detail, check.description)
    if isinstance(check, ContentCheck):
        data, why = _read(sandbox, check.path)
        if data is None:
            return CheckResult(check.kind, check.path, False, why, check.description)
        text = data.decode("utf-8", "replace")
        if check.kind == "contains":
            passed = check.text in text
            detail = f"{'contains' if passed else 'does not contain'} {check.text!r}"
        elif check.kind == "not_contains":
            passed = check.text not in text
            detail = f"{'does not contain' if passed else 'still contains'} {check.text!r}"
        else:
            passed = text == check.text
            detail = "content matches" if passed else f"content differs: {text[:120]!r}"
        return CheckResult(check.kind, check.path, passed, detail, check.description)
    if isinstance(check, ModeCheck):
        p = shell_path(check.path)
        res = sandbox.exec(f"stat -c %a -- {p}")
        if res.returncode != 0:
            return CheckResult("mode", check.path, False, f"{check.path} does not exist", check.description)
        got = res.text.strip().splitlines()[-1] if res.text.strip() else "?"
        want = int(check.mode, 8)
        try:
            passed = int(got, 8) == want
        except ValueError:
            passed = False
        return CheckResult("mode", check.path, passed, f"mode {got.zfill(4)} (want {check.mode.zfill(4)})",
                           check.description)
    if isinstance(check, CommandCheck):
        res = sandbox.exec(check.command)
        passed = res.returncode == 0
        out = res.text.strip()
        detail = f"exit {res.returncode}" + (f": {out[-200:]}" if out else "")
        if res.timed_out:
            detail = "timed out"
        return CheckResult("command", check.command, passed, detail, check.description)
    raise TypeError(f"unknown check {check!r}")  # pragma: no cover


def run_checks(sandbox: Executor, scenario: Scenario) -> CheckReport:
    return CheckReport([run_check(sandbox, c) for c in scenario.checks])
