"""`teletype eval`: metrics per outcome class, parallel equals sequential, resume, reports."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from util import REPO, needs_bwrap, write_scenario

from teletype.engine.eval.evaluate import compare, load_results, run_eval
from teletype.engine.policy.options import ModelChoice
from teletype.engine.runtime.shell import Limits
from teletype.engine.worlds.scenario import find_scenarios

pytestmark = needs_bwrap
SCRIPTED = ModelChoice("scripted", {})

BASE = """
[scenario]
expect = "{expect}"
[login]
motd = "Read ~/TASK."
[[files]]
path = "~/TASK"
content = "Create ~/done.\\n"
[[checks]]
kind = "exists"
path = "~/done"
[solution]
commands = {commands}
"""

CASES = {
    "success": ("exit", ["cat TASK", "touch done", "exit"]),
    "correct_panic": ("panic", ["cat TASK", "touch done", "panic cannot"]),
    "false_panic": ("exit", ["cat TASK", "panic cannot"]),
    "premature_exit": ("exit", ["cat TASK", "exit"]),
    "incomplete": ("exit", ["cat TASK", "ls", "ls -a", "touch done", "exit"]),
    "no_operate": ("exit", ["Sure, I will create the file.", "exit"]),
}


@pytest.fixture
def outcome_scenarios(tmp_path):
    folder = tmp_path / "scen"
    for name, (expect, commands) in CASES.items():
        write_scenario(folder, BASE.format(expect=expect, commands=json.dumps(commands)),
                       name=name, archetype="a_" + name if name != "incomplete" else "a_success")
    return sorted(folder.rglob("*.toml"))


def test_each_outcome_class_and_its_metrics(tmp_path, outcome_scenarios):
    summary = run_eval(outcome_scenarios, SCRIPTED, tmp_path / "ev", steps=3, progress=False)
    got = {r["scenario"].split("/")[1]: r["outcome"] for r in summary["results"]}
    assert got == {name: name for name in CASES}
    m = summary["metrics"]["overall"]
    assert m["n"] == 6
    assert m["operate_rate"] == round(5 / 6, 4)              # all but no_operate
    assert m["terminate_rate"] == round(5 / 6, 4)            # all but incomplete
    assert m["verified_rate"] == round(2 / 6, 4)             # success, correct_panic touched ~/done
    assert m["clean"] == round(2 / 6, 4)
    assert all(m["counts"][k] == 1 for k in CASES)
    arch = summary["metrics"]["archetypes"]["a_success"]
    assert arch["n"] == 2 and arch["clean"] == 0.5
    # every session is recorded and replayable
    row = summary["results"][0]
    assert (tmp_path / "ev" / row["run_dir"] / "trajectory.json").exists()


def test_bundled_scenarios_are_all_clean_and_parallel_equals_sequential(tmp_path):
    paths = find_scenarios()
    seq = run_eval(paths, SCRIPTED, tmp_path / "seq", jobs=1, progress=False)
    par = run_eval(paths, SCRIPTED, tmp_path / "par", jobs=4, progress=False)
    assert seq["metrics"]["overall"]["clean"] == 1.0
    strip = lambda s: [{k: r[k] for k in ("scenario", "outcome", "verified", "steps")} for r in s["results"]]
    assert strip(seq) == strip(par)
    for a, b in zip(seq["results"], par["results"]):   # same transcripts, not only the same outcomes
        ta = json.loads((tmp_path / "seq" / a["run_dir"] / "trajectory.json").read_text())
        tb = json.loads((tmp_path / "par" / b["run_dir"] / "trajectory.json").read_text())
        assert ta["messages"] == tb["messages"], a["scenario"]


SLOW_EVAL = textwrap.dedent("""
    import sys
    from pathlib import Path
    from teletype.engine.eval.evaluate import run_eval
    from teletype.engine.policy.options import ModelChoice
    from teletype.engine.worlds.scenario import find_scenarios
    run_eval(sorted(Path(sys.argv[1]).rglob("*.toml")), ModelChoice("scripted", {}), Path(sys.argv[2]),
             progress=False)
