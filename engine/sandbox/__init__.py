"""Sandboxes, picked by name: bwrap (default), docker, local. Backends are imported lazily."""
from __future__ import annotations

import importlib

from teletype.engine.sandbox.base import ExecResult, Sandbox, SandboxError, Terminal

BACKENDS = {
    "bwrap": ("teletype.engine.sandbox.bwrap", "BwrapSandbox"),
    "docker": ("teletype.engine.sandbox.docker", "DockerSandbox"),
    "local": ("teletype.engine.sandbox.local", "LocalSandbox"),
}
DEFAULT = "bwrap"


def open_sandbox(name: str, scenario, **options) -> Sandbox:
    """Materialise `scenario` in the sandbox backend called `name`."""
    try:
        module, cls = BACKENDS[name]
    except KeyError:
        raise SandboxError(f"unknown sandbox {name!r}; expected one of {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)(scenario, **options)


__all__ = ["BACKENDS", "DEFAULT", "ExecResult", "Sandbox", "SandboxError", "Terminal", "open_sandbox"]
