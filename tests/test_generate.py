"""The scenario generators (teletype.engine.worlds.generators): valid in a real sandbox, reproducible, varied.

Valid means what DESIGN.md says for any scenario: the reference solution ends clean and an empty
session does not. Reproducible means the same (archetype, seed) gives byte-identical files, in this
process or another one with a different hash seed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from util import needs_bwrap

from teletype.engine.eval.validate import validate_all
from teletype.engine.worlds.generators import ARCHETYPES, STYLES, build, generate
from teletype.engine.worlds.generators.tomlwriter import dumps
from teletype.engine.worlds.scenario import ScenarioError, load_scenario

REPO = Path(__file__).resolve().parent.parent
TRAIN = ["file_create", "find_and_report", "cleanup", "archive", "config_edit", "panic", "organize"]
HELDOUT = ["text_replace", "permissions", "symlinks", "lists"]



if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_HEADER = re.compile(r"^# variant (\w+), announced by (\w+);", re.M)


def header(path: Path) -> tuple[str, str]:
    m = _HEADER.search(path.read_text())
    assert m, f"{path}: no generator header"
    return m.group(1), m.group(2)


def test_archetypes_and_their_splits():
    assert sorted(ARCHETYPES) == sorted(TRAIN + HELDOUT)
    assert [a for a, s in ARCHETYPES.items() if s == "heldout"] == HELDOUT
    assert all(ARCHETYPES[a] == "train" for a in TRAIN)


@pytest.mark.parametrize("archetype", list(ARCHETYPES))
def test_generated_files_load_with_the_archetype_split_and_expectation(tmp_path, archetype):
    paths = generate(archetype, n=6, seed=3, out=tmp_path)
    assert [p.name for p in paths] == [f"{archetype}_3_{i}.toml" for i in range(6)]
    assert all(p.parent == tmp_path / archetype for p in paths)
    for p in paths:
        sc = load_scenario(p)
        assert sc.archetype == archetype and sc.scenario.split == ARCHETYPES[archetype]
        assert sc.scenario.description.strip()
        assert sc.login.user != "root"
        last = sc.solution.commands[-1]
        if archetype == "panic":
            assert sc.scenario.expect == "panic" and re.fullmatch(r"panic [A-Za-z0-9 .,:/~=+@_-]+", last), last
        else:
            assert sc.scenario.expect == "exit" and last == "exit"
        assert len(sc.solution.commands) >= 3, f"{p.name}: the reference should look before it acts"


@needs_bwrap
@pytest.mark.parametrize("archetype", list(ARCHETYPES))
def test_generated_scenarios_validate_in_bwrap(tmp_path, archetype):
    """The reference ends clean and an empty session does not, for every generated scenario."""
    paths = generate(archetype, n=6, seed=0, out=tmp_path)
    results = validate_all(paths, sandbox="bwrap", jobs=3)
    bad = [f"{v.name}: {v.problem}" for v in results if not v.ok]
    assert not bad, "\n".join(bad)


@needs_bwrap
def test_config_edit_references_change_a_value_both_ways_people_do(tmp_path):
    """A changed setting is solved either by an anchored whole-line `s` or by replacing only the value's
    text (`s/old/new/`, sometimes `g`) where that text occurs once in the file; both end clean."""
    paths = generate("config_edit", n=40, seed=5, out=tmp_path)
    forms = Counter()
    for p in paths:
        for cmd in load_scenario(p).solution.commands:
            m = re.fullmatch(r"sed -i '(s(.)(.*?)\2(.*?)\2(g?))' (\S+)", cmd)
            if not m:
                continue
            pat = m.group(3)
            if pat.startswith("^") and pat.endswith("$"):
                forms["line"] += 1
            else:
                forms["substring+g" if m.group(5) else "substring"] += 1
                old = re.sub(r"\\(.)", r"\1", pat)
                text = next(f.content for f in load_scenario(p).files if m.group(6).endswith(f.path.lstrip("~/")))
                assert text.count(old) == 1, f"{p.name}: {cmd!r} would change {text.count(old)} places"
    assert forms["line"] >= 5 and forms["substring"] >= 3 and forms["substring+g"] >= 3, forms
    results = validate_all(paths, sandbox="bwrap", jobs=3)
    bad = [f"{v.name}: {v.problem}" for v in results if not v.ok]
    assert not bad, "\n".join(bad)


@needs_bwrap
def test_panic_references_leave_their_checks_passing(tmp_path):
    """For panic scenarios the checks guard against damage; the reference (look, then panic) passes them."""
    from teletype.engine.policy.scripted import ScriptedPolicy
    from teletype.engine.runtime.session import Session

    for path in generate("panic", n=5, seed=11, out=tmp_path):
        sc = load_scenario(path)
        out = Session(sc, sandbox="bwrap", policy=ScriptedPolicy(sc)).run()
        assert out.outcome == "correct_panic", (path.name, out.outcome)
        assert out.verified, (path.name, [c for c in out.checks if not c["passed"]])


@pytest.mark.docker
def test_generated_scenarios_validate_in_docker_busybox(tmp_path):
    """The same references work under busybox ash and busybox's tools (the docker sandbox's image)."""
    from teletype.engine.sandbox.base import SandboxError
    from teletype.engine.sandbox.docker import connect

    try:
        connect(timeout=10).close()
    except SandboxError as exc:
        msg = f"no docker daemon: {exc} (run `eval \"$(.ci/dockerd.sh)\"` first)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    paths = [p for arch in ARCHETYPES for p in generate(arch, n=1, seed=0, out=tmp_path)]
    results = validate_all(paths, sandbox="docker", jobs=3)
    bad = [f"{v.name}: {v.problem}" for v in results if not v.ok]
    assert not bad, "\n".join(bad)


def _read_all(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.toml"))}


def test_same_seed_gives_byte_identical_files_and_another_seed_other_files(tmp_path):
    for arch in ARCHETYPES:
        generate(arch, n=4, seed=5, out=tmp_path / "a")
        generate(arch, n=4, seed=5, out=tmp_path / "b")
        generate(arch, n=4, seed=6, out=tmp_path / "c")
        generate(arch, n=2, seed=5, out=tmp_path / "d")
    a, b, c, d = (_read_all(tmp_path / x) for x in "abcd")
    assert a == b and len(a) == 4 * len(ARCHETYPES)
    # scenario i depends on (archetype, seed, i) only: a smaller n gives a prefix
    assert all(a[name] == data for name, data in d.items()) and len(d) == 2 * len(ARCHETYPES)
    # another seed: other files (names carry the seed, so compare position by position)
    for name, data in a.items():
        other = c[name.replace("_5_", "_6_")]
        assert other != data, name


def test_reproducible_across_processes_and_hash_seeds(tmp_path):
    code = ("import sys; from teletype.engine.worlds.generators import generate, ARCHETYPES\n"
            "[generate(a, n=3, seed=2, out=sys.argv[1]) for a in ARCHETYPES]")
    for hs in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        res = subprocess.run([sys.executable, "-c", code, str(tmp_path / hs)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    generate("cleanup", n=3, seed=2, out=tmp_path / "here")
    one, two = _read_all(tmp_path / "1"), _read_all(tmp_path / "4242")
    assert one == two and len(one) == 3 * len(ARCHETYPES)
    here = _read_all(tmp_path / "here")
    assert all(one[k] == v for k, v in here.items())


def _style_is_real(sc, style: str) -> None:
    """The header's announcement style matches what the scenario actually does."""
    cmds = sc.solution.commands
    if style == "provider":
        prog = cmds[0].split()[0]
        assert prog in sc.provider and cmds[0] == f"{prog} --help", cmds[:2]
        assert prog in sc.login.motd, "the motd points at the provider program"
    elif style == "env":
        assert sc.env, "an env announcement sets a variable"
        var = next(iter(k for k in sc.env if k not in ("PATH",)))
        assert any(f"${var}" in c or c.startswith("env") for c in cmds[:2]), cmds[:2]
        value = sc.env[var]
        if value.startswith(("~", "/")):
            assert value in [f.path for f in sc.files], f"${var} names a staged file"
    elif style == "file":
        assert not sc.env and not any(c.startswith(tuple(sc.provider)) for c in cmds[:1])
        cat = next(c for c in cmds if c.startswith("cat "))
        target = cat.split()[1]
        staged = [f.path for f in sc.files]
        assert any(p == target or p == f"~/{target}" for p in staged), (target, staged)
    else:
        assert style == "motd"
        assert not sc.env and not cmds[0].endswith("--help")
        assert "~/" in sc.login.motd or "/" in sc.login.motd, "the motd states the task"