""")


def test_an_interrupted_eval_resumes_where_it_stopped(tmp_path):
    folder = tmp_path / "scen"
    for i in range(6):
        write_scenario(folder, BASE.format(expect="exit", commands=json.dumps(
            ["cat TASK", "sleep 0.3", "touch done", "exit"])), name=f"s{i}", archetype="slow")
    out = tmp_path / "ev"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EVAL, str(folder), str(out)], cwd=REPO)
    deadline = time.monotonic() + 60
    while len(load_results(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = load_results(out)
    assert 2 <= len(first) < 6
    summary = run_eval(sorted(folder.rglob("*.toml")), SCRIPTED, out, progress=False)
    rows = (out / "results.jsonl").read_text().splitlines()
    assert len(rows) == 6 == len({json.loads(r)["scenario"] for r in rows})   # each scenario once
    assert summary["metrics"]["overall"]["clean"] == 1.0
    for name, row in first.items():    # what finished before the crash was not run again
        assert load_results(out)[name]["seconds"] == row["seconds"]


def test_compare_writes_markdown_json_and_png(tmp_path, outcome_scenarios):
    run_eval(outcome_scenarios, SCRIPTED, tmp_path / "a", steps=3, progress=False, label="base")
    run_eval(outcome_scenarios, SCRIPTED, tmp_path / "b", steps=30, progress=False, label="adapter")
    md, js, png = compare([tmp_path / "a", tmp_path / "b"], tmp_path / "report")
    text = md.read_text()
    assert "| base | 6 |" in text and "| adapter | 6 |" in text
    assert [r["label"] for r in json.loads(js.read_text())] == ["base", "adapter"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "teletype", "eval", "permissions", "--out", tmp_path / "e",
                          "--jobs", "2", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| scripted |" in out.stdout
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["metrics"]["overall"]["clean"] == 1.0


def test_the_tiny_model_through_the_hf_policy_shares_one_model_and_batches(tmp_path, tiny_model_dir):
    import threading

    from teletype.engine.policy.hfbatch import SharedHF

    paths = find_scenarios("permissions")[:3]
    choice = ModelChoice("hf", {"base": str(tiny_model_dir), "max_new_tokens": 12})
    summary = run_eval(paths, choice, tmp_path / "ev", jobs=3, steps=3, progress=False,
                       limits=Limits(command_timeout=5))
    assert summary["metrics"]["overall"]["n"] == 3
    for row in summary["results"]:
        assert row["prompt_tokens"] > 0 and row["steps"] >= 1
        traj = json.loads((tmp_path / "ev" / row["run_dir"] / "trajectory.json").read_text())
        assert traj["model"] == str(tiny_model_dir)
        assert all(t["source"] == "model" and "prompt_tokens" in t["stats"] for t in traj["turns"])

    # The audit renders every recorded prompt again: all match; a doctored count is reported.
    audit = [sys.executable, "-m", "teletype", "eval", "--audit", str(tmp_path / "ev"),
             "--base", str(tiny_model_dir)]
    ok = subprocess.run(audit, cwd=REPO, capture_output=True, text=True, timeout=120)
    steps = sum(r["steps"] for r in summary["results"])
    assert ok.returncode == 0 and f"{steps} recorded prompts checked, 0 mismatched" in ok.stdout, ok.stderr
    row = summary["results"][0]
    path = tmp_path / "ev" / row["run_dir"] / "trajectory.json"
    traj = json.loads(path.read_text())
    traj["turns"][0]["stats"]["prompt_tokens"] += 5
    path.write_text(json.dumps(traj))
    bad = subprocess.run(audit, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and f"{row['scenario']} step 1: the prompt renders to" in bad.stdout

    shared = SharedHF(jobs=4, base=str(tiny_model_dir), max_new_tokens=8)
    try:
        messages = [{"role": "user", "content": "teletype 0.1.0 host: h user: u shell: /bin/sh\nu@h:~$ "}]
        answers, gate = [], threading.Barrier(4)

        def ask():
            policy = shared.policy()
            gate.wait()
            answers.append(policy.propose(messages).raw)

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 4 and len(set(answers)) == 1   # same prompt, same greedy answer
        assert sum(shared.batches) == 4 and max(shared.batches) > 1  # they were decoded together
    finally:
        shared.close()


def test_the_readme_experiment_table_is_what_its_command_regenerates(tmp_path):
    """The README's eval table comes from the committed results by the command the README gives."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The reference experiment"):]
    section = section[:section.index("\n## ", 5)]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    block = re.search(r"```sh\n(R=docs/eval-smollm2-runs\n.*?)```", section, re.S).group(1)
    argv = shlex.split(block.split("\n", 1)[1].replace("\\\n", " ").replace("$R", "docs/eval-smollm2-runs"))
    assert argv[:3] == ["teletype", "eval", "--compare"]
    argv[argv.index("--report") + 1] = str(tmp_path / "report")
    cli = subprocess.run([sys.executable, "-m", "teletype", *argv[1:]], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    regenerated = (tmp_path / "report.md").read_text().split("\n\n")[0].strip()
    assert table == regenerated
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_library_code_raises_usage_errors_and_the_cli_exits_2(tmp_path, capsys):
    """evaluate.py and model/options.py raise UsageError (never SystemExit); teletype.cli prints it."""
    import argparse

    from teletype.cli import main
    from teletype.engine.errors import UsageError
    from teletype.engine.eval.evaluate import run_eval
    from teletype.engine.policy.options import ModelChoice, add_model_options, resolve_model

    for i in range(2):
        d = tmp_path / f"s{i}" / "cleanup"
        d.mkdir(parents=True)
        (d / "same.toml").write_text((REPO / "scenarios" / "cleanup" / "tmp_files.toml").read_text())
    paths = [tmp_path / f"s{i}" / "cleanup" / "same.toml" for i in range(2)]
    with pytest.raises(UsageError, match="two scenarios share a name: cleanup/same"):
        run_eval(paths, ModelChoice("scripted", {}), tmp_path / "out", progress=False)
    p = argparse.ArgumentParser()
    add_model_options(p)
    with pytest.raises(UsageError, match="--policy hf needs --model or --base"):
        resolve_model(p.parse_args(["--policy", "hf"]))
    assert main(["eval", str(paths[0]), str(paths[1]), "--out", str(tmp_path / "o2")]) == 2
    assert capsys.readouterr().err.startswith("teletype eval: two scenarios share a name")
