"""Seeded, reproducible scenario generators (`teletype scenarios generate`).

The generators live in `engine.generators`, one module per archetype; this module is the
entry point the CLI imports.
"""
from __future__ import annotations

from .generators import ARCHETYPES, STYLES, build, generate

__all__ = ["ARCHETYPES", "STYLES", "build", "generate"]
