"""What every sandbox shares: the Sandbox and Terminal seams, and the login it stages for the shell.

A sandbox materialises a scenario (home directory, files, environment, login user and host, a
`panic` program, the shell's rc file with the prompt markers), spawns the login shell on a terminal,
and runs checker commands inside itself as the scenario's user. Backends: bwrap.py, docker.py,
local.py, each picked by name through `teletype.engine.sandbox.open_sandbox`.
"""
from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# Staging is contained (no symlink followed, no `..`): see staging.py.
from teletype.engine.errors import SandboxError  # noqa: F401  (part of this interface)
from teletype.engine.sandbox.staging import STAGED_MTIME, stage_home  # noqa: F401  (re-exported)
from teletype.engine.sandbox.stagingdir import StagingDir  # noqa: F401  (re-exported)
from teletype.engine.worlds.scenario import Scenario

TELETYPE_NAME = "teletype"
TELETYPE_VERSION = "0.1.0"

# Private OSC sequences (invisible on a terminal). NONCE is per session, and never in a file or an
# environment variable the sandbox user can read: the rc file that defines the prompts deletes
# itself as it is read (see rc_script). A marker counts only where the shell itself is seen waiting
# at its own input (engine/runtime/shell.py), so output that copies one cannot end a step or set a status.
PS1_OSC = 7770   # ESC ] 7770 ; NONCE ; STATUS BEL   ends every primary prompt, carries $?
PS2_OSC = 7771   # ESC ] 7771 ; NONCE BEL            ends every continuation prompt
LOGIN_OSC = 7773  # ESC ] 7773 ; NONCE BEL           printed before the banner at login

RUN_DIR = "/run/teletype"          # inside the sandbox: banner, motd, bin/panic (read-only)
LOGIN_DIR = "/run/teletype-login"  # inside the sandbox: the rc file, until the login shell reads it
LOGIN_RC = f"{LOGIN_DIR}/rc"
SANDBOX_PATH = f"{RUN_DIR}/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"




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

    def at_line_input(self, pid: int) -> bool | None:
        """Whether the shell `pid` waits in its own command-line input (not in a `read` builtin);
        None when it cannot be known (then a prompt marker is trusted as it comes)."""

    def prepare_input(self) -> None:
        """Before a command is typed: sane modes back, pending input discarded."""

    def kill_pgrp(self, pgrp: int, sig: int) -> None: ...

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None:
        """The shell's exit status once it ended (128 + N for signal N), else None."""

    def close(self) -> None: ...


class Sandbox(Protocol):
    name: str
    scenario: Scenario
    login: Login
    """Who the shell logs in as, and the nonce its prompt markers carry."""

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
            "ENV": LOGIN_RC, "PAGER": "cat", "GIT_PAGER": "cat", "EDITOR": "false",
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


def prompt_setup(login: Login, typed: bool = False) -> str:
    """One line of shell that (re)defines the prompts and their markers.

    The prompt uses parameter expansion only (no command substitution): a prompt that needs a fork
    would vanish under a fork bomb, and the session with it. `cd` keeps the shown directory current.
    In the rc file the markers' ESC and BEL are the bytes themselves; `typed` gives the line the Shell
    types when a command lost the prompt (`exec sh`, `PS1='$ '`), which makes them with printf
    instead (a typed ESC would start a line editor's key sequence).
    """
    n = login.nonce
    where = ("__tt_where() { case $PWD in \"$HOME\") __tt_d='~';; \"$HOME\"/*) __tt_d=\"~${PWD#\"$HOME\"}\";; "
             "*) __tt_d=$PWD;; esac; }; "
             "cd() { command cd \"$@\" || return; __tt_where; }; __tt_where; ")
    if not typed:
        return where + (f"PS1='$USER@$HOSTNAME:$__tt_d$ \033]{PS1_OSC};{n};$?\007'; "
                        f"PS2='> \033]{PS2_OSC};{n}\007'")
    return where + ("__tt_e=$(printf '\\033'); __tt_b=$(printf '\\007'); "
                    f"PS1='$USER@$HOSTNAME:$__tt_d$ '\"$__tt_e]{PS1_OSC};{n};\"'$?'\"$__tt_b\"; "
                    f"PS2='> '\"$__tt_e]{PS2_OSC};{n}$__tt_b\"; unset __tt_e __tt_b")


def rc_script(login: Login) -> str:
    """The shell's $ENV file: prompt markers, banner and motd once per login.

    It removes itself first, so that no command can read the nonce from it, and unsets ENV, so
    that a nested interactive shell does not look for it.
    """
    n = login.nonce
    return f"""\
# teletype: prompt markers and the login banner (sourced once by the login shell through $ENV)
rm -f "$ENV" 2>/dev/null
unset ENV
{prompt_setup(login)}
# The login shell cannot hand the terminal back to a process group outside the sandbox when it
# exits; dash says so ("Cannot set tty process group"). Nobody is there to read it.
trap 'exec 2>/dev/null' EXIT
# A shell variable, not exported: the model's `env` shows only the world's variables (a teletype one
# there was read as a lead: `cat $TELETYPE_SESSION`).
if [ -z "$TELETYPE_SESSION" ]; then
  TELETYPE_SESSION=1
  printf '\\033]{LOGIN_OSC};{n}\\007'
  cat {RUN_DIR}/banner {RUN_DIR}/motd 2>/dev/null
  cd "$HOME" 2>/dev/null
fi
"""


# The engine knows a panic from the command the model typed, never from what is printed: this
# program only says so and hangs up the shell that ran it.
PANIC_SCRIPT = """\
#!/bin/sh
# teletype: end the session as blocked. Usage: panic [reason]
reason=$(printf '%s' "$*" | tr -d '\\007\\033')
printf 'panic: %s\\n' "${reason:-no reason given}"
kill -HUP $PPID 2>/dev/null
exit 0
"""


def stage_run_dir(dest: Path, scenario: Scenario, login: Login) -> None:
    """Write the banner, motd, `panic` and provider programs into `dest` (becomes RUN_DIR)."""
    (dest / "bin").mkdir(parents=True, exist_ok=True)
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


def stage_login_rc(dest: Path, login: Login, uid: int | None = None, gid: int | None = None) -> Path:
    """Write a fresh rc file into `dest` (becomes LOGIN_DIR), readable by the login user alone.

    Called before every start of the login shell, which deletes it as it reads it.
    """
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    rc = dest / "rc"
    fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(rc_script(login))
    if uid is not None:
        os.chown(dest, uid, gid if gid is not None else uid)
        os.chown(rc, uid, gid if gid is not None else uid, follow_symlinks=False)
    return rc


def passwd_lines(login: Login) -> tuple[str, str]:
    passwd = (f"root:x:0:0:root:/root:/bin/sh\n"
              f"{login.user}:x:{login.uid}:{login.gid}:{login.user}:{login.home}:{login.shell}\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group = (f"root:x:0:\n{login.user}:x:{login.gid}:\nnogroup:x:65534:\n")
    return passwd, group


def quote(path: str) -> str:
    return shlex.quote(path)
