"""One loaded model for many sessions at once (`teletype eval --jobs N` with the hf policy).

`SharedHF` loads the model once (through HFPolicy, so loading, dtype, adapter merging, stop tokens
and rendering are the same code) and hands out light per-session policies:

- with one job, each session gets a view on one HFPolicy: its KV cache is reused step to step and
  reset between sessions;
- with several jobs, a scheduler thread batches the requests that are waiting: whatever sessions
  asked while the previous batch ran are decoded together, left-padded, greedy, each stopping at its
  own end of turn. There is no gathering timer: a lone request is decoded alone at once.

Batched greedy decoding computes the same argmax as unbatched decoding up to floating-point
rounding in the batched matrix products; on the models tested here the outcomes are identical.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import torch

from ..render import RenderError, prompt_window
from ..typed import to_command
from .base import Message, PolicyError, Proposal, TokenCallback
from .hf import HFPolicy


@dataclass
class _Request:
    ids: list[int]
    window: object
    done: threading.Event = field(default_factory=threading.Event)
    result: Proposal | None = None
    error: BaseException | None = None


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
        self._engine_lock = threading.Lock()
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
        eng = self.engine
        self.batches.append(len(batch))
        width = max(len(r.ids) for r in batch)
        pad = eng.tokenizer.pad_token_id
        if pad is None:
            pad = eng.tokenizer.eos_token_id or 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding: every prompt ends at the last column
            input_ids[i, width - len(r.ids):] = torch.tensor(r.ids)
            mask[i, width - len(r.ids):] = 1
        device = eng.device
        t0 = time.perf_counter()
        out = eng.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=eng.max_new_tokens, do_sample=False,
                                 eos_token_id=sorted(eng.stop_ids), pad_token_id=pad)
        seconds = time.perf_counter() - t0
        for i, r in enumerate(batch):
            new = out[i, width:].tolist()
            generated, stopped = [], "max_new_tokens"
            for tok in new:
                if tok in eng.stop_ids:
                    stopped = "eos"
                    break
                generated.append(tok)
            raw = eng._decode(generated)
            command, note = to_command(raw)
            if stopped == "max_new_tokens":
                bound = f"no end of turn within {eng.max_new_tokens} tokens"
                note = f"{bound}; {note}" if note else bound
            stats = {"prompt_tokens": len(r.ids), "budget": eng.budget, "cached_tokens": 0,
                     "prefill_tokens": len(r.ids), "new_tokens": len(generated),
                     "prefill_s": 0.0, "decode_s": round(seconds, 6), "batch": len(batch),
                     "stopped": stopped, "dropped_turns": r.window.dropped_turns,
                     "elided_outputs": r.window.elided}
            if note:
                stats["note"] = note
            r.result = Proposal(command=command, raw=raw, source="model", stats=stats)
            r.done.set()

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
        with self.shared._engine_lock:
            return self.shared.engine.propose(messages, on_token=on_token)

    def close(self) -> None:
        self.shared.engine.reset()  # the model stays loaded for the next session


class _BatchedPolicy:
    def __init__(self, shared: SharedHF):
        self.shared = shared
        self.name = shared.name

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        eng = self.shared.engine
        try:
            window = prompt_window(eng.tokenizer, messages, eng.budget)
        except RenderError as e:
            raise PolicyError(f"{self.name}: {e}") from e
        proposal = self.shared.submit(_Request(ids=window.ids, window=window))
        if on_token is not None and proposal.raw:
            on_token(proposal.raw)
        return proposal

    def close(self) -> None:
        pass
