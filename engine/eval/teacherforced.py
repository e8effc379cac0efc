"""The replay eval: teacher-forced scoring of a model on recorded sessions, with no sandbox.

For every assistant turn of every recording, the model sees the recorded conversation up to that turn,
rendered exactly as the hf policy serves it (teletype.engine.policy.render: the same template, the same sliding
window), and is scored on the recorded answer: the command (or exit/panic) and its end-of-turn token.

- **exact**: greedy decoding on the recorded prefix would reproduce the recorded answer and then stop.
  Under teacher forcing that is: at every answer position the argmax is the recorded token (and the
  answer fits in `max_new_tokens`, or the policy would have cut it). One forward pass per rendered
  example scores all its turns; the hf policy's greedy decoding is the same argmax, so the two agree
  except where two logits tie to the last bit in float arithmetic.
- **loss**: the mean negative log-likelihood of the answer's tokens (nats per token), the validation
  loss of `teletype train`'s objective.

Reported over all turns, per archetype, per step class (`first` move, `middle`, `terminal`: the final
exit or panic) and per provenance. Turns of a provenance outside `score_on` (by default the detours of
`--detours` recordings) stay in the context and are not scored, as they carry no loss in training.
It is the sweep's validation metric, and it weighs how surely a model ends a session (`terminal`).
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from teletype.engine.policy.render import DEFAULT_BUDGET, RenderError, end_of_turn_ids, render_training_examples
from teletype.engine.record.export import Selection, load_conversations
from teletype.engine.record.recorder import RecordingError

SCORED = ("model", "edited", "operator", "scripted", "replay")
"""Provenances scored by default: all but `detour`."""


class TeacherForcedError(ValueError):
    """The recordings or the model cannot be scored as asked (the message names which)."""


@dataclass
class Tally:
    turns: int = 0
    exact: int = 0
    tokens: int = 0
    nll: float = 0.0

    def add(self, exact: bool, tokens: int, nll: float) -> None:
        self.turns += 1
        self.exact += int(exact)
        self.tokens += tokens
        self.nll += nll

    def row(self) -> dict:
        return {"turns": self.turns, "exact": round(self.exact / self.turns, 4) if self.turns else None,
                "loss": round(self.nll / self.tokens, 4) if self.tokens else None}


@dataclass
class Score:
    label: str
    sessions: int = 0
    skipped: list = field(default_factory=list)
    all: Tally = field(default_factory=Tally)
    session_exact: int = 0
    by_archetype: dict = field(default_factory=lambda: defaultdict(Tally))
    by_step: dict = field(default_factory=lambda: defaultdict(Tally))
    by_source: dict = field(default_factory=lambda: defaultdict(Tally))
    seconds: float = 0.0
    turns: list = field(default_factory=list)
    """One row per scored turn: recording, step, class, source, exact, loss, recorded text and, where it
    missed, the argmax under teacher forcing."""

    def to_dict(self) -> dict:
        return {"schema": "teletype.teacher_forced/1", "label": self.label, "sessions": self.sessions,
                "skipped": len(self.skipped), "seconds": round(self.seconds, 1), **self.all.row(),
                "session_exact": round(self.session_exact / self.sessions, 4) if self.sessions else None,
                "by_step": {k: v.row() for k, v in sorted(self.by_step.items(), key=lambda kv: _ORDER[kv[0]])},
                "by_archetype": {k: v.row() for k, v in sorted(self.by_archetype.items())},
                "by_source": {k: v.row() for k, v in sorted(self.by_source.items())},
                "per_turn": self.turns}


_ORDER = {"first": 0, "middle": 1, "terminal": 2}


def step_class(step: int, answers: int, command: str) -> str:
    """first (step 1), terminal (the last turn when it is exit or panic), else middle."""
    if step == answers and command.strip().split(" ", 1)[0] in ("exit", "panic"):
        return "terminal"
    return "first" if step == 1 else "middle"


def load_recordings(paths: list[str | Path]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Clean recordings (the reference behaviour to score against) and [(path, why skipped)]."""
    try:
        kept, skipped = load_conversations(list(paths), Selection())
    except RecordingError as exc:
        raise TeacherForcedError(str(exc)) from exc
    if not kept:
        raise TeacherForcedError(f"no clean recording to score in {' '.join(map(str, paths))}" + (
            f" ({len(skipped)} skipped: {skipped[0][1]}, ...)" if skipped else ""))
    return kept, skipped


def _sources(traj: dict, answers: int) -> list[str]:
    if traj.get("turns") is not None and len(traj["turns"]) == answers:
        return [str(t.get("source", "?")) for t in traj["turns"]]
    if isinstance(traj.get("sources"), list) and len(traj["sources"]) == answers:
        return [str(s) for s in traj["sources"]]
    return ["?"] * answers


