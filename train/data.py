"""Recordings -> training examples, through engine's renderer and nothing else.

Which sessions: `teletype.engine.record.export.load_conversations` with a `Selection` (the same rules as
`teletype export`): verified and cleanly ended sessions by default, held-out splits excluded unless
asked for by name, so an eval on the held-out archetypes stays honest. An exported JSONL is taken
as it is (it was filtered when exported, and its lines carry no split or outcome).

What each session becomes: `teletype.engine.policy.render.render_training_examples(tokenizer, messages, budget)`,
the very windows and token ids the hf policy serves with; labels are -100 except on each command (or
exit/panic) and its end-of-turn token. A session with nothing to train is an error that names its
recording. Longer than `max_length` is an error too (never a silent truncation; see TrainConfig).

Batches: `PadCollator` pads on the right; labels are -100 and attention 0 on the padding.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from teletype.engine.policy.render import IGNORE_INDEX, RenderError, TrainingExample, render_training_examples
from teletype.engine.record.export import Selection, load_conversations
from teletype.engine.record.recorder import RecordingError


class TrainDataError(ValueError):
    """The training data cannot be used as asked; the message names the recording."""


def make_selection(include_unclean: bool = False, sources: list[str] | None = None,
                   archetypes: list[str] | None = None, splits: list[str] | None = None,
                   include_heldout: bool = False) -> Selection:
    """The session filter. Held-out splits stay out unless --split names them or --include-heldout."""
    named = set(splits or [])
    exclude = set() if include_heldout or "heldout" in named else {"heldout"}
    return Selection(include_unclean=include_unclean,
                     sources=set(sources) if sources else None,
                     archetypes=set(archetypes) if archetypes else None,
                     splits=named or None,
                     exclude_splits=exclude)


@dataclass
class DataReport:
    """What goes into training and what was left out (printed by the CLI, written to the model card)."""
    sessions: int = 0
    examples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    longest: int = 0
    masked_turns: int = 0
    """Assistant turns kept as context only (their provenance is not in --loss-on)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(recording, why it was left out) for sessions the selection refused or that failed to load."""
    sources: list[str] = field(default_factory=list)
    """The recordings (a JSONL's conversations as `file#N`) used."""

    def lines(self, verbose: bool = False) -> list[str]:
        out = [f"training on {self.sessions} sessions -> {self.examples} examples, {self.tokens} tokens, "
               f"{self.trained_tokens} trained (longest example {self.longest} tokens)"
               + (f"; {self.masked_turns} turns are context only (not in --loss-on)" if self.masked_turns
                  else "")]
        if self.skipped:
            reasons = Counter(why for _, why in self.skipped)
            out.append(f"skipped {len(self.skipped)} sessions: " +
                       "; ".join(f"{n} {why}" for why, n in reasons.most_common()))
            if verbose:
                out += [f"  skipped {path}: {why}" for path, why in self.skipped]
            else:
                out.append("  (-v lists them)")
        return out

    def to_dict(self) -> dict:
        return {"sessions": self.sessions, "examples": self.examples, "tokens": self.tokens,
                "trained_tokens": self.trained_tokens, "longest": self.longest,
                "masked_turns": self.masked_turns,
                "skipped": len(self.skipped),
                "skipped_reasons": dict(Counter(why for _, why in self.skipped))}


def load_sessions(paths: list[str | Path], selection: Selection) -> tuple[list[dict], list[tuple[str, str]]]:
    """(trajectories to train on, [(path, why skipped)]); each trajectory carries its `origin`."""
    try:
        kept, skipped = load_conversations(list(paths), selection)
    except RecordingError as exc:
        raise TrainDataError(str(exc)) from exc
    seen: set[str] = set()
    unique = []
    for traj in kept:  # the same run named twice (a folder and a run inside it) trains once
        key = traj.get("source_file", "")
        if not key.endswith(".jsonl") and str(Path(key).resolve()) in seen:
            skipped.append((key, "named twice"))
            continue
        seen.add(str(Path(key).resolve()))
        unique.append(traj)
    kept = unique
    line_of: Counter = Counter()
    for traj in kept:
        origin = traj.get("source_file", "?")
        if origin.endswith(".jsonl"):  # one conversation per line: name which
            line_of[origin] += 1
            origin = f"{origin}#{line_of[origin]}"
        traj["origin"] = origin
    return kept, skipped


def turn_sources(traj: dict) -> list[str] | None:
    """The provenance of each assistant message of a trajectory, in order (None: not recorded).

    A recording's `turns` give it; an exported JSONL line may carry `sources`. A recording whose turns
    do not line up with its assistant messages is an error naming it."""
    answers = sum(1 for m in traj.get("messages", []) if m.get("role") == "assistant")
    if traj.get("turns") is not None:
        sources = [str(t.get("source", "?")) for t in traj["turns"]]
    elif isinstance(traj.get("sources"), list):
        sources = [str(s) for s in traj["sources"]]
    else:
        return None
    if len(sources) != answers:
        raise TrainDataError(f"{traj.get('origin') or traj.get('source_file', '?')}: {len(sources)} turns "
                             f"recorded for {answers} assistant messages; cannot tell which carry loss")
    return sources


def trained_turns(traj: dict, loss_on: list[str] | set[str] | None) -> list[bool] | None:
    """Which assistant turns carry loss (None: all), by provenance."""
    if loss_on is None:
        return None
    sources = turn_sources(traj)
    if sources is None:
        return None
    return [s in set(loss_on) for s in sources]


def examples_of(tokenizer, messages: list[dict], budget: int, max_length: int,
                origin: str = "?", trained: list[bool] | None = None) -> list[TrainingExample]:
    """The training examples of one conversation, exactly as rendered for serving, checked for length."""
    try:
        examples = render_training_examples(tokenizer, messages, budget, trained)
    except RenderError as exc:
        raise TrainDataError(f"{origin}: cannot train on this session: {exc}") from exc
    for ex in examples:
        if len(ex.input_ids) > max_length:
            # Each trained turn's serve prompt is a prefix of the example (renderer contract), so the
            # turn that ends past max_length cannot be shortened without changing what it was served.
            last = max(i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX) + 1
            raise TrainDataError(
                f"{origin}: an example of {len(ex.input_ids)} tokens (a trained turn ends at token {last}) is "
                f"longer than --max-length {max_length}; raise --max-length, or lower --budget "
                f"({budget}) both here and when serving")
    return examples


def build_examples(tokenizer, trajectories: list[dict], budget: int, max_length: int,
                   skipped: list[tuple[str, str]] | None = None,
                   loss_on: list[str] | None = None) -> tuple[list[dict], DataReport]:
    """Every kept session's examples as `{"input_ids", "labels"}` rows, and the report.

    `loss_on`: the provenances whose turns carry loss (None: every turn). A session none of whose turns
    carries loss is skipped (and reported), not an error."""
    rows: list[dict] = []
    report = DataReport(skipped=list(skipped or []))
    for traj in trajectories:
        origin = traj.get("origin") or traj.get("source_file", "?")
        trained = trained_turns(traj, loss_on)
        if trained:
            if not any(trained):
                report.skipped.append((origin, "no turn from --loss-on"))
                continue
            report.masked_turns += trained.count(False)
        for ex in examples_of(tokenizer, traj["messages"], budget, max_length, origin, trained):
            rows.append({"input_ids": list(ex.input_ids), "labels": list(ex.labels)})
            report.tokens += len(ex.input_ids)
            report.trained_tokens += sum(1 for label in ex.labels if label != IGNORE_INDEX)
            report.longest = max(report.longest, len(ex.input_ids))
        report.sessions += 1
        report.sources.append(origin)
    report.examples = len(rows)
    if not rows:
        raise TrainDataError("no session to train on" + (
            f": all {len(report.skipped)} were skipped (" + "; ".join(
                f"{n} {why}" for why, n in Counter(w for _, w in report.skipped).most_common()) +
            "); --all keeps unclean sessions, --split heldout or --include-heldout keeps held-out ones"
            if report.skipped else ""))
    return rows, report


def pad_id_of(tokenizer) -> int:
    """The id written on padding (masked out of attention and loss, so any valid id does)."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if tid is not None:
            return tid
    return 0


class PadCollator:
    """Right-pads a batch: input_ids with `pad_id`, attention_mask 0 and labels -100 on the padding.

    Right padding keeps each sequence's positions 0..n-1, as at serve time (one unpadded sequence).
    `pad_to_multiple_of` rounds the batch length up (8 suits tensor cores on CUDA).
    """

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        if self.multiple:
            longest = -(-longest // self.multiple) * self.multiple
        ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(r["labels"], dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
