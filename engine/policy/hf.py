"""The `hf` policy: a local causal LM through transformers (+ an optional PEFT adapter), greedy.

Why our own decoding loop instead of `generate()`: a session asks for one command per step, and each
step's prompt is the previous prompt plus the last answer and its output. Keeping the KV cache between
steps and prefilling only from the longest common prefix of token ids makes a step cost its new tokens,
not the whole conversation. The renderer (teletype.engine.policy.render) slides the window rarely for the same reason;
when it does slide, the common prefix is short and the prompt is prefilled again.

- base and adapter: a hub id or a local directory each; `model="teletype-mistral"` is the reference preset.
  The adapter is merged into the base weights after loading (plain matmuls at serve time).
- fp16 on CUDA, fp32 on CPU unless `dtype` says otherwise ("float16", "bfloat16", "float32", "auto").
- greedy; stops at the end-of-turn token(s) of the chat template (and the tokenizer's eos), or after
  `max_new_tokens`; streams text through `on_token` as it is produced.
- what is typed comes from `teletype.engine.policy.typed.to_command`; `Proposal.raw` is the model's text.
- decoding: each token after the first through teletype.engine.policy.fastdecode where the architecture allows
  (Llama, Mistral; the same logits, bit for bit, fewer Python ops), else through `model.forward`.
- `Proposal.stats`: prompt_tokens, budget, cached_tokens, prefill_tokens, new_tokens, prefill_s, decode_s,
  stopped ("eos" or "max_new_tokens"), dropped_turns, elided_outputs, note.

torch and transformers are imported here only; `teletype.engine.policy` imports this module when hf is chosen.
"""
from __future__ import annotations

import gc
import importlib.util
import inspect
import threading
import time
from pathlib import Path

import torch

from teletype.engine.policy.base import Message, PolicyError, Proposal, ProposalCancelled, TokenCallback
from teletype.engine.policy.fastdecode import FastDecoder
from teletype.engine.policy.options import PRESETS, resolve_preset  # shared with the CLI
from teletype.engine.policy.render import DEFAULT_BUDGET, RenderError, end_of_turn_ids, prompt_window
from teletype.engine.policy.tokens import load_chat_tokenizer, tokenizer_lock
from teletype.engine.policy.typed import to_command
from teletype.engine.threads import governor

_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float32": torch.float32, "fp32": torch.float32, "float": torch.float32}


