"""Recording a session into a directory (DESIGN.md, "Recording").

- events.jsonl: append-only, one JSON object per event, flushed and fsynced per step, so a session
  killed with SIGKILL leaves a readable log up to its last step; `load_run` rebuilds a trajectory
  from it when trajectory.json was never written.
- session.cast: asciicast v2 of the raw pty stream (decoded incrementally, so a character split
  across reads stays whole), with a marker ("m" event) at each step; plays in `asciinema play`.
- trajectory.json: written at the end, the conversation and each assistant turn's provenance.

This module owns the format: it writes all three (the `step N:` markers included) and reads them
back (`load_run`, `read_events`, `read_cast`) for export, training, replay and the console.
"""
from __future__ import annotations

import codecs
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = "teletype.trajectory/1"
STEP_MARKER = re.compile(r"^step (\d+):")
"""The cast marker ("m" event) written before each step: `step N: ` and the command's first line."""
CAST_STEP_BYTES = 1 << 20  # raw bytes per step kept in the cast; a flood beyond this is summarised



def default_run_dir(root: str | Path, scenario_name: str) -> Path:
    """A new recording directory under root: a time stamp and the scenario's name (-2, -3... if taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{scenario_name.replace('/', '-')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path

class Recorder:
    def __init__(self, directory: str | Path, *, rows: int = 24, cols: int = 80, title: str = ""):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._events = open(self.dir / "events.jsonl", "a", encoding="utf-8")
        self._cast = open(self.dir / "session.cast", "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._step_bytes = 0
        self._skipped = 0
        header = {"version": 2, "width": cols, "height": rows, "timestamp": int(time.time()),
                  "env": {"TERM": "xterm", "SHELL": "/bin/sh"}, "title": title}
        self._cast.write(json.dumps(header) + "\n")
        self._cast.flush()

    # -- the cast (called from the pty reader thread) ----------------------------------------------
    def _t(self) -> float:
        return round(time.monotonic() - self._t0, 6)

    def output(self, data: bytes) -> None:
        with self._lock:
            if self._cast.closed:
                return
            if self._step_bytes + len(data) > CAST_STEP_BYTES:
                keep = max(0, CAST_STEP_BYTES - self._step_bytes)
                self._skipped += len(data) - keep
                data = data[:keep]
            self._step_bytes += len(data)
            text = self._decoder.decode(data)
            if text:
                self._cast.write(json.dumps([self._t(), "o", text]) + "\n")

    def input(self, data: bytes) -> None:
        with self._lock:
            if not self._cast.closed:
                self._cast.write(json.dumps([self._t(), "i", data.decode("utf-8", "replace")]) + "\n")

    def resize(self, rows: int, cols: int) -> None:
        with self._lock:
            if not self._cast.closed:
                self._cast.write(json.dumps([self._t(), "r", f"{cols}x{rows}"]) + "\n")

    def marker(self, label: str) -> None:
        with self._lock:
            if self._cast.closed:
                return
            if self._skipped:
                note = f"\r\n[teletype: {self._skipped} bytes of output not recorded]\r\n"
                self._cast.write(json.dumps([self._t(), "o", note]) + "\n")
                self._skipped = 0
            self._step_bytes = 0
            self._cast.write(json.dumps([self._t(), "m", label]) + "\n")
            self._cast.flush()

    def step(self, n: int, command: str) -> None:
        """The marker before step n (what replay cuts frames at)."""
        self.marker(f"step {n}: {command.splitlines()[0] if command else ''}")

    # -- events ---------------------------------------------------------------------------------
    def event(self, kind: str, **data) -> None:
        record = {"t": self._t(), "wall": round(time.time(), 3), "event": kind, **data}
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._events.write(line + "\n")
            self._events.flush()
            os.fsync(self._events.fileno())
            if not self._cast.closed:
                self._cast.flush()

    def write_trajectory(self, trajectory: dict) -> Path:
        path = self.dir / "trajectory.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(trajectory, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        with self._lock:
            if not self._cast.closed:
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    self._cast.write(json.dumps([self._t(), "o", tail]) + "\n")
                self._cast.close()
            if not self._events.closed:
                self._events.close()


class RecordingError(ValueError):
    pass


def load_run(path: str | Path) -> dict:
    """A trajectory from a run directory (trajectory.json, else rebuilt from events.jsonl) or a file."""
    path = Path(path)
    if path.is_dir():
        tj = path / "trajectory.json"
        if tj.exists():
            return _load_json(tj)
        ev = path / "events.jsonl"
        if ev.exists():
            return trajectory_from_events(ev)
        raise RecordingError(f"{path}: not a teletype run directory (no trajectory.json or events.jsonl)")
    if path.name.endswith(".jsonl"):
        return trajectory_from_events(path)
    return _load_json(path)


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: cannot read trajectory: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RecordingError(f"{path}: expected a trajectory with schema {SCHEMA!r}, "
                             f"got {data.get('schema') if isinstance(data, dict) else type(data).__name__!r}")
    for key in ("messages", "turns"):
        if not isinstance(data.get(key), list):
            raise RecordingError(f"{path}: [{key}] expected a list")
    return data


def trajectory_from_events(path: Path) -> dict:
    """Rebuild what a crashed session recorded; a torn last line (killed mid-write) is skipped."""
    traj = {"schema": SCHEMA, "scenario": None, "archetype": None, "model": None,
            "messages": [], "turns": [], "outcome": None, "recovered_from": "events.jsonl"}
    for ev in read_events(path):
        kind = ev.get("event")
        if kind == "start":
            for key in ("scenario", "archetype", "model", "expect", "split", "sandbox"):
                traj[key] = ev.get(key)
        elif kind == "message":
            traj["messages"].append({"role": ev["role"], "content": ev["content"]})
        elif kind == "turn":
            traj["turns"].append(ev["turn"])
        elif kind == "end":
            traj["outcome"] = ev.get("outcome")
    return traj


def read_events(path: str | Path) -> Iterator[dict]:
    """events.jsonl's events in order; a torn line (a process killed mid-write) is skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict):
                yield ev


@dataclass
class Cast:
    """session.cast read back: the terminal's size and the events after the header."""

    width: int = 80
    height: int = 24
    events: list = field(default_factory=list)
    """[time, kind, data]: "o" output, "i" input, "r" resize ("COLSxROWS"), "m" marker."""

    def step_starts(self) -> dict[int, int]:
        """Step number -> index of its marker in `events` (the first, if a step was marked twice)."""
        starts: dict[int, int] = {}
        for i, (_, kind, data) in enumerate(self.events):
            if kind == "m":
                m = STEP_MARKER.match(str(data))
                if m:
                    starts.setdefault(int(m.group(1)), i)
        return starts


def read_cast(path: str | Path) -> Cast:
    """An asciicast v2 file; a bad header keeps the default size, torn or odd lines are skipped."""
    cast = Cast()
    with open(path, encoding="utf-8") as f:
        try:
            h = json.loads(f.readline())
            cast.width, cast.height = int(h.get("width", 80)), int(h.get("height", 24))
        except (json.JSONDecodeError, ValueError, TypeError, AttributeError):
            pass
        for line in f:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if isinstance(ev, list) and len(ev) == 3:
                cast.events.append(ev)
    return cast
