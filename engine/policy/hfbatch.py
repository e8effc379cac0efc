"""One loaded model for many sessions at once (`teletype eval --jobs N` with the hf policy).

`SharedHF` loads the model once (through HFPolicy, so loading, dtype, adapter merging, stop tokens
and rendering are the same code) and hands out light per-session policies:

- with one job, each session gets a view on one HFPolicy: its KV cache is reused step to step and
  reset between sessions;
- with several jobs, each session keeps its own KV cache, and a scheduler thread serves the requests
  that are waiting together: each is prefilled on its own cache (only the tokens it lacks: the last
  answer and its output), then all are decoded as one batch (the caches left-padded into one, split
  back afterwards), greedy, each stopping at its own end of turn. Whatever sessions asked while the
  previous batch ran go together; there is no gathering timer: a lone request is decoded alone at once.

Why: decoding one token costs about the same for 1 or 8 sequences on a CPU (reading the weights is
the cost), and re-encoding whole conversations every step would cost more than the decoding.

Batched greedy decoding computes the same argmax as unbatched decoding up to floating-point
rounding in the batched matrix products; a test drives sessions of different lengths together and
alone and gets the same answers on the tiny model.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch

from teletype.engine.policy.base import Message, PolicyError, Proposal, TokenCallback
from teletype.engine.policy.hf import HFPolicy, KVState
from teletype.engine.policy.render import RenderError, prompt_window
from teletype.engine.policy.typed import to_command
from teletype.engine.threads import governor


@dataclass
class _Request:
    ids: list[int]
    window: object
    owner: _BatchedPolicy
    done: threading.Event = field(default_factory=threading.Event)
    result: Proposal | None = None
    error: BaseException | None = None


@dataclass
class _Row:
    request: _Request
    cached: int
    token: int                  # the next token, not yet fed
    prefill_s: float
    generated: list[int] = field(default_factory=list)
    stopped: str = ""


def _layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A DynamicCache's (keys, values) per layer, each [batch, heads, length, dim]."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def _stack(caches: list, lengths: list[int], width: int):
    """One batch cache from single-session caches, each left-padded with zeros to `width`."""
    from transformers import DynamicCache

    batch = DynamicCache()
    per_session = [_layers(c) for c in caches]
    for layer in range(len(per_session[0])):
        keys, values = [], []
        for sess, n in zip(per_session, lengths):
            k, v = sess[layer]
            if n < width:
                k = torch.nn.functional.pad(k, (0, 0, width - n, 0))
                v = torch.nn.functional.pad(v, (0, 0, width - n, 0))
            keys.append(k)
            values.append(v)
        batch.update(torch.cat(keys), torch.cat(values), layer)
    return batch


def _unstack(batch, row: int, start: int, end: int):
    """Row `row` of a batch cache, positions [start, end), as a single-session cache."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (k, v) in enumerate(_layers(batch)):
        cache.update(k[row:row + 1, :, start:end].clone(), v[row:row + 1, :, start:end].clone(), layer)
    return cache


