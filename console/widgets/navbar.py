"""The one-line bar naming the screens and the key that opens each."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

# (key, screen name, label): the order of the bar and of the app's bindings.
SCREENS: list[tuple[str, str, str]] = [
    ("1", "dashboard", "Dashboard"),
    ("2", "attention", "Attention"),
    ("3", "inventory", "Inventory"),
    ("4", "orders", "Orders"),
    ("5", "audit", "Audit"),
    ("6", "alerts", "Alerts"),
    ("7", "webhooks", "Webhooks"),
    ("8", "outbox", "Outbox"),
]


class NavBar(Static):
    """Shows every screen with its key; the current one highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(classes="navbar")
        self.current = current

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, name, label in SCREENS:
            style = "reverse bold" if name == self.current else ""
            text.append(f" {key}", style="bold")
            text.append(f" {label} ", style=style)
        return text
