"""Shared pytest fixtures. Each owner keeps its fixtures in its own marked block."""
from __future__ import annotations

import pytest

# -- model engine fixtures (engine/tinymodel.py, engine/render.py, engine/policy/hf.py) -------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny Mistral-architecture model (engine.tinymodel), built once per test session. No download."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from engine.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer, loaded like a hub model's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)

# -- end of model engine fixtures -----------------------------------------------------------------------
