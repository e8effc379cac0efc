"""The built wheel stands alone: one import package (`teletype`), the data the program needs (the
bundled scenarios, the embedded adapter, the console's .tcss), installed by itself in a fresh virtual
environment and run from outside the checkout: list the scenarios, run one with the scripted policy,
evaluate and compare without the optional extras."""
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def packages_in_tree() -> set[str]:
    found = {"teletype"}
    for top in ("engine", "console", "train"):
        for init in (REPO / top).rglob("__init__.py"):
            found.add("teletype." + ".".join(init.parent.relative_to(REPO).parts))
    return found


def test_pyproject_lists_every_package_in_the_tree():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"teletype": "."}
    assert set(config["packages"]) == packages_in_tree()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # A copy without build outputs, so the wheel is built from the sources alone.
    src = build / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    wheels = list(out.glob("teletype-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_one_import_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"teletype", next(t for t in tops if t.endswith(".dist-info"))}, sorted(tops)
    bundled = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "scenarios").rglob("*.toml"))
    assert bundled and all(f"teletype/{p}" in names for p in bundled)
    for data in ("teletype/console/app.tcss", "teletype/engine/data/smollm2-teletype/adapter_config.json",
                 "teletype/engine/data/smollm2-teletype/adapter_model.safetensors",
                 "teletype/engine/data/smollm2-teletype/README.md", "teletype/__main__.py", "teletype/cli.py"):
        assert data in names, data
    assert not [n for n in names if n.startswith(("teletype/tests/", "teletype/bench/", "teletype/docs/"))]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "teletype = teletype.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.slow
def test_the_wheel_installed_alone_lists_and_runs_a_scenario(wheel, tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # The wheel and its declared dependencies (from the package index, as a user gets them).
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def run(*args, timeout=300):
        return subprocess.run(list(args), cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout)

    where = run(str(py), "-c", "import teletype, teletype.engine.worlds.scenario as s; "
                               "print(teletype.__file__); print(s.bundled_scenarios_dir())")
    assert where.returncode == 0, where.stderr
    pkg_file, scen_dir = where.stdout.split()
    assert str(venv) in pkg_file and str(REPO) not in pkg_file and Path(scen_dir).is_dir()
    for name in ("engine", "console", "train"):
        assert run(str(py), "-c", f"import {name}").returncode != 0, f"a top-level `{name}` is importable"

    listed = run(str(venv / "bin" / "teletype"), "scenarios", "list")
    assert listed.returncode == 0, listed.stderr
    assert "permissions/deploy_exec" in listed.stdout and len(listed.stdout.splitlines()) >= 40

    out = run(str(venv / "bin" / "teletype"), "run", "permissions/deploy_exec", "--policy", "scripted",
              "--sandbox", "bwrap", "--record", str(tmp_path / "rec"))
    assert out.returncode == 0, out.stdout + out.stderr
    outcome = json.loads((tmp_path / "rec" / "trajectory.json").read_text())["outcome"]
    assert outcome["verified"] and outcome["clean"], outcome
    assert run(str(venv / "bin" / "teletype"), "console", "--help").returncode == 0
    # The core alone has no matplotlib (the chart extra): eval and its report work, without the PNG.
    ev = run(str(venv / "bin" / "teletype"), "eval", "permissions/deploy_exec", "--policy", "scripted",
             "--out", str(tmp_path / "ev"), "--no-progress")
    assert ev.returncode == 0, ev.stdout + ev.stderr
    cmp = run(str(venv / "bin" / "teletype"), "eval", "--compare", str(tmp_path / "ev"), str(tmp_path / "ev"),
              "--report", str(tmp_path / "report"))
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "no chart: matplotlib is not installed" in cmp.stdout
    assert (tmp_path / "report.md").is_file() and not (tmp_path / "report.png").exists()
