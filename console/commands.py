"""Command palette entries: the bundled scenarios (pick one to start it) and the console's actions."""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from teletype.console.driver import scenario_names

_CACHE: list[tuple[str, str]] | None = None


async def _scenarios() -> list[tuple[str, str]]:
    global _CACHE
    if _CACHE is None:
        _CACHE = await asyncio.to_thread(scenario_names)  # reads ~dozens of TOML files
    return _CACHE


@runtime_checkable
class ScenarioTarget(Protocol):
    """A screen that starts a scenario by name (the live screen, console.live)."""

    def switch_scenario(self, spec: str) -> None: ...


class ScenarioCommands(Provider):
    """`scenario: archetype/name` for every bundled scenario; choosing one starts it."""

    def _target(self) -> ScenarioTarget | None:
        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, ScenarioTarget):
                return screen
        return None

    def _pick(self, name: str) -> None:
        screen = self._target()
        if screen is not None:
            screen.switch_scenario(name)
        else:
            self.app.notify("scenarios can be picked from the live console", severity="warning")

    async def discover(self) -> Hits:
        for name, help_text in await _scenarios():
            yield DiscoveryHit(f"scenario: {name}", partial(self._pick, name), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text in await _scenarios():
            label = f"scenario: {name}"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(self._pick, name), help=help_text)
