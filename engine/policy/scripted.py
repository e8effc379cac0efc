"""The `scripted` policy: the scenario's reference solution, one command per step.

With `detours` (a rate in 0..1) some steps are preceded by a recoverable detour, recorded with the
provenance `detour`: a mistyped command name (the shell says `not found`), a look at a directory or a
misspelled path the next command names, `cat` of the directory the next command lists or enters (`Is a
directory`), a first look in the wrong place for the assignment (`env` when it is in a file, `ls -a`
when it is in a variable or a program), or a flood of binary output (`cat /bin/sh`, the favourite loop
of an under-trained model). Each detour reads or fails and changes nothing, so the reference
solution still solves the task after it; the recording then shows a correct continuation after an
error, which reference solutions alone never do. `teletype train` leaves the detour turns out of the
loss by default (their provenance), so a model learns the recovery and not the mistake.

The detours of a scenario depend only on (scenario name, seed): the same corpus records identically.
"""
from __future__ import annotations

import re
import shlex
from random import Random

from teletype.engine.policy.base import Message, PolicyError, Proposal, TokenCallback
from teletype.engine.worlds.scenario import Scenario

MAX_DETOURS = 2
"""At most this many detours in one session."""

_SIMPLE = re.compile(r"^[A-Za-z0-9_./~=+,:@%-]+( +[A-Za-z0-9_./~=+,:@%*-]+)*$")
"""A command with no shell syntax: no redirection, pipe, list, quote, expansion or newline. Only such a
command is mistyped on purpose: a mistyped `x > f` would still truncate f."""
_PATH = re.compile(r"^(~|/|\.{1,2}/)?[A-Za-z0-9_.~-]+(/[A-Za-z0-9_.-]+)*/?$")
_FLOODS = ("cat /bin/sh", "cat /bin/ls", "ls -R /usr/lib")
_PROGRAMS = frozenset("""
    alias ar as at awk basename bc bg bzip2 cal cat cc cd chgrp chmod chown cksum clear cmp col comm cp cpio
    crontab csplit ctags cut date dc dd df diff dig dirname du echo ed env ex expand expr false fc fg file find
    fmt fold free gcc gdb getent git grep groups gzip hash head host hostname iconv id install ip jobs join kill
    last ld less lex link ln locale logger logname lp lpr ls m4 mail make man md5sum mesg mkdir mkfifo mktemp
    more mount mv nc nice nl nm nohup nproc od paste patch pax perl pg ping pr printf ps pwd python3 read
    readlink realpath renice reset rev rm rmdir scp script sed seq sh sha256sum shuf sleep sort split ss ssh
    stat strings strip stty su sudo sum sync tabs tac tail talk tar tee test time timeout top touch tput tr
    true tsort tty type ulimit umask umount unalias uname uniq unlink unzip uptime users vi w wait wall wc
    wget which who write xargs xz yacc yes zcat zip
""".split())
"""Names a mistyped program must not turn into (a fixed list, so that plans do not depend on the machine)."""


