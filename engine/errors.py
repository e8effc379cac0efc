"""The error the library raises for a request it cannot carry out as asked (a missing option, an
unknown model, two scenarios with one name): its message is complete, says what was expected and
starts with the command's name. engine.cli prints it and exits with status 2; library code never
exits the process itself."""
from __future__ import annotations


class UsageError(ValueError):
    """A request that cannot be carried out as asked; the message is for the user as it is."""


__all__ = ["UsageError"]
