"""The one-line status bar at the top of the live screen: scenario, model, recording, state."""
from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text

PHASES = {
    "starting": "starting the sandbox",
    "proposing": "the model is proposing",
    "ready": "waiting for the operator",
    "running": "running a command",
    "ending": "finishing the session",
    "ended": "the session has ended",
    "failed": "no session",
}
SHORT_PHASES = {"ready": "waiting for you", "proposing": "proposing", "running": "running",
                "starting": "starting", "ending": "finishing", "ended": "ended"}
"""The same, for terminals under 100 columns."""


def shown_path(path: Path | str) -> str:
    """A run directory as the operator thinks of it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle elided (both ends of a name say most)."""
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def scenario_label(screen) -> str:
    """The scenario by its name (archetype/name), also when it was opened from a .toml path."""
    session = screen.session
    if session is not None and getattr(session, "scenario", None) is not None:
        return session.scenario.name
    spec = str(screen.spec)
    if spec.endswith(".toml"):
        path = Path(spec)
        return f"{path.parent.name}/{path.stem}"
    return spec


def decode_rate(stats: dict | None) -> str | None:
    """The last answer's decode rate ("18 tok/s", "25 tok/s on 2 threads" where the hf policy says how many
    threads decoded), from the hf policy's stats or an endpoint's."""
    stats = stats or {}
    new, decode = stats.get("new_tokens"), stats.get("decode_s")
    if decode is None and stats.get("latency_s") is not None:
        decode = stats["latency_s"] - (stats.get("first_token_s") or 0.0)
    if not new or not decode or decode <= 0:
        return None
    rate = new / decode
    text = f"{rate:.1f} tok/s" if rate < 10 else f"{rate:.0f} tok/s"
    threads = (stats.get("threads") or {}).get("decode") if isinstance(stats.get("threads"), dict) else None
    if isinstance(threads, int) and not isinstance(threads, bool):
        text += f" on {threads} thread" + ("s" if threads != 1 else "")  # the governor's count (engine/threads.py)
    return text


def status_line(screen) -> Text:
    """Most important first, so a narrow terminal cuts only the tail: the scenario, what is happening
    (and AUTO / TAKEOVER), then the model, then the recording. Long names are shortened in the middle."""
    session = screen.session
    width = max(screen.size.width, 40)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" teletype ", style="bold reverse")
    text.append(f" {shorten(scenario_label(screen), max(24, width // 3))}", style="bold")
    text.append(" · ")
    phases = PHASES if width >= 100 else {**PHASES, **SHORT_PHASES}
    text.append(phases.get(screen.phase, screen.phase), style="italic")
    if screen.auto:
        text.append("  AUTO", style="bold reverse green")
    if screen.pane.takeover:
        text.append("  TAKEOVER (ctrl+] hands back)", style="bold reverse yellow")
    if screen.error and screen.phase == "failed":
        text.append(f"  {screen.error}", style="red")
    model = screen.config.model_label or (getattr(session.policy, "name", None) if session and session.policy else None)
    prefix = " · model: " if width >= 100 else " · "
    if screen.use_policy and model:  # what is left before " · ● rec", but never less than 7
        model = shorten(model, max(7, min(width // 4, width - text.cell_len - len(prefix) - 9)))
    else:
        model = "none (the operator types)"
    text.append(prefix + model)
    rate = decode_rate(getattr(screen, "last_stats", None)) if screen.use_policy else None
    if rate:
        text.append(f" ({rate})", style="bold")
    if session is not None and session.recorder is not None:
        text.append(" · ")
        text.append("● rec", style="bold red")
        room = width - text.cell_len - 1
        if room >= 8:  # the run directory where it fits; "● rec" always
            text.append(" " + shorten(shown_path(session.record_dir), min(room, max(12, width // 4))),
                        style="bold")
    elif session is not None and screen.phase != "starting":
        text.append(" · ")
        text.append("○ not recording", style="dim")
    if session is not None and screen.record != (session.recorder is not None):
        text.append(f" (next session: {'on' if screen.record else 'off'})", style="dim")
    return text
