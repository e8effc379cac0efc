"""What a teletype would print: terminal output with escape sequences removed and carriage returns
and backspaces resolved. This is the text the model reads (DESIGN.md, "Conversation")."""
from __future__ import annotations

import re

# CSI, OSC (BEL or ST terminated), DCS/SOS/PM/APC strings, charset designations, other 2-byte escapes.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|$)"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\|$)"
    r"|\x1b[()*+\-./][ -~]"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b$"
)
# Control characters other than tab, newline, carriage return and backspace.
_CONTROLS = re.compile(r"[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]")


def strip_escapes(text: str) -> str:
    return _ESCAPES.sub("", text)


def _resolve_line(line: str) -> str:
    """Apply carriage returns and backspaces within one line, as a printing terminal overstrikes."""
    if "\r" not in line and "\b" not in line:
        return line
    buf: list[str] = []
    col = 0
    for ch in line:
        if ch == "\r":
            col = 0
        elif ch == "\b":
            col = max(0, col - 1)
        else:
            if col < len(buf):
                buf[col] = ch
            else:
                buf.append(ch)
            col += 1
    return "".join(buf)


def printout(text: str) -> str:
    """Render raw terminal output (already decoded) into plain text lines."""
    text = strip_escapes(text)
    text = _CONTROLS.sub("", text)
    return "\n".join(_resolve_line(line) for line in text.split("\n"))


def elide_middle(text: str, limit: int, head: int | None = None, already: int = 0) -> str:
    """Keep at most `limit` characters: the start and the (larger) end, with a line saying how much went.

    `already` counts characters that were dropped from the middle before (raw bytes never kept).
    """
    if len(text) <= limit and not already:
        return text
    head = min(limit // 4 if head is None else head, len(text))
    tail = max(0, min(limit - head, len(text) - head))
    gone = len(text) - head - tail + already
    return f"{text[:head]}\n[teletype: {gone} characters elided]\n{text[len(text) - tail:]}"
