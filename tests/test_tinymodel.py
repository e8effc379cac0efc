"""The tiny model (teletype.engine.model.tinymodel): a real Mistral-architecture model and tokenizer, built locally."""
from __future__ import annotations

import hashlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from teletype.engine.model.tinymodel import build_tiny_model  # noqa: E402


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_it_loads_like_a_hub_model(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "MistralForCausalLM"
    assert model.config.model_type == "mistral" and model.config.initializer_range == pytest.approx(0.2)
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 1_000_000
    assert 256 < len(tokenizer) <= 1024 and model.config.vocab_size == len(tokenizer)
    assert (tokenizer.unk_token, tokenizer.bos_token, tokenizer.eos_token) == ("<unk>", "<s>", "</s>")
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert model.generation_config.eos_token_id == 2


def test_its_chat_template_is_mistral_instruct_style_with_generation_markers(tiny_tokenizer):
    messages = [{"role": "user", "content": "hi $ "}, {"role": "assistant", "content": "ls"},
                {"role": "user", "content": "a b\n$ "}]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s>[INST] hi $  [/INST]ls</s>[INST] a b\n$  [/INST]"
    assert "{% generation %}" in tiny_tokenizer.chat_template.replace("{%- generation %}", "{% generation %}")
    with pytest.raises(Exception, match="alternate"):
        tiny_tokenizer.apply_chat_template(messages[:1] * 2, tokenize=False)


def test_the_tokenizer_round_trips_any_text(tiny_tokenizer):
    for text in ["ls -la ~/bin", "naïve café — ✓ 日本", "tab\there\nnew line  ", "</s> is text here"]:
        ids = tiny_tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert tiny_tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text


def test_its_logits_are_not_flat(tiny_model_dir, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "alice@sek:~$ "}],
                                             add_generation_prompt=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    assert logits.std() > 1.0  # initializer_range 0.2: greedy decoding has something to choose


def test_it_is_deterministic_for_a_seed(tiny_model_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert digest(again / name) == digest(tiny_model_dir / name), name
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert digest(other / "model.safetensors") != digest(tiny_model_dir / "model.safetensors")
    assert digest(other / "tokenizer.json") == digest(tiny_model_dir / "tokenizer.json")
