"""The `teletype` command line, run as a real subprocess the way a person runs it."""
import json
import subprocess
import sys

import pytest

from util import DEPLOY, REPO, needs_bwrap

pytestmark = needs_bwrap


def teletype(*args, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=REPO, input=input,
                          capture_output=True, text=True, timeout=timeout)


def test_help_reads_well():
    out = teletype("--help")
    assert out.returncode == 0
    for word in ("run", "scenarios", "export", "console", "eval", "train", "examples:"):
        assert word in out.stdout
    out = teletype("run", "--help")
    assert "--sandbox {bwrap,docker,local}" in out.stdout and "--policy" in out.stdout


def test_run_records_and_reports(tmp_path):
    out = teletype("run", "permissions/deploy_exec", "--record", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    assert "permissions/deploy_exec: success" in out.stdout and "[pass] mode" in out.stdout
    assert json.loads((tmp_path / "r" / "trajectory.json").read_text())["outcome"]["outcome"] == "success"
    out = teletype("run", DEPLOY, "--json", "--no-record", "--policy", "replay", "--replay", tmp_path / "r")
    assert out.returncode == 0 and json.loads(out.stdout)["outcome"] == "success"


def test_run_human_policy_from_stdin(tmp_path):
    out = teletype("run", "permissions/deploy_exec", "--policy", "human", "--no-record",
                   input="chmod +x bin/deploy.sh\nexit\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alice@sek:~$" in out.stdout


def test_scenarios_list_and_validate(tmp_path):
    out = teletype("scenarios", "list", "--json")
    rows = json.loads(out.stdout)
    assert any(r["name"] == "permissions/deploy_exec" for r in rows)
    out = teletype("scenarios", "validate", DEPLOY)
    assert out.returncode == 0 and "1/1 scenarios valid" in out.stdout
    bad = tmp_path / "broken" / "weak.toml"
    bad.parent.mkdir()
    text = DEPLOY.read_text()  # a check that already holds before the task is done
    check_at = text.index("[[checks]]")
    bad.write_text(text[:check_at] + text[check_at:].replace('mode = "0755"', 'mode = "0644"'))
    out = teletype("scenarios", "validate", bad)
    assert out.returncode == 1 and "FAIL" in out.stdout and "empty session ends success" in out.stdout


def test_bad_scenario_and_unknown_sandbox_give_clear_errors(tmp_path):
    bad = tmp_path / "x" / "bad.toml"
    bad.parent.mkdir()
    bad.write_text('[scenario]\nexpect = "maybe"\n')
    out = teletype("run", bad)
    assert out.returncode == 2 and str(bad) in out.stderr and "scenario.expect" in out.stderr
    out = teletype("run", "no/such")
    assert out.returncode == 2 and "no such scenario" in out.stderr


def test_export_command(tmp_path):
    assert teletype("run", "permissions/deploy_exec", "--record", tmp_path / "runs" / "a").returncode == 0
    out = teletype("export", tmp_path / "runs", "-o", tmp_path / "demo.jsonl")
    assert out.returncode == 0 and "exported 1 conversations" in out.stdout
    row = json.loads((tmp_path / "demo.jsonl").read_text().splitlines()[0])
    assert row["messages"][0]["role"] == "user"