class SharedHF:
    def __init__(self, jobs: int = 1, max_batch: int = 16, **options):
        self.engine = HFPolicy(**options)
        self.jobs = jobs
        self.max_batch = max_batch
        self.name = self.engine.name
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches: list[int] = []  # sizes of the batches run (for the benchmark)
        self.engine_lock = threading.Lock()
        if jobs > 1:
            self._thread = threading.Thread(target=self._loop, name="teletype-hf-batcher", daemon=True)
            self._thread.start()

    def policy(self):
        return _SessionView(self) if self.jobs <= 1 else _BatchedPolicy(self)

    # -- the batcher ------------------------------------------------------------------------------------
    def submit(self, req: _Request) -> Proposal:
        with self._cond:
            if self._closed:
                raise PolicyError(f"{self.name}: the shared model was closed")
            self._pending.append(req)
            self._cond.notify()
        req.done.wait()
        if req.error is not None:
            raise req.error
        return req.result

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for r in self._pending:
                        r.error = PolicyError(f"{self.name}: the shared model was closed")
                        r.done.set()
                    return
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                with torch.inference_mode():
                    self._run(batch)
            except BaseException as exc:  # every waiter gets the error; the batcher lives on
                for r in batch:
                    if not r.done.is_set():
                        r.error = PolicyError(f"{self.name}: batched generation failed: {exc}")
                        r.done.set()

    def _run(self, batch: list[_Request]) -> None:
        """Prefill each request on its own session's KV cache (only the tokens that cache lacks), then
        decode them all together: the caches are left-padded into one batch for the decoding and split
        back afterwards, so every session keeps its cache for its next step."""
        eng = self.engine
        self.batches.append(len(batch))
        gov = governor() if eng.device.type == "cpu" else None
        rows = []
        for r in batch:
            t0 = time.perf_counter()
            kv = r.owner.kv
            cached = kv.reuse(r.ids)
            if gov is not None:
                gov.use("prefill", len(r.ids) - cached)
            token = int(torch.argmax(kv.forward(eng, r.ids[cached:])))
            rows.append(_Row(r, cached, token, time.perf_counter() - t0))
            if gov is not None:
                gov.record("prefill", rows[-1].prefill_s, len(r.ids) - cached)
        if gov is not None:
            gov.use("decode")
        t1 = time.perf_counter()
        self._decode(rows, gov)
        decode_s = time.perf_counter() - t1
        for row in rows:
            r = row.request
            raw = eng.decode(row.generated)
            command, note = to_command(raw)
            if row.stopped == "max_new_tokens":
                bound = f"no end of turn within {eng.max_new_tokens} tokens"
                note = f"{bound}; {note}" if note else bound
            stats = {"prompt_tokens": len(r.ids), "budget": eng.budget, "cached_tokens": row.cached,
                     "prefill_tokens": len(r.ids) - row.cached, "new_tokens": len(row.generated),
                     "prefill_s": round(row.prefill_s, 6), "decode_s": round(decode_s, 6),
                     "batch": len(batch), "stopped": row.stopped, "dropped_turns": r.window.dropped_turns,
                     "elided_outputs": r.window.elided}
            if note:
                stats["note"] = note
            r.result = Proposal(command=command, raw=raw, source="model", stats=stats)
            r.done.set()

    def _decode(self, rows: list[_Row], gov=None) -> None:
        """Greedy decoding of every row at once, each from its own cache, each stopping on its own.

        The same token-by-token rule as HFPolicy: a token is fed only if it is not an end of turn and
        the answer is still short of max_new_tokens, so each session's cache ends up holding exactly
        what it would hold had it decoded alone."""
        eng = self.engine
        lengths = [len(row.request.owner.kv.ids) for row in rows]
        width = max(lengths)
        device = eng.device
        cache = _stack([row.request.owner.kv.cache for row in rows], lengths, width)
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        for i, n in enumerate(lengths):
            mask[i, width - n:] = 1
        pad = eng.tokenizer.pad_token_id
        pad = pad if pad is not None else (eng.tokenizer.eos_token_id or 0)
        fed = [0] * len(rows)
        while True:
            feed = []
            for i, row in enumerate(rows):
                if row.stopped:
                    continue
                if row.token in eng.stop_ids:
                    row.stopped = "eos"
                    continue
                row.generated.append(row.token)
                if len(row.generated) >= eng.max_new_tokens:
                    row.stopped = "max_new_tokens"
                    continue
                feed.append(i)
            if not feed:
                break
            tokens = torch.full((len(rows), 1), pad, dtype=torch.long, device=device)
            positions = torch.zeros((len(rows), 1), dtype=torch.long, device=device)
            for i in feed:
                tokens[i, 0] = rows[i].token
            for i in range(len(rows)):
                positions[i, 0] = lengths[i] + fed[i]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long, device=device)], dim=1)
            ts = time.perf_counter()
            out = eng.model(input_ids=tokens, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=1, **{eng.cache_kwarg: cache})
            best = torch.argmax(out.logits[:, -1], dim=-1).tolist()
            if gov is not None:
                gov.tick("decode", time.perf_counter() - ts)
            for i in feed:
                rows[i].request.owner.kv.ids.append(rows[i].token)
                fed[i] += 1
                rows[i].token = int(best[i])
        # Each session takes back its cache: its own positions, without the padding on the left and
        # without what was fed to the batch after it stopped.
        for i, row in enumerate(rows):
            row.request.owner.kv.cache = _unstack(cache, i, width - lengths[i], width + fed[i])

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.engine.close()


class _SessionView:
    """One job: the shared HFPolicy itself, its KV cache reset for each new session."""

    def __init__(self, shared: SharedHF):
        self.shared = shared
        self.name = shared.name
        shared.engine.reset()

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        with self.shared.engine_lock:
            return self.shared.engine.propose(messages, on_token=on_token)

    def close(self) -> None:
        self.shared.engine.reset()  # the model stays loaded for the next session


class _BatchedPolicy:
    """One session's policy in a batched eval: its own KV cache, decoded together with the others."""

    def __init__(self, shared: SharedHF):
        self.shared = shared
        self.name = shared.name
        self.kv = KVState()

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        eng = self.shared.engine
        try:
            window = prompt_window(eng.tokenizer, messages, eng.budget)
        except RenderError as e:
            raise PolicyError(f"{self.name}: {e}") from e
        try:
            proposal = self.shared.submit(_Request(ids=window.ids, window=window, owner=self))
        except PolicyError:
            self.kv.reset()          # a failed batch may have left this cache half-updated
            raise
        if on_token is not None and proposal.raw:
            on_token(proposal.raw)
        return proposal

    def close(self) -> None:
        self.kv.reset()
