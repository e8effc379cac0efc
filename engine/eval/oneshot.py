"""The one-shot competence probe: does a model know how to do a task when it is simply told it?

A live eval measures the whole routine: find the directive, carry it out, end the session. This
probe takes the routine away. A generated world's directive is put to the model as a plain chat
question ("I am logged in to a POSIX shell as USER on HOST ... Reply with only the shell commands"),
the commands of its answer are typed into the world's sandbox one by one, and the world's own
checks grade the result. It asks what a model brings to a task type by itself: a command that the
base model cannot write when told the task outright is not one that operate-and-terminate training
can transfer to it.

The answer is read generously, so that the probe bounds what the model knows from above instead of
testing its formatting: the first fenced code block if there is one (else every line), a leading
`$ ` and `sudo ` dropped (there is no sudo in a sandbox, and no need of one in your own home),
comment and blank lines skipped, a heredoc or a loop spread over lines typed as one command, at most
MAX_LINES commands typed. Everything else is typed as written, prose included.

Only generated worlds can be probed: their generator knows the directive that the announcement
hides somewhere in the world. The panic archetype is left out (its right answer is to refuse).
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from teletype.engine.runtime.session import Session
from teletype.engine.runtime.shell import Limits
from teletype.engine.worlds.generators import ARCHETYPES, build
from teletype.engine.worlds.scenario import load_scenario

MAX_LINES = 8
"""Commands of an answer typed at most (the reference solutions need 2-6)."""

SKIPPED = ("panic",)
"""Archetypes without a command to know: the right answer is to stop."""

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.S)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_OPENS = re.compile(r"(?<![\w.-])(?:do|then|case|\{)(?![\w.-])")
_CLOSES = re.compile(r"(?<![\w.-])(?:done|fi|esac|elif|\})(?![\w.-])")


def question(user: str, host: str, directive: str) -> str:
    """The chat message that states a task plainly, as a person would ask an assistant."""
    return (f"I am logged in to a POSIX shell (dash) as {user} on {host}; my home directory is /home/{user}.\n\n"
            f"{directive}\n\n"
            "Reply with only the shell commands that do this, one per line, with no explanation.")


FORMAT_EXAMPLE = [
    {"role": "user", "content": question("sam", "build01", "Create the folder ~/notes/2024 with an empty file "
                                         "todo.txt in it, and show me what is in the folder.")},
    {"role": "assistant", "content": "mkdir -p ~/notes/2024\ntouch ~/notes/2024/todo.txt\nls -l ~/notes/2024"},
]
"""One worked exchange before the question, so that a chat model answers in commands (the format)
rather than prose; its task is none of the archetypes'."""


def messages(q: str) -> list[dict]:
    """The chat that asks `q`: the format example, then the question."""
    return [*FORMAT_EXAMPLE, {"role": "user", "content": q}]


def _lines(answer: str) -> list[str]:
    fence = _FENCE.search(answer)
    body = fence.group(1) if fence else answer
    out = []
    for line in body.splitlines():
        line = line.rstrip()
        if line.lstrip().startswith("$ "):
            line = line.lstrip()[2:]
        if line.lstrip().startswith("sudo "):
            line = line.lstrip()[5:]
        out.append(line)
    return out


def commands(answer: str, most: int | None = MAX_LINES) -> list[str]:
    """The commands of a free-form answer, read generously (see the module docstring): one entry per
    command to type, a heredoc with its body and a loop or `if` spread over lines kept together."""
    lines = _lines(answer)
    out: list[str] = []
    i = 0
    while i < len(lines) and (most is None or len(out) < most):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#") or line.lstrip().startswith("```"):
            continue
        group = [line]
        doc = _HEREDOC.search(line)
        if doc:  # the body, up to the delimiter line
            while i < len(lines):
                group.append(lines[i])
                i += 1
                if lines[i - 1].strip() == doc.group(2):
                    break
        else:
            depth = len(_OPENS.findall(line)) - len(_CLOSES.findall(line))
            while (depth > 0 or group[-1].endswith(("\\", "|", "&&"))) and i < len(lines):
                group.append(lines[i])
                depth += len(_OPENS.findall(lines[i])) - len(_CLOSES.findall(lines[i]))
                i += 1
        out.append("\n".join(group))
    return out


@dataclass
class Probe:
    """One world of the probe and what came of the answer."""

    archetype: str
    world: str
    """<archetype>_<seed>_<i>, the name `teletype scenarios generate` gives the same world."""
    variant: str
    question: str
    answer: str = ""
    typed: list[str] = field(default_factory=list)
    verified: bool = False
    checks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"archetype": self.archetype, "world": self.world, "variant": self.variant,
                "question": self.question, "answer": self.answer, "typed": self.typed,
                "verified": self.verified, "checks": self.checks}


def worlds(archetypes: list[str], seed: int, n: int) -> list[tuple[str, int, int]]:
    """(archetype, seed, i) of every world probed: n of each archetype, panic left out."""
    for a in archetypes:
        if a not in ARCHETYPES:
            raise ValueError(f"unknown archetype {a!r}; known: {', '.join(ARCHETYPES)}")
    return [(a, seed, i) for a in archetypes if a not in SKIPPED for i in range(n)]


def reference(archetype: str, seed: int, i: int) -> str:
    """The answer a person who knows the task would give: the world's reference commands."""
    return "\n".join(build(archetype, seed, i).work)


def probe(archetype: str, seed: int, i: int, answer_for, *, sandbox: str = "bwrap",
          limits: Limits = Limits(command_timeout=10.0), most: int | None = MAX_LINES) -> Probe:
    """Put world i of (archetype, seed) to `answer_for(chat messages) -> str`, type the answer's commands
    (at most `most`; None: all) into a fresh sandbox of that world, and grade it with the world's
    checker (the task's checks only)."""
    g = build(archetype, seed, i)
    with tempfile.TemporaryDirectory(prefix="teletype-oneshot-") as tmp:
        path = Path(tmp) / archetype / f"{archetype}_{seed}_{i}.toml"
        path.parent.mkdir(parents=True)
        path.write_text(g.text, encoding="utf-8")
        scenario = load_scenario(path)
        p = Probe(archetype=archetype, world=path.stem, variant=g.variant,
                  question=question(scenario.login.user, scenario.login.host, g.directive))
        p.answer = answer_for(messages(p.question))
        p.typed = commands(p.answer, most)
        with Session(scenario, sandbox=sandbox, limits=limits, step_budget=MAX_LINES + 1) as s:
            s.start()
            for line in p.typed:
                if s.execute(line, source="model").ended:
                    break
            report = s.check()
        task = report.results[:g.checks]  # the announcement's own checks (a ticket marked done) are not the task
        p.verified = bool(task) and all(r.passed for r in task)
        p.checks = [r.to_dict() for r in task]
    return p


__all__ = ["FORMAT_EXAMPLE", "MAX_LINES", "SKIPPED", "Probe", "commands", "messages", "probe", "question", "reference",
           "worlds"]
