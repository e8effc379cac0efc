"""Recordings to training data: one JSONL file, `{"messages": [...], "sources": [...]}` a line.

`sources` gives each assistant message's provenance (model, edited, operator, scripted, replay,
detour), so `teletype train --loss-on` can choose the turns that carry loss from an export too.

By default only verified, cleanly ended sessions are kept (success, or correct_panic): a
demonstration that ended wrong teaches the wrong thing. Held-out sessions stay out unless asked for
by name (`--split heldout` or `--include-heldout`), so that data exported for training never holds
what `teletype eval heldout` measures. train/ uses the same selection and the same flags.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from teletype.engine.record.recorder import RecordingError, load_run


@dataclass
class Selection:
    include_unclean: bool = False
    """Keep sessions that did not end clean (or never ended)."""
    sources: set[str] | None = None
    """Keep only sessions whose every assistant turn has one of these provenances."""
    archetypes: set[str] | None = None
    splits: set[str] | None = None
    exclude_splits: set[str] = field(default_factory=set)

    def why_not(self, traj: dict) -> str | None:
        outcome = traj.get("outcome") or {}
        if not self.include_unclean and not outcome.get("clean"):
            return f"not clean ({outcome.get('outcome', 'never finished')})"
        if self.sources is not None:
            bad = {t.get("source") for t in traj.get("turns", [])} - self.sources
            if bad:
                return f"turns from {', '.join(sorted(map(str, bad)))}"
        if self.archetypes is not None and traj.get("archetype") not in self.archetypes:
            return f"archetype {traj.get('archetype')}"
        split = traj.get("split")
        if self.splits is not None and split not in self.splits:
            return f"split {split}"
        if split in self.exclude_splits:
            return f"split {split}"
        return None


def make_selection(include_unclean: bool = False, sources: set[str] | None = None,
                   archetypes: set[str] | None = None, splits: set[str] | None = None,
                   include_heldout: bool = False) -> Selection:
    """The session filter of `teletype export` (and `teletype train`): held-out splits stay out unless
    `splits` names them or `include_heldout`."""
    named = set(splits or ())
    return Selection(include_unclean=include_unclean, sources=set(sources) if sources else None,
                     archetypes=set(archetypes) if archetypes else None, splits=named or None,
                     exclude_splits=set() if include_heldout or "heldout" in named else {"heldout"})


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories and trajectory files under the given paths (a JSONL export is kept as is)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif (p / "trajectory.json").exists() or (p / "events.jsonl").exists():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted({q.parent for q in p.rglob("events.jsonl")} |
                                {q.parent for q in p.rglob("trajectory.json")}))
        else:
            raise RecordingError(f"{p}: no such run directory or file")
    return found


def load_conversations(paths: list[str | Path], selection: Selection = Selection()
                       ) -> tuple[list[dict], list[tuple[str, str]]]:
    """(kept trajectories, [(path, reason skipped)]). An exported JSONL contributes its lines."""
    kept: list[dict] = []
    skipped: list[tuple[str, str]] = []
    for path in find_runs(paths):
        if path.is_file() and path.suffix == ".jsonl" and path.name != "events.jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    msgs = row["messages"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise RecordingError(f"{path}:{n}: expected a JSON object with \"messages\"") from None
                kept.append({"messages": msgs, "source_file": str(path),
                             **({"sources": row["sources"]} if isinstance(row.get("sources"), list) else {})})
            continue
        try:
            traj = load_run(path)
        except RecordingError as exc:
            skipped.append((str(path), str(exc)))
            continue
        reason = selection.why_not(traj)
        if reason:
            skipped.append((str(path), reason))
        else:
            traj["source_file"] = str(path)
            kept.append(traj)
    return kept, skipped


def export_jsonl(paths: list[str | Path], out: str | Path, selection: Selection = Selection()
                 ) -> tuple[int, list[tuple[str, str]]]:
    kept, skipped = load_conversations(paths, selection)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for traj in kept:
            line = {"messages": traj["messages"]}
            if traj.get("turns") is not None:  # each assistant turn's provenance (train's --loss-on)
                line["sources"] = [t.get("source") for t in traj["turns"]]
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(kept), skipped
