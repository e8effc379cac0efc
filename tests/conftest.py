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
