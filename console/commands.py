"""The command palette provider: every screen, and the operator actions of the screen
the palette was opened from (each screen lists them in ``PALETTE``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.widgets.navbar import ALL_SCREENS

if TYPE_CHECKING:
    from console.app import KeyshopConsole


class OperatorCommands(Provider):
    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: KeyshopConsole = self.app  # type: ignore[assignment]
        commands: list[tuple[str, Callable[[], object], str]] = [
            (f"Show {label}", partial(app.action_show, name), f"key {key}")
            for key, name, label in ALL_SCREENS
        ]
        screen = self.screen
        for title, action, help_text in getattr(screen, "PALETTE", []):
            commands.append((title, partial(screen.run_action, action), help_text))
        return commands

    async def discover(self) -> Hits:
        for title, command, help_text in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, command, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)