@pytest.mark.parametrize("archetype", list(ARCHETYPES))
def test_all_four_announcement_styles_and_every_variant_appear(tmp_path, archetype):
    paths = generate(archetype, n=12, seed=1, out=tmp_path)
    styles, variants = Counter(), Counter()
    for p in paths:
        variant, style = header(p)
        _style_is_real(load_scenario(p), style)
        styles[style] += 1
        variants[variant] += 1
    assert set(styles) == set(STYLES), styles
    from teletype.engine.worlds.generators import _BY_NAME

    assert set(variants) == {v.__name__ for v in _BY_NAME[archetype].variants}, variants


@pytest.mark.parametrize("archetype", list(ARCHETYPES))
def test_worlds_vary(tmp_path, archetype):
    scs = [load_scenario(p) for p in generate(archetype, n=12, seed=9, out=tmp_path)]
    assert len({sc.login.user for sc in scs}) >= 6
    assert len({sc.login.host for sc in scs}) >= 6
    assert len({sc.login.motd for sc in scs}) >= 8
    assert len({tuple(f.path for f in sc.files) for sc in scs}) == 12
    assert len({tuple(sc.solution.commands) for sc in scs}) == 12
    assert len({repr(sc.checks) for sc in scs}) >= 10


def _providers(tmp_path: Path) -> list[tuple[str, str, str]]:
    out = []
    for arch in ARCHETYPES:
        for p in generate(arch, n=8, seed=4, out=tmp_path):
            sc = load_scenario(p)
            out += [(p.name, name, body) for name, body in sc.provider.items()]
    return out


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_provider_programs_are_posix_sh(tmp_path, shell):
    argv = {"dash": ["dash"], "busybox": ["busybox", "ash"]}[shell]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    progs = _providers(tmp_path / "gen")
    assert len(progs) >= 10
    for scenario, program, body in progs:
        script = tmp_path / program
        script.write_text(body)
        assert subprocess.run([*argv, "-n", str(script)], capture_output=True).returncode == 0, scenario
        res = subprocess.run([*argv, str(script), "--help"], capture_output=True, text=True, timeout=10,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "USER": "user"})
        assert res.returncode == 0 and "usage" in res.stdout.lower(), (scenario, program, res.stderr)


