"""Token counting with a model's own tokenizer, eliding an output to fit a token budget, and the lock
that every use of a shared tokenizer takes (teletype.engine.policy.render builds on these).

A fast tokenizer is not safe to share between threads: a call with `split_special_tokens` (or other
settings) changes the shared Rust tokenizer's state. So every use here holds the tokenizer's lock, and
so must a caller that uses the tokenizer itself while others may render (`tokenizer_lock`).
"""
from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Sequence


class _TokenizerInfo:
    """Per-tokenizer facts and caches (token counts of texts, elided outputs, template overheads)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.sanitize = "sanitize_control_tokens" in inspect.signature(
            tokenizer.apply_chat_template).parameters
        self.counts: dict[str, int] = {}
        self.elided: dict[tuple[str, int], str] = {}
        self.overheads: dict[str | None, tuple[int, int]] = {}
        self.lock = threading.RLock()

    def count(self, texts: Sequence[str]) -> list[int]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.counts]
        if missing:
            if len(self.counts) > 20000:
                self.counts.clear()
            # Control tokens in content are encoded as text when rendering; count them that way too.
            enc = self.tokenizer(missing, add_special_tokens=False, split_special_tokens=True)
            for text, ids in zip(missing, enc["input_ids"]):
                self.counts[text] = len(ids)
        return [self.counts[t] for t in texts]


_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_INFO_LOCK = threading.Lock()


def tokenizer_info(tokenizer) -> _TokenizerInfo:
    """What teletype keeps per tokenizer (its lock, its token-count cache, its settings), made once."""
    try:
        with _INFO_LOCK:
            info = _INFO.get(tokenizer)
            if info is None:
                info = _INFO[tokenizer] = _TokenizerInfo(tokenizer)
        return info
    except TypeError:  # not weak-referenceable or not hashable: no caching
        return _TokenizerInfo(tokenizer)


def tokenizer_lock(tokenizer) -> threading.RLock:
    """The lock that every use of `tokenizer` here takes (hold it to call the tokenizer yourself).

    A fast tokenizer is not safe to share between threads: a call with `split_special_tokens` (or other
    settings) changes the shared Rust tokenizer's state, so a prompt rendered at the same moment in
    another thread can come out with its control tokens split into text (seen with `teletype eval
    --jobs N`, where every session renders its own prompt)."""
    return tokenizer_info(tokenizer).lock


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of `text` alone with the model's tokenizer (no special tokens added)."""
    info = tokenizer_info(tokenizer)
    with info.lock:
        return info.count([text])[0]


def elision_line(lines: int, chars: int = 0) -> str:
    if chars:
        return f"[teletype: {lines} earlier lines and {chars} characters elided]\n"
    return f"[teletype: {lines} earlier lines elided]\n"


def elide_output(text: str, max_tokens: int, count: Callable[[Sequence[str]], list[int]]) -> str:
    """`text` unchanged if it fits in `max_tokens`, else its tail behind an elision line.

    Whole lines are kept from the end; a single last line that alone is too long keeps its last
    characters. `count` maps texts to token counts (per-line counts add up to at least the count of the
    joined text for the tokenizers we meet; the window's exact check catches the rest).
    """
    if count([text])[0] <= max_tokens:
        return text
    lines = text.splitlines(keepends=True)
    sizes = count(lines)
    kept, total = 0, 0
    for size in reversed(sizes):
        # Reserve the elision line's own tokens (its digits count, so use the widest it can be).
        if total + size + count([elision_line(len(lines), len(text))])[0] > max_tokens:
            break
        total += size
        kept += 1
    if kept:
        return elision_line(len(lines) - kept) + "".join(lines[len(lines) - kept:])
    # The last line alone is too long: keep as many of its last characters as fit.
    last = lines[-1]
    room = max_tokens - count([elision_line(len(lines), len(text))])[0]
    lo, hi = 0, len(last)
    while lo < hi:  # the longest tail of `last` that fits in `room`
        mid = (lo + hi + 1) // 2
        if count([last[len(last) - mid:]])[0] <= room:
            lo = mid
        else:
            hi = mid - 1
    return elision_line(len(lines) - 1, len(last) - lo) + last[len(last) - lo:]


def load_chat_tokenizer(source: str):
    """A model's own tokenizer (AutoTokenizer), which must carry a chat template: teletype renders
    every prompt through one. ValueError, naming `source`, when it cannot be loaded or has none."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        raise ValueError(f"could not load the tokenizer of {source!r}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{source!r} has no chat template; teletype renders only through one")
    return tokenizer
