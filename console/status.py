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


def shown_path(path: Path | str) -> str:
    """A run directory as the operator thinks of it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)


def status_line(screen) -> Text:
    session = screen.session
    text = Text()
    text.append(" teletype ", style="bold reverse")
    text.append(f" {screen.spec}", style="bold")
    model = screen.config.model_label or (getattr(session.policy, "name", None) if session and session.policy else None)
    text.append(f" · model: {model if screen.use_policy and model else 'none (the operator types)'}")
    if session is not None and session.recorder is not None:
        text.append(" · ")
        text.append("● rec ", style="bold red")
        text.append(shown_path(session.record_dir), style="bold")
    elif session is not None and screen.phase != "starting":
        text.append(" · ")
        text.append("○ not recording", style="dim")
    if session is not None and screen.record != (session.recorder is not None):
        text.append(f" (next session: {'on' if screen.record else 'off'})", style="dim")
    text.append(" · ")
    text.append(PHASES.get(screen.phase, screen.phase), style="italic")
    if screen.auto:
        text.append("  AUTO", style="bold reverse green")
    if screen.pane.takeover:
        text.append("  TAKEOVER (ctrl+] hands back)", style="bold reverse yellow")
    if screen.error and screen.phase == "failed":
        text.append(f"  {screen.error}", style="red")
    return text
