"""What every scenario generator builds with: the Task (and the Ctx it is built in), file and check
entries, shell quoting and sed helpers, and helpers for the directive's prose.

The world's name pools and realistic content are in world.py; the TOML writer is in tomlwriter.py.
"""
from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass, field
from random import Random

# -- the Task a generator builds ---------------------------------------------------------------------


@dataclass
class Ctx:
    """The world a task is built in: who logs in where."""

    rng: Random
    user: str
    host: str

    @property
    def home(self) -> str:
        return f"/home/{self.user}"


@dataclass
class Task:
    """One scenario before it is announced: the work, the world, the checks and the reference work."""

    title: str
    """A short summary (a ticket's subject line)."""
    directive: list[str]
    """The assignment as paragraphs; wrapped when shown. A paragraph with a newline or leading
    spaces is kept verbatim (a list of exact lines, a table)."""
    description: str
    """For people (the scenario's [scenario] description)."""
    files: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    work: list[str] = field(default_factory=list)
    """The reference commands after the directive was found (inspection, the work, verification)."""
    expect: str = "exit"
    panic: str = ""
    """The reason the reference gives with `panic` (expect = "panic")."""
    env: dict[str, str] = field(default_factory=dict)
    provider: dict[str, str] = field(default_factory=dict)
    """Programs the task itself needs on the PATH (a deploy tool), beside any task provider."""
    motd_note: str = ""
    """A line the motd must carry whatever the announcement (a freeze notice)."""
    closable: bool = True
    """Whether a provider announcement may ask to mark the item done afterwards."""


# -- files and checks --------------------------------------------------------------------------------

def f(path: str, content: str, mode: str | None = None) -> dict:
    d = {"path": path, "content": content}
    if mode:
        d["mode"] = mode
    return d


def d(path: str, mode: str | None = None) -> dict:
    x = {"path": path, "kind": "dir"}
    if mode:
        x["mode"] = mode
    return x


def link(path: str, target: str) -> dict:
    return {"path": path, "kind": "symlink", "target": target}


def _chk(kind: str, desc: str = "", **kw) -> dict:
    c = {"kind": kind, **kw}
    if desc:
        c["description"] = desc
    return c


def exists(path: str, desc: str = "") -> dict:
    return _chk("exists", desc, path=path)


def absent(path: str, desc: str = "") -> dict:
    return _chk("absent", desc, path=path)


def equals(path: str, text: str, desc: str = "") -> dict:
    return _chk("equals", desc, path=path, text=text)


def contains(path: str, text: str, desc: str = "") -> dict:
    return _chk("contains", desc, path=path, text=text)


def not_contains(path: str, text: str, desc: str = "") -> dict:
    return _chk("not_contains", desc, path=path, text=text)


def mode(path: str, m: str, desc: str = "") -> dict:
    return _chk("mode", desc, path=path, mode=m)


def command(cmd: str, desc: str = "") -> dict:
    return _chk("command", desc, command=cmd)


def sq(s: str) -> str:
    """A shell word (single-quoted only when needed)."""
    return shlex.quote(s)


_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./~-]+")


def sh(path: str) -> str:
    """A path as a competent user types it: `~/x/y` as is; with odd characters, quoted after `~/`."""
    if _SAFE.fullmatch(path):
        return path
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def shp(path: str) -> str:
    """A path as a shell word inside a check command (`~/x` under "$HOME")."""
    if path.startswith("~/"):
        rest = path[2:]
        return "~/" + rest if _SAFE.fullmatch(rest) else '"$HOME"/' + shlex.quote(rest)
    return sh(path)


def file_is(path: str, word: str, desc: str = "") -> dict:
    """The file holds exactly `word` (a trailing newline or not)."""
    return command(f"[ \"$(cat {shp(path)})\" = {sq(word)} ]", desc or f"{path} says {word}")


def bre(s: str) -> str:
    """`s` as a literal in a basic regular expression (for sed with a delimiter not in `s`)."""
    return re.sub(r"([\\.*\[\]^$])", r"\\\1", s)


def sed_s(old: str, new: str, *, whole_line: bool = False, glob: bool = False, regex: bool = False) -> str:
    """A sed `s` command (unquoted) replacing the literal `old` (a regex when `regex`) with `new`."""
    delim = next(c for c in "/|#,@" if c not in old + new)
    pat = old if regex else bre(old)
    if whole_line:
        pat = f"^{pat}$"
    rep = re.sub(r"([\\&])", r"\\\1", new)
    return f"s{delim}{pat}{delim}{rep}{delim}{'g' if glob else ''}"


# -- text ------------------------------------------------------------------------------------------

NBSP = "\u00a0"


def nb(s: str) -> str:
    """Keep `s` on one line when a paragraph is wrapped."""
    return s.replace(" ", NBSP)


def wrap(paragraphs: list[str], width: int = 78, indent: str = "", first: str | None = None) -> str:
    """Paragraphs as lines (verbatim ones kept); the first line may carry a bullet (`first`)."""
    lines: list[str] = []
    for i, para in enumerate(paragraphs):
        lead = first if (first is not None and i == 0) else indent
        if "\n" in para or para.startswith(" "):
            for j, ln in enumerate(para.split("\n")):
                lines.append(((lead if j == 0 else indent) + ln).rstrip() if ln.strip() else "")
        else:
            w = textwrap.wrap(para, width=width, initial_indent=lead, subsequent_indent=indent,
                              break_on_hyphens=False, break_long_words=False)
            lines.extend(w)
    return "\n".join(ln.replace(NBSP, " ") for ln in lines)


def code(s: str) -> str:
    """An exact string quoted in prose (in backticks, kept on one line)."""
    return nb(f"`{s}`")


def q1(s: str) -> str:
    """Always single-quoted (how people quote sed scripts), whatever `s` holds."""
    return "'" + s.replace("'", "'\\''") + "'"


def block(lines: list[str], indent: str = "    ") -> str:
    """Exact lines shown indented inside a directive."""
    return "\n".join(indent + ln for ln in lines)
