"""The `replay` policy: the assistant turns of a recorded trajectory, in order.

Replaying re-executes the recorded commands in a fresh sandbox (the recorded outputs are not
trusted); "branch here" is a replay of the first N turns followed by another policy or the operator.
"""
from __future__ import annotations

from pathlib import Path

from teletype.engine.policy.base import Message, PolicyError, Proposal, TokenCallback
from teletype.engine.record.recorder import load_run


class ReplayPolicy:
    def __init__(self, recording: str | Path | dict, limit: int | None = None):
        traj = recording if isinstance(recording, dict) else load_run(recording)
        self.commands = [m["content"] for m in traj["messages"] if m["role"] == "assistant"]
        if limit is not None:
            self.commands = self.commands[:limit]
        origin = traj.get("scenario") or (Path(recording).name if not isinstance(recording, dict) else "?")
        self.name = f"replay:{origin}"
        self.scenario_name = traj.get("scenario")

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        done = sum(1 for m in messages if m["role"] == "assistant")
        if done >= len(self.commands):
            raise PolicyError(f"the recording has {len(self.commands)} commands and all were replayed")
        command = self.commands[done]
        if on_token is not None:
            on_token(command)
        return Proposal(command=command, raw=command, source="replay")

    def close(self) -> None:
        pass
