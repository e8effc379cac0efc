"""Errors every layer of engine raises, defined where nothing else needs importing.

UsageError: a request the library cannot carry out as asked (a missing option, an unknown model, two
scenarios with one name): its message is complete, says what was expected and starts with the
command's name. SandboxError: a sandbox could not be created or used (engine.sandbox; staging raises
it too). teletype.cli prints either and exits with status 2; library code never exits the process
itself."""
from __future__ import annotations


class UsageError(ValueError):
    """A request that cannot be carried out as asked; the message is for the user as it is."""


class SandboxError(RuntimeError):
    """A sandbox could not be created or used; the message says what to install or use instead."""


__all__ = ["SandboxError", "UsageError"]
