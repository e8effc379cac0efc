"""Seeded, reproducible scenario generators, one archetype per module (named for it), and their registry.

`generate(archetype, n=..., seed=..., out=DIR)` writes `DIR/<archetype>/<archetype>_<seed>_<i>.toml`.
Scenario i depends only on (archetype, seed, i): its random draws come from
`random.Random(f"{archetype}:{seed}:{i}")`, so the same seed gives byte-identical files and a larger n
only adds files. The task variant and the announcement style (motd, env, file, provider) are drawn
per block of consecutive scenarios without repetition, so every style and variant shows up early.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from random import Random

from teletype.engine.worlds.generators import (
    archive,
    cleanup,
    config_edit,
    file_create,
    find_and_report,
    lists,
    organize,
    panic,
    permissions,
    symlinks,
    text_replace,
)
from teletype.engine.worlds.generators.announce import STYLES, announce
from teletype.engine.worlds.generators.common import Ctx, Task
from teletype.engine.worlds.generators.tomlwriter import dumps
from teletype.engine.worlds.generators.world import HOSTS, USERS
from teletype.engine.worlds.scenario import ScenarioError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Archetype:
    name: str
    split: str
    variants: tuple[Callable[[Ctx], Task], ...]


_ALL = [
    Archetype("file_create", "train", tuple(file_create.FILE_CREATE)),
    Archetype("find_and_report", "train", tuple(find_and_report.FIND_AND_REPORT)),
    Archetype("cleanup", "train", tuple(cleanup.CLEANUP)),
    Archetype("archive", "train", tuple(archive.ARCHIVE)),
    Archetype("config_edit", "train", tuple(config_edit.CONFIG_EDIT)),
    Archetype("panic", "train", tuple(panic.PANIC)),
    Archetype("organize", "train", tuple(organize.ORGANIZE)),
    Archetype("text_replace", "heldout", tuple(text_replace.TEXT_REPLACE)),
    Archetype("permissions", "heldout", tuple(permissions.PERMISSIONS)),
    Archetype("symlinks", "heldout", tuple(symlinks.SYMLINKS)),
    Archetype("lists", "heldout", tuple(lists.LISTS)),
]

ARCHETYPES: dict[str, str] = {a.name: a.split for a in _ALL}
"""Every archetype a generator exists for, with its split ("train" or "heldout")."""


def archetype_summaries() -> list[tuple[str, str, str]]:
    """(name, split, what it asks for) of every archetype, from the first line of its module's docstring."""
    out = []
    for a in _ALL:
        doc = (sys.modules[f"{__name__}.{a.name}"].__doc__ or "").strip().split("\n")[0]
        out.append((a.name, a.split, doc.split(":", 1)[1].strip() if ":" in doc else doc))
    return out

_BY_NAME = {a.name: a for a in _ALL}
_PANIC_SAFE = re.compile(r"[A-Za-z0-9 .,:/~=+@_-]+")


def _balanced(key: str, i: int, items: list):
    """items[...] for scenario i: each block of len(items) consecutive scenarios uses every item once."""
    order = list(items)
    Random(f"{key}:block{i // len(order)}").shuffle(order)
    return order[i % len(order)]


@dataclass
class Generated:
    text: str
    archetype: str
    style: str
    variant: str
    directive: str = ""
    """The assignment itself, as the announcement hides it in the world (paragraphs, blank-line separated)."""
    checks: int = 0
    """How many of the scenario's checks, from the first, are the task's (the rest are the announcement's)."""
    work: tuple[str, ...] = ()
    """The reference commands once the directive is known (the [solution] without discovery and ending)."""


def build(archetype: str, seed: int, i: int) -> Generated:
    """Scenario i of (archetype, seed) as TOML text."""
    try:
        arch = _BY_NAME[archetype]
    except KeyError:
        raise ScenarioError(f"unknown archetype {archetype!r}; known: {', '.join(ARCHETYPES)}") from None
    rng = Random(f"{archetype}:{seed}:{i}")
    ctx = Ctx(rng=rng, user=rng.choice(USERS), host=rng.choice(HOSTS))
    variant = _balanced(f"{archetype}:{seed}:variant", i, list(arch.variants))
    task = variant(ctx)
    style = _balanced(f"{archetype}:{seed}:style", i, list(STYLES))
    ann = announce(rng, ctx, task, style)
    files_ = ann.files + task.files
    paths = [x["path"] for x in files_]
    dup = sorted({p for p in paths if paths.count(p) > 1})
    if dup:  # pragma: no cover - a generator bug
        raise AssertionError(f"{archetype} seed {seed} #{i}: duplicate paths {dup}")
    if task.expect == "panic":
        # typed at the prompt as plain words: no quotes, parentheses or separators the shell would act on
        if not _PANIC_SAFE.fullmatch(task.panic):  # pragma: no cover - a generator bug
            raise AssertionError(f"{archetype} seed {seed} #{i}: unsafe panic reason {task.panic!r}")
        ending = [f"panic {task.panic}"]
    else:
        ending = ["exit"]
    login = {"user": ctx.user, "host": ctx.host}
    if ann.motd:
        login["motd"] = ann.motd
    doc = {
        "scenario": {"archetype": archetype, "description": task.description, "expect": task.expect,
                     "split": arch.split},
        "login": login,
        "env": {**task.env, **ann.env},
        "provider": {**task.provider, **ann.provider},
        "files": files_,
        "checks": task.checks + ann.checks,
        "solution": {"commands": ann.discover + task.work + ann.finish + ending},
    }
    doc = {k: v for k, v in doc.items() if v}
    header = (f"# generated by teletype.engine.worlds.generators: archetype {archetype}, seed {seed}, scenario {i}\n"
              f"# variant {variant.__name__}, announced by {style}; regenerate instead of editing\n")
    text = dumps(doc, header)
    back = tomllib.loads(text)
    if back != doc:  # pragma: no cover - a TOML writer bug
        raise AssertionError(f"{archetype} seed {seed} #{i}: the TOML writer does not round-trip")
    return Generated(text=text, archetype=archetype, style=style, variant=variant.__name__,
                     directive="\n\n".join(task.directive), checks=len(task.checks),
                     work=tuple(task.work))


def generate(archetype: str, n: int = 10, seed: int = 0, out: str | Path = "generated") -> list[Path]:
    """Write n scenarios of one archetype to out/<archetype>/<archetype>_<seed>_<i>.toml."""
    if archetype not in _BY_NAME:
        raise ScenarioError(f"unknown archetype {archetype!r}; known: {', '.join(ARCHETYPES)}")
    if n < 0:
        raise ScenarioError(f"--n must be 0 or more, got {n}")
    folder = Path(out) / archetype
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        g = build(archetype, seed, i)
        path = folder / f"{archetype}_{seed}_{i}.toml"
        path.write_text(g.text, encoding="utf-8")
        paths.append(path)
    return paths


__all__ = ["ARCHETYPES", "STYLES", "build", "generate"]
