"""Shared pytest fixtures. Each owner keeps its fixtures in its own marked block."""
from __future__ import annotations

import pytest

# -- model engine fixtures (engine/model/tinymodel.py, engine/policy/render.py, engine/policy/hf.py) -------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny Mistral-architecture model (teletype.engine.model.tinymodel), built once per test session. No download."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from teletype.engine.model.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer, loaded like a hub model's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)

# -- end of model engine fixtures -----------------------------------------------------------------------


# -- sandbox fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker_daemon():
    """A reachable daemon (through DOCKER_HOST), or skip; under CI=true, fail instead of skipping."""
    import os

    from teletype.engine.sandbox.base import SandboxError
    from teletype.engine.sandbox.docker import connect

    try:
        client = connect(timeout=10)
    except SandboxError as exc:
        msg = f"no docker daemon: {exc} (run `eval \"$(.ci/dockerd.sh)\"` first)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    yield client
    client.close()

# -- end of sandbox fixtures -------------------------------------------------------------------------


# -- train fixtures (tests/test_train.py, tests/test_train_runs.py) -----------------------------------
@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Scripted demonstrations of trainkit.SCENARIOS, recorded in real bwrap sandboxes."""
    import shutil

    from trainkit import SCENARIOS
    from util import REPO

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    from teletype.engine.policy import make_policy
    from teletype.engine.runtime.session import Session
    from teletype.engine.worlds.scenario import load_scenario

    root = tmp_path_factory.mktemp("recordings")
    for name in SCENARIOS:
        sc = load_scenario(REPO / "scenarios" / f"{name}.toml")
        assert sc.scenario.split == "train"
        outcome = Session(sc, policy=make_policy("scripted", scenario=sc),
                          record_dir=root / name.replace("/", "-")).run()
        assert outcome.outcome == "success", name
    return root


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    """Three short recorded runs (trajectory.json only), enough for a quick training."""
    from trainkit import short_session
    from util import write_run

    root = tmp_path_factory.mktemp("synthetic")
    for i, command in enumerate(["cat TASK", "ls -la", "touch done"]):
        write_run(root / f"s{i}", short_session(command))
    return root

# -- end of train fixtures ------------------------------------------------------------------------------
