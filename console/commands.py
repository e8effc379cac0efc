"""Command palette entries: the bundled scenarios (pick one to start it) and the console's actions."""
from __future__ import annotations

import asyncio
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .driver import scenario_names

_CACHE: list[tuple[str, str]] | None = None


async def _scenarios() -> list[tuple[str, str]]:
    global _CACHE
    if _CACHE is None:
        _CACHE = await asyncio.to_thread(scenario_names)  # reads ~dozens of TOML files
    return _CACHE


class ScenarioCommands(Provider):
    """`scenario: archetype/name` for every bundled scenario; choosing one starts it."""

    def _target(self):
        from .live import LiveScreen

        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, LiveScreen):
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
