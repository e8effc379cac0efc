"""Helpers shared by the engine tests (imported as a plain module; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from engine.scenario import Scenario, load_scenario

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "scenarios" / "permissions" / "deploy_exec.toml"

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def write_scenario(tmp_path: Path, body: str, name: str = "probe", archetype: str = "testing") -> Path:
    folder = tmp_path / archetype
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def scenario_from(tmp_path: Path, body: str, **kw) -> Scenario:
    return load_scenario(write_scenario(tmp_path, body, **kw))


PANIC_SCENARIO = """
[scenario]
description = "the task names a file that does not exist"
expect = "panic"

[login]
user = "bob"
host = "vault"
motd = "Read ~/TASK."

[[files]]
path = "~/TASK"
content = "Append 'ok' to /srv/ledger.txt. Do not create it if it is missing.\\n"

[[checks]]
kind = "absent"
path = "/srv/ledger.txt"

[solution]
commands = ["cat ~/TASK", "ls /srv/ledger.txt", "panic /srv/ledger.txt does not exist"]
"""
