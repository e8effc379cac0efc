"""The `human` policy for headless runs: commands read from the terminal, one per step.

The conversation's newest user turn (output and prompt) is printed first, so a person at a plain
terminal sees exactly what a model would. A line ending in a backslash continues on the next line;
`<<WORD` heredocs are read until WORD. End of input types `exit`.
"""
from __future__ import annotations

import re
import sys
from typing import TextIO

from teletype.engine.policy.base import Message, Proposal, TokenCallback

_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


class HumanPolicy:
    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.name = "human"
        self._shown = 0

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        for m in messages[self._shown:]:
            if m["role"] == "user":
                self.stdout.write(m["content"])
        self._shown = len(messages) + 1
        self.stdout.flush()
        lines = [self._readline()]
        if lines[0] is None:
            command = "exit"
        else:
            m = _HEREDOC.search(lines[0])
            while lines[-1] is not None and lines[-1].endswith("\\"):
                lines.append(self._readline(prompt="> "))
            if m:
                while True:
                    line = self._readline(prompt="> ")
                    lines.append(line)
                    if line is None or line.strip() == m.group(1):
                        break
            command = "\n".join(x for x in lines if x is not None)
        return Proposal(command=command, raw=command, source="operator")

    def _readline(self, prompt: str = "") -> str | None:
        if prompt:
            self.stdout.write(prompt)
            self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\n")

    def close(self) -> None:
        pass
