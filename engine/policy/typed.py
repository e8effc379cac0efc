"""What gets typed: from a model's answer text to the command typed at the prompt.

The assistant's text *is* what is typed. This module does as little as it can, on purpose: the metrics
(operate_rate, `no_operate`) must see a model that answers in prose instead of commands, so prose is never
repaired into a command here. The shell rejects it (`sh: 1: Sure,: not found`) and that is the signal.

`to_command(text) -> (command, note)`; `note` is None when the text was typed as it came, else one line
for the operator and the recording (the policies put it in `Proposal.stats["note"]`). The rules, in order:

1. A trailing end-of-turn marker (`</s>`, `<|im_end|>`, `<|eot_id|>`, `<|end|>`, `<end_of_turn>`,
   `<|endoftext|>`) is removed: some servers leak it into the text. Nothing else is removed from the end.
2. Line endings become `\\n` (CRLF and lone CR); other control characters (C0 except tab and newline,
   DEL, C1) are removed with a note. At a terminal they are keystrokes, not text: Ctrl-D would log the
   shell out, Ctrl-C would cancel the line, an ESC would start an editing sequence.
3. Surrounding whitespace (blank lines, spaces) is stripped.
4. An empty answer types an empty line (command ""), with a note. It is not an error: the shell shows the
   prompt again and the turn does not count as operating.
5. An answer that is exactly one fenced code block (```` ```bash ... ``` ````, any or no language tag) and
   nothing else is unwrapped to its contents, with a note; likewise an answer that is exactly one inline
   code span (`` `ls -la` ``). This is formatting, not prose. A fence with any text before or after it is
   typed as is, fences and all: that answer is prose with a command in it, and the metrics should say so.
6. An answer longer than MAX_LINES lines or MAX_BYTES bytes (UTF-8) is cut to fit, keeping its first
   lines, with a note. The shell may then wait for the rest of a heredoc; the session's bounds handle it.
"""
from __future__ import annotations

import re

MAX_LINES = 100
MAX_BYTES = 8192

END_OF_TURN_MARKERS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FENCE = re.compile(r"\A```[ \t]*([\w+.-]*)[ \t]*\n(.*?)\n?```\Z", re.DOTALL)
_INLINE = re.compile(r"\A`([^`\n]+)`\Z")


def _strip_end_markers(text: str) -> tuple[str, bool]:
    stripped = False
    changed = True
    while changed:
        changed = False
        body = text.rstrip()
        for marker in END_OF_TURN_MARKERS:
            if body.endswith(marker):
                text = body[: -len(marker)]
                stripped = changed = True
    return text, stripped


def _cut(command: str) -> tuple[str, str | None]:
    lines = command.split("\n")
    size = len(command.encode("utf-8"))
    if len(lines) <= MAX_LINES and size <= MAX_BYTES:
        return command, None
    kept = lines[:MAX_LINES]
    out = "\n".join(kept)
    while len(out.encode("utf-8")) > MAX_BYTES:
        if len(kept) > 1:
            kept.pop()
            out = "\n".join(kept)
        else:  # one huge line: cut it at a character boundary
            out = out.encode("utf-8")[:MAX_BYTES].decode("utf-8", errors="ignore")
    return out, (f"answer cut to {len(out.splitlines()) or 1} of {len(lines)} lines, "
                 f"{len(out.encode('utf-8'))} of {size} bytes (bound: {MAX_LINES} lines, {MAX_BYTES} bytes)")


def to_command(text: str | None) -> tuple[str, str | None]:
    """The command to type for the model's answer `text`, and a note when it was not typed verbatim."""
    notes: list[str] = []
    text = text or ""
    text, _ = _strip_end_markers(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned, removed = _CONTROL.subn("", text)
    if removed:
        notes.append(f"removed {removed} control character{'s' if removed != 1 else ''}")
    command = cleaned.strip()
    if not command:
        notes.append("empty answer: an empty line is typed")
        return "", "; ".join(notes)
    fence = _FENCE.match(command)
    if fence:
        command = fence.group(2).strip()
        tag = fence.group(1)
        notes.append(f"unwrapped a fenced code block{f' ({tag})' if tag else ''}")
        if not command:
            notes.append("empty answer: an empty line is typed")
            return "", "; ".join(notes)
    else:
        inline = _INLINE.match(command)
        if inline and inline.group(1).strip():
            command = inline.group(1).strip()
            notes.append("unwrapped an inline code span")
    command, cut = _cut(command)
    if cut:
        notes.append(cut)
    return command, "; ".join(notes) if notes else None


__all__ = ["END_OF_TURN_MARKERS", "MAX_BYTES", "MAX_LINES", "to_command"]