def score(model, tokenizer, recordings: list[dict], *, label: str = "model", budget: int = DEFAULT_BUDGET,
          max_new_tokens: int = 256, score_on=SCORED, skipped=None, progress=None) -> Score:
    """Teacher-forced exact match and loss of `model` on every scored turn of `recordings`."""
    import torch

    result = Score(label=label, skipped=list(skipped or []))
    device = next(model.parameters()).device
    stops = set(end_of_turn_ids(tokenizer))
    t0 = time.monotonic()
    for n, traj in enumerate(recordings, 1):
        origin = traj.get("source_file", "?")
        messages = traj["messages"]
        answers = [m["content"] for m in messages if m.get("role") == "assistant"]
        sources = _sources(traj, len(answers))
        trained = [s in score_on or s == "?" for s in sources]
        if not any(trained):
            result.skipped.append((origin, "no turn to score"))
            continue
        try:
            examples = render_training_examples(tokenizer, messages, budget, trained)
        except RenderError as exc:
            result.skipped.append((origin, str(exc)))
            continue
        all_exact = True
        for ex in examples:
            ids = torch.tensor([ex.input_ids], device=device)
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            for step, start, end in ex.spans:
                target = torch.tensor(ex.input_ids[start:end], device=device)
                pred = logits[start - 1:end - 1].argmax(-1)
                nll = float(-logp[start - 1:end - 1].gather(1, target[:, None]).sum())
                # What greedy decoding types: the answer up to its first end-of-turn token, which stops it
                # (the template's text after that token is trained but never generated).
                cut = next((i for i, t in enumerate(target.tolist()) if t in stops), len(target) - 1)
                exact = bool((pred[:cut + 1] == target[:cut + 1]).all()) and cut < max_new_tokens
                all_exact &= exact
                cls = step_class(step, len(answers), answers[step - 1])
                k = end - start
                for tally in (result.all, result.by_archetype[traj.get("archetype", "?")],
                              result.by_step[cls], result.by_source[sources[step - 1]]):
                    tally.add(exact, k, nll)
                row = {"recording": origin, "archetype": traj.get("archetype"), "step": step, "class": cls,
                       "source": sources[step - 1], "exact": exact, "loss": round(nll / k, 4),
                       "recorded": answers[step - 1]}
                if not exact:
                    row["argmax"] = tokenizer.decode(pred[:cut + 1].tolist(), skip_special_tokens=False)
                result.turns.append(row)
        result.sessions += 1
        result.session_exact += int(all_exact)
        if progress:
            progress(n, len(recordings))
    result.seconds = time.monotonic() - t0
    return result


def markdown(scores: list[Score]) -> str:
    """Side by side: overall, per step class, per archetype (exact match, then loss)."""
    def cell(t: dict) -> str:
        return "-" if not t or t.get("exact") is None else f"{t['exact']:.2f} / {t['loss']:.3f}"

    rows = [s.to_dict() for s in scores]
    head = "| | " + " | ".join(r["label"] for r in rows) + " |\n|---|" + "---|" * len(rows) + "\n"
    lines = [f"| all turns (n={rows[0]['turns']}) | " + " | ".join(cell(r) for r in rows) + " |",
             "| whole session exact | " + " | ".join(f"{r['session_exact']:.2f}" for r in rows) + " |"]
    for key in ("by_step", "by_archetype", "by_source"):
        names = sorted({k for r in rows for k in r[key]}, key=lambda k: (_ORDER.get(k, 9), k))
        for k in names:
            n = max((r[key].get(k) or {}).get("turns", 0) for r in rows)
            lines.append(f"| {key[3:]}: {k} (n={n}) | " + " | ".join(cell(r[key].get(k)) for r in rows) + " |")
    return ("Teacher-forced on recorded sessions: greedy exact match of each answer with its end of turn "
            "/ loss (nats per answer token).\n\n" + head + "\n".join(lines) + "\n")


def write_report(scores: list[Score], prefix: Path) -> list[Path]:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md, js = prefix.with_suffix(".md"), prefix.with_suffix(".json")
    md.write_text(markdown(scores), encoding="utf-8")
    js.write_text(json.dumps([s.to_dict() for s in scores], indent=1, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    return [md, js]


def load_model(base: str, adapter: str | None, dtype=None, device: str | None = None):
    """(tokenizer, model) as the hf policy loads them (an adapter merged in)."""
    from teletype.engine.policy.base import PolicyError
    from teletype.engine.policy.hf import HFPolicy

    try:
        policy = HFPolicy(base=base, adapter=adapter, dtype=dtype, device=device, fast_decode=False)
    except PolicyError as exc:
        raise TeacherForcedError(str(exc)) from exc
    return policy.tokenizer, policy.model

