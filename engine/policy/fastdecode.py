"""One decoding step of a Llama-family model (Llama, Mistral: SmolLM2, Mistral-7B) with few Python ops.

Why: decoding one token of SmolLM2-135M through `model.forward` spends more time in transformers'
Python (module calls, mask building, cache bookkeeping, a `torch.cat` of every layer's cache) than in
reading the weights: measured on this 2-core CPU, 66 ms a token at one thread against 41 ms for the
weight products alone. This step does the same arithmetic with the same torch calls in the same
order (RMSNorm as transformers writes it, the rotary tables from the model's own `rotary_emb`, the
attention through transformers' own `sdpa_attention_forward`), so its logits are the model's
bit for bit (tests/test_policy_hf.py compares them), and nothing else:

- the KV cache stays the policy's DynamicCache, but each layer's keys and values are views on a
  preallocated buffer, so appending a token writes one row instead of copying the whole cache
  (the buffer is rebuilt from the cache after a prefill or a crop has replaced the tensors);
- the rotary cos/sin are computed once per position and kept in a table;
- no module `__call__`, no mask (one sequence, nothing padded: the attention sees every position).

Only for batch 1 and the architectures it checks (`FastDecoder.supports`); anything else decodes
through `model.forward` as before. Prefill always goes through `model.forward`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ARCHITECTURES = ("llama", "mistral")
_SLACK = 256  # rows of room added when a buffer is (re)built


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm.forward, op for op."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class FastDecoder:
    @staticmethod
    def supports(model) -> str | None:
        """None when this step computes what `model.forward` computes; else why not."""
        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) not in ARCHITECTURES:
            return f"architecture {getattr(config, 'model_type', None)!r} (fast decoding knows {ARCHITECTURES})"
        rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            return f"rope type {rope.get('rope_type')!r}"
        if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
            return "biases in the projections"
        if getattr(config, "hidden_act", "silu") != "silu":
            return f"activation {config.hidden_act!r}"
        if getattr(config, "sliding_window", None):
            return "a sliding attention window"
        if getattr(config, "pretraining_tp", 1) != 1:
            return "pretraining_tp"
        if getattr(config, "_attn_implementation", "sdpa") != "sdpa":
            return f"attention implementation {config._attn_implementation!r}"
        inner = getattr(model, "model", None)
        if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
            return "not a CausalLM with model.layers"
        return None

    def __init__(self, model):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        self._attend = sdpa_attention_forward
        self.model = model
        inner = model.model
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        first = inner.layers[0].self_attn
        self.head_dim = first.head_dim
        self.layers = []
        for layer in inner.layers[:config.num_hidden_layers]:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                                a.q_proj.weight, a.k_proj.weight, a.v_proj.weight, a.o_proj.weight, a,
                                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                                m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight))
        self.norm = (inner.norm.weight, inner.norm.variance_epsilon)
        self.embed = inner.embed_tokens.weight
        self.lm_head = model.lm_head.weight
        self.rotary = inner.rotary_emb
        self._cos = self._sin = None

    # -- tables and buffers -----------------------------------------------------------------------------
    def _rope(self, position: int):
        if self._cos is None or position >= self._cos.shape[1]:
            n = max(position + 1, 2 * (self._cos.shape[1] if self._cos is not None else 2048))
            probe = self.embed[:1].unsqueeze(0)
            positions = torch.arange(n, device=self.embed.device).unsqueeze(0)
            self._cos, self._sin = self.rotary(probe, positions)     # [1, n, head_dim], the model's own
        return self._cos[:, position:position + 1], self._sin[:, position:position + 1]

    def _buffers(self, kv, n: int):
        """Per layer (key buffer, value buffer) holding the cache's n positions, with room for more."""
        layers = kv.cache.layers
        bufs = getattr(kv, "fast_buffers", None)
        fresh = (bufs is None or len(bufs) != len(layers) or bufs[0][0].shape[2] <= n
                 or any(layer.keys is None or layer.keys.dim() != 4 or layer.keys.shape[2] != n
                        or layer.keys.data_ptr() != kb.data_ptr() for layer, (kb, _) in zip(layers, bufs)))
        if not fresh:
            return bufs
        bufs = []
        for layer in layers:
            k, v = layer.keys, layer.values
            kb = k.new_empty((1, self.kv_heads, n + _SLACK, self.head_dim))
            vb = v.new_empty((1, self.kv_heads, n + _SLACK, self.head_dim))
            kb[:, :, :n] = k
            vb[:, :, :n] = v
            layer.keys, layer.values = kb[:, :, :n], vb[:, :, :n]
            bufs.append((kb, vb))
        kv.fast_buffers = bufs
        return bufs

    # -- the step -------------------------------------------------------------------------------------------
    def step(self, kv, token: int) -> torch.Tensor:
        """Feed one token after what `kv` holds (at least one position); the logits of that token."""
        n = len(kv.ids)
        bufs = self._buffers(kv, n)
        cos, sin = self._rope(n)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        x = self.embed[token].view(1, 1, -1)
        hd, nh, nkv = self.head_dim, self.heads, self.kv_heads
        for (w_in, eps_in, wq, wk, wv, wo, attn, w_post, eps_post, wg, wu, wd), (kb, vb), layer in zip(
                self.layers, bufs, kv.cache.layers):
            h = _rms(x, w_in, eps_in)
            q = F.linear(h, wq).view(1, 1, nh, hd).transpose(1, 2)
            k = F.linear(h, wk).view(1, 1, nkv, hd).transpose(1, 2)
            v = F.linear(h, wv).view(1, 1, nkv, hd).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            kb[:, :, n:n + 1] = k
            vb[:, :, n:n + 1] = v
            keys, values = kb[:, :, :n + 1], vb[:, :, :n + 1]
            layer.keys, layer.values = keys, values
            out = self._attend(attn, q, keys, values, None, dropout=0.0, scaling=attn.scaling)[0]
            x = x + F.linear(out.reshape(1, 1, -1), wo)
            h = _rms(x, w_post, eps_post)
            x = x + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
        x = _rms(x, *self.norm)
        kv.ids.append(token)
        return F.linear(x, self.lm_head)[0, -1]
