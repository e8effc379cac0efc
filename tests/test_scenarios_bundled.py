"""The bundled scenarios: enough of them, spread well, and every one valid in a real bwrap sandbox.

Valid (DESIGN.md): the reference solution ends clean (`success`, or `correct_panic` where
expect = "panic") and an empty session (just `exit`) does not.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from util import needs_bwrap

from teletype.engine.eval.validate import validate_scenario
from teletype.engine.worlds.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PATHS = sorted(SCENARIOS.glob("*/*.toml"))
HELDOUT_ARCHETYPES = {"text_replace", "permissions"}
STYLES = ("motd", "env", "home_file", "provider")


def _load_all() -> list[Scenario]:
    return [load_scenario(p) for p in PATHS]


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p in paths]


def announcement(sc: Scenario) -> str:
    """How a scenario tells the model where its directives live.

    provider: a program on the PATH (its --help says how to fetch them); env: an environment
    variable names the file; motd: the login message states the task or names its file; home_file:
    none of these, a file in home that the model has to discover (the motd is neutral).
    """
    if sc.provider:
        return "provider"
    if sc.env:
        return "env"
    if "~/" in sc.login.motd:
        return "motd"
    return "home_file"


def test_at_least_thirty_scenarios_in_nine_archetypes_three_each():
    scenarios = _load_all()
    per = Counter(sc.archetype for sc in scenarios)
    assert len(scenarios) >= 30, per
    assert len(per) >= 9, per
    assert all(n >= 3 for n in per.values()), per
    assert {"text_replace", "permissions", "file_create", "find_and_report", "cleanup", "archive",
            "config_edit", "panic"} <= set(per), per


def test_archetype_matches_folder_and_names_are_unique():
    scenarios = _load_all()
    for sc, path in zip(scenarios, PATHS):
        assert sc.archetype == path.parent.name, path
    assert len({sc.name for sc in scenarios}) == len(scenarios)


def test_heldout_split_rule():
    for sc in _load_all():
        want = "heldout" if sc.archetype in HELDOUT_ARCHETYPES else "train"
        assert sc.scenario.split == want, f"{sc.name}: split {sc.scenario.split}, want {want}"


def test_panic_archetype_expects_panic_and_the_rest_expect_exit():
    for sc in _load_all():
        last = sc.solution.commands[-1].strip()
        if sc.archetype == "panic":
            assert sc.scenario.expect == "panic" and last.startswith("panic "), sc.name
        else:
            assert sc.scenario.expect == "exit" and last == "exit", sc.name


def test_every_scenario_has_a_description_and_reads_before_acting():
    for sc in _load_all():
        assert sc.scenario.description.strip(), sc.name
        assert len(sc.solution.commands) >= 3, f"{sc.name}: the reference should look before it acts"


def test_all_four_announcement_styles_appear_and_are_spread():
    scenarios = _load_all()
    styles = Counter(announcement(sc) for sc in scenarios)
    assert set(STYLES) <= set(styles), styles
    by_arch: dict[str, set[str]] = {}
    for sc in scenarios:
        by_arch.setdefault(sc.archetype, set()).add(announcement(sc))
    # no archetype leans on one style only, and each style serves several archetypes
    assert all(len(s) >= 3 for s in by_arch.values()), by_arch
    for style in STYLES:
        assert sum(style in s for s in by_arch.values()) >= 5, (style, by_arch)


def test_announcements_point_somewhere_real():
    for sc in _load_all():
        style = announcement(sc)
        if style == "env":
            # every variable that names a path names one the scenario stages
            staged = {sc.resolve(f.path) for f in sc.files}
            paths = [v for v in sc.env.values() if v.startswith(("~", "/"))]
            assert paths, sc.name
            for v in paths:
                resolved = sc.home + v[1:] if v.startswith("~") else v
                assert resolved in staged, f"{sc.name}: ${v} is not staged"
        elif style == "home_file":
            # a file directly in home, named neither by the motd nor by an env variable
            top = [f for f in sc.files if f.kind == "file"
                   and re.fullmatch(re.escape(sc.home) + r"/[^/]+", sc.resolve(f.path))]
            hidden = [f for f in top if Path(f.path).name not in sc.login.motd]
            assert hidden, f"{sc.name}: no directive file to discover in home"
        elif style == "provider":
            assert any(name in sc.solution.commands[0] for name in sc.provider), (
                f"{sc.name}: the reference should start by asking the provider")


PROVIDERS = [(sc.name, name, body) for sc in _load_all() for name, body in sc.provider.items()]


@pytest.mark.parametrize("shell", ["dash", "busybox"])
@pytest.mark.parametrize("scenario, program, body", PROVIDERS, ids=[f"{s}:{p}" for s, p, _ in PROVIDERS])
def test_provider_programs_are_posix_sh(tmp_path, shell, scenario, program, body):
    """Provider scripts run under dash and busybox ash: both must parse them, and --help must work."""
    argv = {"dash": ["dash"], "busybox": ["busybox", "ash"]}[shell]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    script = tmp_path / program
    script.write_text(body)
    assert subprocess.run([*argv, "-n", str(script)], capture_output=True).returncode == 0
    res = subprocess.run([*argv, str(script), "--help"], capture_output=True, text=True, timeout=10,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "USER": "user"})
    assert res.returncode == 0 and res.stdout.strip(), (scenario, res.stderr)


def _validate(path: Path, sandbox: str) -> None:
    """What `teletype scenarios validate` runs (engine/eval/validate.py)."""
    result = validate_scenario(path, sandbox)
    assert result.ok, result.problem
    want = "correct_panic" if load_scenario(path).scenario.expect == "panic" else "success"
    assert result.reference == want and result.empty not in ("success", "correct_panic"), result


@needs_bwrap
@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_scenario_is_valid_in_bwrap(path):
    """dash and the host's GNU tools."""
    _validate(path, "bwrap")


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("path", PATHS, ids=_ids(PATHS))
def test_scenario_is_valid_in_docker_busybox(docker_daemon, path):
    """busybox ash and the busybox applets: the same references and checks must hold."""
    _validate(path, "docker")
