"""What every sandbox shares: the Sandbox and Terminal seams, and the login it stages for the shell.

A sandbox materialises a scenario (home directory, files, environment, login user and host, a
`panic` program, the shell's rc file with the prompt markers), spawns the login shell on a terminal,
and runs checker commands inside itself as the scenario's user. Backends: bwrap.py, docker.py,
local.py, each picked by name through `engine.sandbox.open_sandbox`.
"""
from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..scenario import Scenario
# Staging is contained (no symlink followed, no `..`): see staging.py.
from .staging import STAGED_MTIME, StagingDir, stage_home  # noqa: F401  (re-exported)

TELETYPE_NAME = "teletype"
TELETYPE_VERSION = "0.1.0"

# Private OSC sequences (invisible on a terminal). NONCE is per session.
PS1_OSC = 7770   # ESC ] 7770 ; NONCE ; STATUS BEL   ends every primary prompt, carries $?
PS2_OSC = 7771   # ESC ] 7771 ; NONCE BEL            ends every continuation prompt
PANIC_OSC = 7772  # ESC ] 7772 ; REASON BEL          printed by the `panic` program
LOGIN_OSC = 7773  # ESC ] 7773 ; NONCE BEL           printed before the banner at login

RUN_DIR = "/run/teletype"          # inside the sandbox: rc file, banner, bin/panic
SANDBOX_PATH = f"{RUN_DIR}/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"




class SandboxError(RuntimeError):
    """A sandbox could not be created or used; the message says what to install or use instead."""


@dataclass
class ExecResult:
    returncode: int
    output: bytes
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


@runtime_checkable
class Terminal(Protocol):
    """The raw connection to a shell on a terminal (a local pty, or a container's tty)."""

    def read(self, timeout: float) -> bytes:
        """Bytes from the terminal; b"" when none arrived within `timeout`; EOFError once it closed."""

    def write(self, data: bytes) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def foreground_pgrp(self) -> int | None:
        """The terminal's foreground process group, or None when it cannot be known."""

    def waiting_for_input(self, pgrp: int | None) -> bool:
        """True when the foreground program waits on the keyboard (raw mode, or blocked reading the tty)."""

    def save_modes(self) -> None:
        """Remember the terminal modes (called at an idle prompt)."""

    def restore_modes(self) -> None:
        """Put back the modes saved last (after an interactive program was killed)."""

    def kill_pgrp(self, pgrp: int, sig: int) -> None: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class Sandbox(Protocol):
    name: str
    scenario: Scenario

    def start(self, rows: int = 24, cols: int = 80) -> Terminal:
        """Spawn the scenario's login shell on a terminal."""

    def exec(self, command: str, timeout: float = 20.0) -> ExecResult:
        """Run `sh -c command` inside the sandbox as the scenario's user (used by the checker)."""

    def close(self) -> None:
        """End every process and remove what the sandbox created."""


@dataclass
class Login:
    """The identity and environment the shell logs in with, and the nonce its markers carry."""

    user: str
    host: str
    home: str
    shell: str
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))
    uid: int = 1000
    gid: int = 1000

    def environ(self, scenario: Scenario) -> dict[str, str]:
        env = {
            "HOME": self.home, "USER": self.user, "LOGNAME": self.user, "SHELL": self.shell,
            "HOSTNAME": self.host, "PATH": SANDBOX_PATH, "TERM": "xterm", "LANG": "C.UTF-8",
            "ENV": f"{RUN_DIR}/rc", "PAGER": "cat", "GIT_PAGER": "cat", "EDITOR": "false",
            "VISUAL": "false",
        }
        for key, value in scenario.env.items():
            if value == "~" or value.startswith("~/"):
                value = self.home + value[1:]
            env[key] = value
        return env


def banner(scenario: Scenario) -> str:
    lg = scenario.login
    return f"{TELETYPE_NAME} {TELETYPE_VERSION} host: {lg.host} user: {lg.user} shell: {lg.shell}\n"


def rc_script(login: Login) -> str:
    """The shell's $ENV file: prompt markers, banner and motd once per login.

    The prompt uses parameter expansion only (no command substitution): a prompt that needs a fork
    would vanish under a fork bomb, and the session with it. `cd` keeps the shown directory current.
    """
    n = login.nonce
    return f"""\
# teletype: prompt markers and the login banner (sourced by interactive shells through $ENV)
__tt_where() {{
  case $PWD in "$HOME") __tt_d='~';; "$HOME"/*) __tt_d="~${{PWD#"$HOME"}}";; *) __tt_d=$PWD;; esac
}}
cd() {{ command cd "$@" || return; __tt_where; }}
PS1='$USER@$HOSTNAME:$__tt_d$ \033]{PS1_OSC};{n};$?\007'
PS2='> \033]{PS2_OSC};{n}\007'
# The login shell cannot hand the terminal back to a process group outside the sandbox when it
# exits; dash says so ("Cannot set tty process group"). Nobody is there to read it.
trap 'exec 2>/dev/null' EXIT
if [ -z "$TELETYPE_SESSION" ]; then
  TELETYPE_SESSION=1; export TELETYPE_SESSION
  printf '\033]{LOGIN_OSC};{n}\007'
  cat {RUN_DIR}/banner {RUN_DIR}/motd 2>/dev/null
  cd "$HOME" 2>/dev/null
fi
__tt_where
"""


PANIC_SCRIPT = f"""\
#!/bin/sh
# teletype: end the session as blocked. Usage: panic [reason]
reason=$(printf '%s' "$*" | tr -d '\\007\\033')
printf 'panic: %s\\n' "${{reason:-no reason given}}"
printf '\\033]{PANIC_OSC};%s\\007' "$reason"
kill -HUP $PPID 2>/dev/null
exit 0
"""


def stage_run_dir(dest: Path, scenario: Scenario, login: Login) -> None:
    """Write the rc file, banner, motd, `panic` and provider programs into `dest` (becomes RUN_DIR)."""
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    (dest / "rc").write_text(rc_script(login))
    (dest / "banner").write_text(banner(scenario))
    motd = scenario.login.motd
    (dest / "motd").write_text(motd if not motd or motd.endswith("\n") else motd + "\n")
    programs = {"panic": PANIC_SCRIPT}
    for name, body in scenario.provider.items():
        programs[name] = body if body.startswith("#!") else "#!/bin/sh\n" + body
    for name, body in programs.items():
        p = dest / "bin" / name
        p.write_text(body)
        p.chmod(0o755)
    for p in [dest, dest / "bin", *dest.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
        elif p.stat().st_mode & 0o111 == 0:
            p.chmod(0o644)


def passwd_lines(login: Login) -> tuple[str, str]:
    passwd = (f"root:x:0:0:root:/root:/bin/sh\n"
              f"{login.user}:x:{login.uid}:{login.gid}:{login.user}:{login.home}:{login.shell}\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group = (f"root:x:0:\n{login.user}:x:{login.gid}:\nnogroup:x:65534:\n")
    return passwd, group


def quote(path: str) -> str:
    return shlex.quote(path)
