"""Every example a user is shown runs: the ones in `teletype --help` and the README's shell blocks.

They run as a person would run them, in a fresh folder, through the installed `teletype` command (the
console in a real pseudo-terminal). Where an example names a big model, the tiny test model stands in
(`--model ./tiny`, which the first --help example builds) with a short step budget; every other word is
the example's own. The few that need what this machine cannot have (several GPUs, vLLM, remote
machines, llama.cpp's server) are listed with the reason, and a README example that is in neither
list fails the test, so a new one cannot go untried.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from util import REPO, needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.slow]

TELETYPE = Path(sys.executable).parent / "teletype"
BIG_MODELS = r"teletype-smollm2|teletype-mistral|smollm2|HuggingFaceTB/\S+|mistralai/\S+"
NOT_HERE = {  # a block with one of these is not run here, for the reason given
    "bash .ci/install.sh": "the set-up itself (CI runs it)",
    "teletype serve": "llama.cpp's server: tests/test_policy_openai.py::test_against_llama_cpp_server runs "
                      "serve's command line and eval --endpoint against it",
    "vllm serve": "vLLM on a GPU, and remote machines (DOCKER_HOST=tcp://builder)",
}
NOT_HERE_LINE = {  # a line that starts so is left out of its block
    "accelerate launch": "one process per GPU (teletype.train.cli's own entry point runs in test_train.py)",
}


def stand_in(command: str) -> str:
    """The example with the tiny model for a big one, and a short step budget for sessions."""
    command = re.sub(rf"--model (?:{BIG_MODELS})(?=\s|$)", "--model ./tiny", command)
    words = command.split()
    if words[:2] == ["teletype", "console"] and not {"--model", "--base", "--endpoint", "--policy"} & set(words):
        command += " --model ./tiny"   # the console's default is the embedded model
    if re.match(r"teletype (run|eval) (?!--compare|--audit)", command) and "./tiny" in command \
            and "--steps" not in command:
        command += " --steps 2"
    return command


def env() -> dict:
    path = f"{TELETYPE.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_console(command: str, cwd: Path) -> None:
    """`teletype console ...` in a real terminal: wait until it waits for the operator, then quit."""
    from ptyprocess import PtyProcessUnicode

    proc = PtyProcessUnicode.spawn(["bash", "-c", command], cwd=str(cwd), env=env(), dimensions=(40, 140))
    seen, deadline = "", time.monotonic() + 120
    try:
        while "waiting for the operator" not in seen and "the model did not load" not in seen:
            assert proc.isalive() and time.monotonic() < deadline, f"{command}: no console came up:\n{seen[-2000:]}"
            try:
                seen += proc.read(65536)
            except EOFError:
                break
        assert "waiting for the operator" in seen, f"{command}: {seen[-2000:]}"
        proc.write("q")
        while proc.isalive() and time.monotonic() < deadline:
            try:
                proc.read(65536)
            except EOFError:
                break
        proc.wait()
    finally:
        if proc.isalive():
            proc.terminate(force=True)
    assert proc.exitstatus == 0, f"{command}: exit status {proc.exitstatus}"


def run_shell(script: str, cwd: Path, what: str) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", "-c", script], cwd=cwd, env=env(), capture_output=True, text=True,
                         timeout=1800)
    return out


def check(out: subprocess.CompletedProcess, command: str) -> None:
    if out.returncode == 1 and re.match(r"teletype run .*--model \./tiny", command):
        # an untrained model does not solve the task: the session ran to an outcome, reported
        assert re.search(r": (incomplete|no_operate|premature_exit|false_panic) \(verified", out.stdout), out.stdout
        return
    assert out.returncode == 0, f"{command}\nexit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if not TELETYPE.exists():
        pytest.skip(f"no installed teletype command at {TELETYPE} (pip install -e .)")
    pytest.importorskip("transformers")
    return tmp_path_factory.mktemp("newcomer")


def help_examples() -> list[str]:
    out = subprocess.run([str(TELETYPE), "--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("examples", 1)[1]
    lines = [line.strip() for line in block.splitlines() if line.startswith("  teletype ")]
    return [re.split(r"\s{2,}", line)[0] for line in lines]   # drop the right-hand remarks


def test_every_example_in_the_help_runs(workdir):
    examples = help_examples()
    assert examples[0] == "teletype tiny-model ./tiny" and len(examples) >= 8
    for example in examples:
        command = stand_in(example)
        if command.startswith("teletype console"):
            run_console(command, workdir)
            continue
        check(run_shell(command, workdir, example), command)
    assert (workdir / "demos.jsonl").read_text().strip()           # export found the clean session
    assert (workdir / "adapters" / "mine" / "adapter_config.json").exists()
    assert (workdir / "runs" / "eval-heldout" / "summary.json").exists()


def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [m.group(1) for m in re.finditer(r"```sh\n(.*?)```", text, flags=re.S)]


def test_every_example_in_the_readme_runs(workdir, tmp_path):
    cwd = tmp_path / "readme"
    cwd.mkdir()
    (cwd / "scenarios").symlink_to(REPO / "scenarios")     # the README's commands run in a checkout
    shutil.copytree(REPO / "docs" / "eval-smollm2-runs", cwd / "docs" / "eval-smollm2-runs")
    shutil.copytree(workdir / "tiny", cwd / "tiny")
    ran = 0
    for block in readme_blocks():
        lines = [line for line in block.replace("\\\n", " ").splitlines()
                 if line.strip() and not line.startswith(tuple(NOT_HERE_LINE))]
        skip = [why for start, why in NOT_HERE.items() for line in lines if start in line.split("#")[0]]
        if skip:
            continue
        assert any("teletype " in line for line in lines), f"a README block with no teletype in it:\n{block}"
        script = "\n".join(stand_in(line.split("  #")[0].rstrip()) if line.startswith("teletype ") else line
                           for line in lines)
        if "teletype console" in script:     # one line at a time, the console in a terminal
            for line in script.splitlines():
                if line.startswith("teletype console"):
                    run_console(line, cwd)
                else:
                    check(run_shell(line, cwd, line), line)
        else:
            check(run_shell("set -e\n" + script, cwd, block), script)
        ran += 1
    assert ran >= 3
    assert (cwd / "docs" / "eval-smollm2.md").read_text().count("\n|") >= 4   # the compare wrote its table
    assert (cwd / "runs" / "now-train" / "summary.json").exists()
    assert (cwd / "runs" / "heldout-tf.json").exists()
    assert (cwd / "adapters" / "mine" / "adapter_config.json").exists()
