"""The `local` sandbox: a temporary home directory and no isolation at all.

Only used when asked for by name; it warns. Useful where neither bubblewrap nor docker exists, and
for debugging a scenario with the host's own tools.
"""
from __future__ import annotations

import subprocess
import warnings

from teletype.engine.sandbox.base import (
    ExecResult,
    Login,
    SandboxError,
    StagingDir,
    stage_home,
    stage_login_rc,
    stage_run_dir,
)
from teletype.engine.sandbox.ptyterm import PtyTerminal
from teletype.engine.worlds.scenario import Scenario


class LocalSandboxWarning(UserWarning):
    pass


class LocalSandbox:
    name = "local"

    def __init__(self, scenario: Scenario):
        warnings.warn("the local sandbox does not isolate anything: commands run on this host as you",
                      LocalSandboxWarning, stacklevel=2)
        self.scenario = scenario
        self.staging = StagingDir("teletype-local-")
        st = self.staging.path
        home = st / "home" / scenario.login.user
        self.login = Login(user=scenario.login.user, host=scenario.login.host, home=str(home),
                           shell=scenario.login.shell)
        try:
            outside = stage_home(home, scenario)
            if outside:
                raise SandboxError(
                    f"{scenario.source}: the local sandbox cannot create files outside home "
                    f"({', '.join(t for t, _ in outside)}); use --sandbox bwrap or docker")
            self.run_dir = st / "run"
            stage_run_dir(self.run_dir, scenario, self.login)
        except BaseException:
            self.staging.cleanup()
            raise
        self.home = home
        self.terminal: PtyTerminal | None = None

    def _env(self) -> dict[str, str]:
        env = self.login.environ(self.scenario)
        rd = str(self.run_dir)
        env["ENV"] = str(self.staging.path / "login" / "rc")
        env["PATH"] = env["PATH"].replace("/run/teletype", rd)
        return env

    def start(self, rows: int = 24, cols: int = 80) -> PtyTerminal:
        # The rc file names /run/teletype; point it at this sandbox's run dir instead.
        rc = stage_login_rc(self.staging.path / "login", self.login)
        rc.write_text(rc.read_text().replace("/run/teletype", str(self.run_dir)))
        self.terminal = PtyTerminal([self.login.shell, "-i"], env=self._env(), cwd=str(self.home),
                                    rows=rows, cols=cols)
        return self.terminal

    def exec(self, command: str, timeout: float = 20.0) -> ExecResult:
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], cwd=self.home, env=self._env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            return ExecResult(returncode=124, output=exc.output or b"", timed_out=True)
        return ExecResult(returncode=proc.returncode, output=proc.stdout)

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.close()
            self.terminal = None
        self.staging.cleanup()