def _paths(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    return [w for w in words[1:] if ("/" in w or w.startswith("~")) and _PATH.match(w) and "*" not in w]


def _typo(command: str, rng: Random) -> str | None:
    if not _SIMPLE.match(command):
        return None
    head, _, rest = command.partition(" ")
    if not head.isalnum() or len(head) < 2 or head in ("cd", "exit", "panic"):
        return None
    i = rng.randrange(1, len(head))
    wrong = head[:i] + head[i - 1] + head[i:] if rng.random() < 0.5 else head[:i - 1] + head[i:]
    if wrong == head or len(wrong) < 2 or wrong in _PROGRAMS:
        wrong = head + head[-1]
    if wrong in _PROGRAMS:
        return None
    return f"{wrong} {rest}".rstrip()


def _missing(command: str, rng: Random) -> str | None:
    paths = [p for p in _paths(command) if len(p.rstrip("/").rsplit("/", 1)[-1]) > 2]
    if not paths:
        return None
    path = rng.choice(paths).rstrip("/")
    head, _, name = path.rpartition("/")
    i = rng.randrange(len(name))
    wrong = name[:i] + name[i + 1:]
    return f"cat {head}/{wrong}" if head else f"cat {wrong}"


def _look(command: str, rng: Random) -> str | None:
    paths = _paths(command)
    if not paths:
        return rng.choice(["ls -la", "pwd", "ls"])
    path = rng.choice(paths).rstrip("/")
    folder = path if command.split()[0] in ("cd", "ls") else (path.rpartition("/")[0] or ".")
    return f"ls -la {folder}"


_PLACES = {"env": 2, "ls -a": 1, "ls": 1}
"""Where a newcomer looks first for the assignment, with weights: the first detour is often one that
is not the script's own first look (`env` most, the look an under-trained model repeats)."""


def _place(command: str, rng: Random) -> str | None:
    head = command.split(" ", 1)[0]
    options = [p for p in _PLACES if p.split(" ", 1)[0] != head]
    return rng.choices(options, weights=[_PLACES[p] for p in options])[0] if options else None


def _directory(command: str, rng: Random) -> str | None:
    """`cat D` before a command that lists or enters the directory D (`ls -l D`, `cd D`)."""
    if not _SIMPLE.match(command):
        return None
    words = command.split()
    if words[0] not in ("ls", "cd"):
        return None
    dirs = [w for w in words[1:] if not w.startswith("-") and _PATH.match(w) and w not in (".", "..", "~")]
    return f"cat {rng.choice(dirs).rstrip('/')}" if len(dirs) == 1 else None


def plan_detours(commands: list[str], rate: float, seed: str) -> list[tuple[str, str]]:
    """The commands to type, each with its provenance: the script's own (`scripted`) with detours
    (`detour`) drawn before some of them. The terminal command (exit/panic) gets none."""
    rng = Random(seed)
    plan: list[tuple[str, str]] = []
    left = MAX_DETOURS
    for k, command in enumerate(commands):
        terminal = command.split(" ", 1)[0] in ("exit", "panic") and k == len(commands) - 1
        if not terminal and left and rate > 0 and rng.random() < rate:
            kinds, weights = ["typo", "missing", "look", "flood", "directory"], [4, 3, 2, 1, 3]
            if k == 0:
                kinds, weights = kinds + ["place"], weights + [13]
            kind = rng.choices(kinds, weights=weights)[0]
            make = {"typo": _typo, "missing": _missing, "look": _look, "directory": _directory,
                    "place": _place, "flood": lambda c, r: r.choice(_FLOODS)}[kind]
            detour = make(command, rng) or _look(command, rng)
            if detour and detour != command:
                plan.append((detour, "detour"))
                left -= 1
        plan.append((command, "scripted"))
    return plan


class ScriptedPolicy:
    def __init__(self, scenario: Scenario | None = None, commands: list[str] | None = None,
                 detours: float = 0.0, seed: int = 0):
        if commands is None:
            if scenario is None:
                raise PolicyError("the scripted policy needs a scenario (its [solution]) or commands")
            commands = list(scenario.solution.commands)
        if not 0.0 <= detours <= 1.0:
            raise PolicyError(f"detours is a rate from 0 to 1, not {detours}")
        self.commands = list(commands)
        name = scenario.name if scenario is not None else "commands"
        self.plan = plan_detours(self.commands, detours, f"{name}:{seed}") if detours else \
            [(c, "scripted") for c in self.commands]
        self.name = "scripted"
        self._next = 0

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        # The position follows the conversation, so a restarted or branched session lines up.
        done = sum(1 for m in messages if m["role"] == "assistant")
        if done >= len(self.plan):
            raise PolicyError(f"the script has {len(self.plan)} commands and all were typed")
        command, source = self.plan[done]
        if on_token is not None:
            on_token(command)
        return Proposal(command=command, raw=command, source=source)

    def close(self) -> None:
        pass
