"""Scenario files: the DESIGN.md format loads into typed objects; bad files name file, key, expectation."""
from pathlib import Path

import pytest
from util import DEPLOY, write_scenario

from teletype.engine.worlds.scenario import ScenarioError, find_scenarios, load_scenario


def test_reference_scenario_loads_with_defaults():
    sc = load_scenario(DEPLOY)
    assert sc.archetype == "permissions"          # from the folder name
    assert sc.name == "permissions/deploy_exec"
    assert sc.scenario.split == "heldout"
    assert sc.login.user == "alice" and sc.login.shell == "/bin/sh"
    assert sc.checks[0].kind == "mode" and sc.checks[0].mode == "0755"
    assert sc.resolve("~/bin/x") == "/home/alice/bin/x"
    assert sc.resolve("notes.txt") == "/home/alice/notes.txt"
    assert sc.resolve("/etc/app.conf") == "/etc/app.conf"


MINIMAL = """
[[checks]]
kind = "exists"
path = "~/done"

[solution]
commands = ["touch ~/done", "exit"]
"""


def test_minimal_file_gets_defaults(tmp_path):
    sc = load_scenario(write_scenario(tmp_path, MINIMAL, archetype="file_create"))
    assert sc.archetype == "file_create" and sc.scenario.expect == "exit" and sc.scenario.split == "train"
    assert sc.login.user == "user"


@pytest.mark.parametrize("body, key, words", [
    (MINIMAL.replace('kind = "exists"', 'kind = "exist"'), "checks.0", "expected kind one of"),
    (MINIMAL + '\n[scenario]\nexpect = "done"\n', "scenario.expect", "'exit' or 'panic'"),
    (MINIMAL + '\n[scenario]\nsplit = "test"\n', "scenario.split", "'train' or 'heldout'"),
    (MINIMAL + '\n[login]\nuser = "Root User"\n', "login.user", "lower-case login name"),
    (MINIMAL + '\n[[files]]\npath = "~/x"\nmode = 755\ncontent = ""\n', "files.0.mode", "octal string"),
    (MINIMAL + '\n[[files]]\npath = "~/x"\n', "files.0", "needs `content`"),
    (MINIMAL + '\n[scenario]\ncolour = "red"\n', "scenario.colour", "not a known key"),
    (MINIMAL.replace('"touch ~/done", "exit"', '"touch ~/done"'), "solution.commands", "must be `exit`"),
    ('[solution]\ncommands = ["exit"]\n', "checks", "required"),
])
def test_bad_files_name_file_key_and_expectation(tmp_path, body, key, words):
    path = write_scenario(tmp_path, body)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg and f"[{key}" in msg and words in msg, msg


def test_not_toml_and_missing_file(tmp_path):
    path = write_scenario(tmp_path, "[scenario\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_find_scenarios_by_name_archetype_and_split():
    assert find_scenarios("permissions/deploy_exec") == [DEPLOY]
    assert DEPLOY in find_scenarios("permissions")
    assert DEPLOY in find_scenarios("heldout")
    with pytest.raises(ScenarioError, match="no such scenario"):
        find_scenarios("no_such_thing")


def test_a_split_name_is_the_split_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    from teletype.engine.worlds.scenario import find_scenarios

    (tmp_path / "train").mkdir()                     # e.g. teletype's own train/ package
    (tmp_path / "train" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    found = find_scenarios("train")
    assert found and all(load_scenario(p).scenario.split == "train" for p in found)
    (tmp_path / "train" / "mine.toml").write_text("x = 1\n")   # a folder of scenarios wins
    assert find_scenarios("train") == [Path("train") / "mine.toml"]
