"""The code's own rules, in the suite (and so in CI): ruff with pyproject.toml's configuration, and
import-linter's contracts there (console and train above a headless engine, teletype.cli above all
three, no import cycle between siblings at any depth)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: it is in the test extra (pip install -e '.[test]')")
    return path


def test_ruff_passes():
    out = subprocess.run([tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_import_contracts_are_kept():
    out = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_layer_contract_catches_engine_importing_console(tmp_path):
    """The contract is live: the same configuration over a copy where engine imports console fails."""
    copy = tmp_path / "teletype"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "docs", "bench",
                                                               "scenarios", "*.egg-info", "__pycache__", "data"))
    errors = copy / "engine" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom teletype.console import app  # noqa: E402,F401\n")
    out = subprocess.run([tool("lint-imports"), "--no-cache", "--config", str(copy / "pyproject.toml")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)})
    assert out.returncode != 0, out.stdout
    assert "teletype.engine.errors -> teletype.console.app" in out.stdout, out.stdout[-3000:]
