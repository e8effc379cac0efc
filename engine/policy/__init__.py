"""Policies, picked by name and imported lazily: scripted, replay, human, hf, openai."""
from __future__ import annotations

import importlib

from teletype.engine.policy.base import Message, Policy, PolicyError, Proposal, ProposalCancelled, Source, TokenCallback

POLICIES = {
    "scripted": ("teletype.engine.policy.scripted", "ScriptedPolicy"),
    "replay": ("teletype.engine.policy.replay", "ReplayPolicy"),
    "human": ("teletype.engine.policy.human", "HumanPolicy"),
    "hf": ("teletype.engine.policy.hf", "HFPolicy"),
    "openai": ("teletype.engine.policy.openai", "OpenAIPolicy"),
}


def policy_class(name: str):
    try:
        module, cls = POLICIES[name]
    except KeyError:
        raise PolicyError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}") from None
    return getattr(importlib.import_module(module), cls)


def make_policy(name: str, **options) -> Policy:
    """Build the policy called `name` with backend-specific keyword options."""
    return policy_class(name)(**options)


__all__ = ["POLICIES", "Message", "Policy", "PolicyError", "Proposal", "ProposalCancelled", "Source",
           "TokenCallback", "make_policy", "policy_class"]
