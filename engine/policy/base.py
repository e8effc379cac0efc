"""The Policy seam: whatever proposes the next command from the conversation so far.

A policy sees the conversation as chat messages (DESIGN.md, "Conversation"): the first user turn is
the orientation, each assistant turn is what was typed, each later user turn is the printed output
followed by the next prompt. It returns a Proposal; the session (or the operator) decides whether it
is typed as is, edited, or replaced.

Backends, one file each, picked by name through `teletype.engine.policy.make_policy` and imported lazily
(torch is imported only when the hf policy is chosen): scripted, replay, human, hf, openai.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Message = dict  # {"role": "user" | "assistant" | "system", "content": str}
Source = Literal["model", "edited", "operator", "scripted", "replay", "detour"]
TokenCallback = Callable[[str], None]


class PolicyError(RuntimeError):
    """A policy could not propose (endpoint down, model failed to load, recording exhausted...)."""


class ProposalCancelled(Exception):
    """Raised from an `on_token` callback to stop a proposal while it is generated (the operator typed
    their own command). Policies let it through untouched, with no retry and no wrapping, and stay
    usable for the next step. Not a PolicyError: nothing failed."""


@dataclass
class Proposal:
    command: str
    """What would be typed at the prompt (one command; several lines only for heredoc/continuation)."""
    raw: str = ""
    """The policy's raw text before any handling (identical to `command` for non-model policies)."""
    source: Source = "model"
    """Provenance of the turn if it is typed unchanged."""
    stats: dict = field(default_factory=dict)
    """Per-step numbers: prompt_tokens, budget, new_tokens, prefill_s, decode_s, cached_tokens..."""


@runtime_checkable
class Policy(Protocol):
    name: str
    """Recorded as the trajectory's `model` (a model id, "scripted", "replay:<run>", "human")."""

    def propose(self, messages: list[Message], on_token: TokenCallback | None = None) -> Proposal:
        """Next command for the conversation `messages` (ends with a user turn).

        `on_token`, when given, receives the text as it is produced (the console shows it forming);
        it may raise ProposalCancelled to stop the generation.
        """

    def close(self) -> None:
        """Release models, connections, files."""
