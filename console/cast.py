"""A recording, read back for the replay screen: the terminal at each step, checks, turns, outcome.

Frame k is the terminal after k turns: the cast's output up to the marker of step k+1 (frame 0 is
the login, the last frame the whole cast). A screen is rebuilt by feeding pyte the "o" events (and
"r" resizes) up to that point; a step that flooded is jump-cut the way the live pane does, so no
frame costs more than a bounded amount of emulation. Pure data: no Textual, safe in a worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from teletype.console.vt import JUMP_AT, Feeder, TermScreen
from teletype.engine.record.recorder import Cast, load_run, read_cast, read_events


@dataclass
class Recording:
    path: Path
    trajectory: dict
    width: int = 80
    height: int = 24
    events: list = field(default_factory=list)
    """The cast's events after the header: [time, kind, data]."""
    bounds: list[int] = field(default_factory=list)
    """bounds[k]: index into events where frame k ends (exclusive)."""
    checks: dict[int, dict] = field(default_factory=dict)
    """Checker report recorded after step n (0: at start)."""
    source: str | None = None
    """The scenario file the session was started from (events.jsonl), for branching."""

    @property
    def scenario_spec(self) -> str | None:
        if self.source and Path(self.source).is_file():
            return self.source
        return self.trajectory.get("scenario")

    @property
    def turns(self) -> list[dict]:
        return self.trajectory.get("turns", [])

    @property
    def frames(self) -> int:
        return len(self.bounds)

    def check_at(self, frame: int) -> dict | None:
        known = [s for s in self.checks if s <= frame]
        return self.checks[max(known)] if known else None

    def build(self, frame: int) -> TermScreen:
        """The terminal as it was after `frame` turns (a fresh screen; safe in a worker thread)."""
        feeder = Feeder(self.width, self.height)
        end = self.bounds[max(0, min(frame, len(self.bounds) - 1))] if self.bounds else len(self.events)
        pending: list[str] = []
        size = 0
        for _t, kind, data in self.events[:end]:
            if kind == "o":
                pending.append(data)
                size += len(data)
                if size > JUMP_AT:
                    feeder.add("".join(pending))
                    pending, size = [], 0
            elif kind == "r" or kind == "m":
                if pending:
                    feeder.add("".join(pending))
                    pending, size = [], 0
                feeder.feed()
                if kind == "r":
                    cols, _, rows = str(data).partition("x")
                    if cols.isdigit() and rows.isdigit():
                        feeder.screen.resize(int(rows), int(cols))
        if pending:
            feeder.add("".join(pending))
        feeder.feed()
        return feeder.screen


def load_recording(path: str | Path) -> Recording:
    """A run directory: trajectory (or events), session.cast, and the checks recorded per step."""
    path = Path(path)
    traj = load_run(path)
    rec = Recording(path=path, trajectory=traj)
    cast_path = path / "session.cast" if path.is_dir() else None
    cast = read_cast(cast_path) if cast_path is not None and cast_path.exists() else Cast()
    rec.width, rec.height, rec.events = cast.width, cast.height, cast.events
    starts = cast.step_starts()
    n = len(rec.turns)
    rec.bounds = [starts.get(k + 1, len(rec.events)) for k in range(n + 1)]
    events = path / "events.jsonl" if path.is_dir() else None
    if events is not None and events.exists():
        for ev in read_events(events):
            if ev.get("event") == "start":
                rec.source = ev.get("source")
            elif ev.get("event") == "check":
                rec.checks[int(ev.get("step", 0))] = {"passed": ev.get("passed"),
                                                      "results": ev.get("results", [])}
    return rec
