"""The `scripted` policy: the scenario's reference solution, one command per step."""
from __future__ import annotations

from ..scenario import Scenario
from .base import Message, PolicyError, Proposal, TokenCallback


class ScriptedPolicy:
    def __init__(self, scenario: Scenario | None = None, commands: list[str] | None = None):
        if commands is None:
            if scenario is None:
                raise PolicyError("the scripted policy needs a scenario (its [solution]) or commands")
            commands = list(scenario.solution.commands)
        self.commands = list(commands)
        self.name = "scripted"
        self._next = 0

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        # The position follows the conversation, so a restarted or branched session lines up.
        done = sum(1 for m in messages if m["role"] == "assistant")
        if done >= len(self.commands):
            raise PolicyError(f"the script has {len(self.commands)} commands and all were typed")
        command = self.commands[done]
        if on_token is not None:
            on_token(command)
        return Proposal(command=command, raw=command, source="scripted")

    def close(self) -> None:
        pass