def resolve_dtype(dtype, device: str) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere unless `dtype` (a torch dtype or its name) says otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise PolicyError(f"unknown dtype {dtype!r}; expected auto, float16, bfloat16 or float32") from None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KVState:
    """One conversation's KV cache and the token ids it holds (HFPolicy keeps one; the batched
    scheduler in teletype.engine.policy.hfbatch keeps one per session)."""

    def __init__(self):
        self.cache = None
        self.ids: list[int] = []

    def reset(self) -> None:
        self.cache = None
        self.ids = []

    def reuse(self, ids: list[int], enabled: bool = True) -> int:
        """Make the cache hold the longest usable prefix of `ids`; return its length."""
        keep = min(_common_prefix(self.ids, ids), len(ids) - 1) if enabled and self.cache is not None else 0
        if keep <= 0:                      # at least one token is always fed, for its logits
            from transformers import DynamicCache

            self.cache = DynamicCache()    # full layers: croppable back to any common prefix
            self.ids = []
            return 0
        drop = len(self.ids) - keep
        if drop > 0:
            self.cache.crop(-drop)         # a negative count removes that many
            del self.ids[keep:]
        return keep

    def forward(self, engine: HFPolicy, ids: list[int]):
        """Feed `ids` after what the cache holds; the logits of the last position."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=engine.device)
        out = engine.model(input_ids=input_ids, use_cache=True, logits_to_keep=1,
                           **{engine.cache_kwarg: self.cache})
        self.ids.extend(ids)
        return out.logits[0, -1]


class HFPolicy:
    def __init__(self, base: str | None = None, adapter: str | None = None, device: str | None = None,
                 dtype=None, max_new_tokens: int = 256, budget: int = DEFAULT_BUDGET,
                 model: str | None = None, reuse_cache: bool = True, fast_decode: bool = True):
        base, adapter = resolve_preset(model, base, adapter)
        if not base:
            raise PolicyError("the hf policy needs a base model (a hub id or a local directory) or a preset "
                              f"({', '.join(PRESETS)})")
        if max_new_tokens < 1:
            raise PolicyError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.base, self.adapter = str(base), (str(adapter) if adapter else None)
        self.name = self.base + (f"+{self.adapter}" if self.adapter else "")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = resolve_dtype(dtype, self.device.type)
        self.max_new_tokens = max_new_tokens
        self.budget = budget
        self.reuse_cache = reuse_cache
        self._lock = threading.Lock()
        self.kv = KVState()
        self.tokenizer, self.model = self._load()
        self.cache_kwarg = self._find_cache_kwarg()
        # Decoding steps with few Python ops, the model's logits bit for bit (teletype.engine.policy.fastdecode).
        self.fast = FastDecoder(self.model) if fast_decode and FastDecoder.supports(self.model) is None else None
        try:
            self.stop_ids = set(end_of_turn_ids(self.tokenizer))
        except RenderError as e:
            raise PolicyError(f"{self.name}: {e}") from e
        extra = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        self.stop_ids |= set(extra if isinstance(extra, (list, tuple)) else [extra] if extra is not None else [])

    # -- loading ----------------------------------------------------------------------------------------
    def _load(self):
        from transformers import AutoModelForCausalLM

        # A local adapter directory that carries its own tokenizer (train/ may save one) wins.
        tok_source = self.base
        if self.adapter and (Path(self.adapter) / "tokenizer_config.json").is_file():
            tok_source = self.adapter
        try:
            tokenizer = load_chat_tokenizer(tok_source)
        except ValueError as e:
            raise PolicyError(str(e)) from e
        options = {"dtype": self.dtype}
        if self.device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
            options["device_map"] = str(self.device)  # straight onto the GPU, not through host memory
        try:
            model = AutoModelForCausalLM.from_pretrained(self.base, **options)
        except Exception as e:
            raise PolicyError(f"could not load the base model {self.base!r}: {e}") from e
        if self.adapter:
            try:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
            except Exception as e:
                raise PolicyError(f"could not load the adapter {self.adapter!r} on {self.base!r}: {e}") from e
        model.to(self.device)
        model.eval()
        return tokenizer, model

    def _find_cache_kwarg(self) -> str:
        """transformers 5's models take the KV cache as `cache`; a model with its own code (a hub
        repository's modeling file, trust_remote_code) may still call it `past_key_values`."""
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    # -- the KV cache --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the KV cache (the next step prefills its whole prompt)."""
        self.kv.reset()

    def _reuse(self, ids: list[int]) -> int:
        return self.kv.reuse(ids, enabled=self.reuse_cache)

    def _forward(self, ids: list[int]):
        return self.kv.forward(self, ids)

    # -- the Policy API ------------------------------------------------------------------------------------
    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        with self._lock:
            try:
                window = prompt_window(self.tokenizer, messages, self.budget)
            except RenderError as e:
                raise PolicyError(f"{self.name}: {e}") from e
            try:
                with torch.inference_mode():
                    return self._generate(window, on_token)
            except (PolicyError, ProposalCancelled):
                raise  # cancelled between two tokens: the KV cache holds exactly what was fed
            except Exception as e:
                self.reset()
                raise PolicyError(f"{self.name}: generation failed: {type(e).__name__}: {e}") from e

    def _generate(self, window, on_token: TokenCallback | None) -> Proposal:
        ids = window.ids
        gov = governor() if self.device.type == "cpu" else None
        threads = {}
        t0 = time.perf_counter()
        cached = self._reuse(ids)
        if gov is not None:
            threads["prefill"] = gov.use("prefill", len(ids) - cached)
        logits = self._forward(ids[cached:])
        token = int(torch.argmax(logits))  # .item() waits for the device: the timing is honest
        prefill_s = time.perf_counter() - t0
        if gov is not None:
            gov.record("prefill", prefill_s, len(ids) - cached)
            gov.use("decode")

        t1 = time.perf_counter()
        generated: list[int] = []
        emitted = ""
        stopped = "max_new_tokens"
        while True:
            if token in self.stop_ids:
                stopped = "eos"
                break
            generated.append(token)
            if on_token is not None:
                text = self.decode(generated)
                # Hold back an incomplete UTF-8 sequence; never re-emit text already shown.
                if not text.endswith("\ufffd") and text.startswith(emitted) and len(text) > len(emitted):
                    on_token(text[len(emitted):])
                    emitted = text
            if len(generated) >= self.max_new_tokens:
                break
            ts = time.perf_counter()
            logits = self.fast.step(self.kv, token) if self.fast is not None else self._forward([token])
            token = int(torch.argmax(logits))
            if gov is not None:
                gov.tick("decode", time.perf_counter() - ts)
        raw = self.decode(generated)
        if on_token is not None and raw.startswith(emitted) and len(raw) > len(emitted):
            on_token(raw[len(emitted):])
        decode_s = time.perf_counter() - t1

        command, note = to_command(raw)
        if stopped == "max_new_tokens":
            bound = f"no end of turn within {self.max_new_tokens} tokens"
            note = f"{bound}; {note}" if note else bound
        stats = {
            "prompt_tokens": len(ids),
            "budget": self.budget,
            "cached_tokens": cached,
            "prefill_tokens": len(ids) - cached,
            "new_tokens": len(generated),
            "prefill_s": round(prefill_s, 6),
            "decode_s": round(decode_s, 6),
            "stopped": stopped,
            "dropped_turns": window.dropped_turns,
            "elided_outputs": window.elided,
        }
        if gov is not None:
            threads["decode"] = gov.current
            stats["threads"] = threads
        if note:
            stats["note"] = note
        return Proposal(command=command, raw=raw, source="model", stats=stats)

    def decode(self, ids: list[int]) -> str:
        """Token ids as the text typed (special tokens kept, no clean-up of spaces)."""
        # clean_up_tokenization_spaces would turn "ls ." into "ls." : never for commands.
        with tokenizer_lock(self.tokenizer):  # other sessions' threads may be rendering (eval --jobs N)
            return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def close(self) -> None:
        self.reset()
        self.model = self.fast = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