@pytest.mark.parametrize("text", [
    "plain", "", "with \"double\" and 'single' quotes", "back\\slash \\n not a newline", "tab\there",
    "line\n", "two\nlines\n", "\nleading newline\n", "ends with a quote'\n'", "has '''triple''' quotes\n",
    'has """triple""" doubles\n', "control \x01 char\nand more\n", "unicode: caf\u00e9 \u2014 \U0001f600\n",
    "no trailing newline\nat the end", "carriage\r\nreturn\n", "ends with backslash\\\n", "\"\n\"",
])
def test_toml_writer_round_trips(text):
    doc = {"scenario": {"description": text}, "env": {"A_B": text},
           "files": [{"path": "~/x", "content": text}], "solution": {"commands": [text, "exit"]}}
    assert tomllib.loads(dumps(doc)) == doc


def test_build_is_what_generate_writes(tmp_path):
    p = generate("permissions", n=2, seed=8, out=tmp_path)[1]
    g = build("permissions", 8, 1)
    assert p.read_text() == g.text and header(p) == (g.variant, g.style)


def test_unknown_archetype_and_negative_n_are_errors(tmp_path):
    with pytest.raises(ScenarioError, match="unknown archetype 'nope'.*file_create"):
        generate("nope", n=1, seed=0, out=tmp_path)
    with pytest.raises(ValueError):
        generate("panic", n=-1, seed=0, out=tmp_path)
    assert generate("panic", n=0, seed=0, out=tmp_path) == []


def _teletype(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "teletype", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@needs_bwrap
def test_cli_generate_then_validate(tmp_path):
    out = tmp_path / "gen"
    res = _teletype("scenarios", "generate", "--archetype", "file_create", "--n", "3", "--seed", "1", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "wrote 3 scenarios" in res.stdout
    assert sorted(p.name for p in (out / "file_create").iterdir()) == [f"file_create_1_{i}.toml" for i in range(3)]
    res = _teletype("scenarios", "validate", out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3/3 scenarios valid" in res.stdout
    res = _teletype("scenarios", "generate", "--archetype", "nope", "--out", out)
    assert res.returncode == 2 and "unknown archetype" in res.stderr and "Traceback" not in res.stderr
