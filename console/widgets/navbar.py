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
    ("9", "providers", "Providers"),
]

# Shorter labels for a narrow terminal (80 columns), so every screen stays visible.
SHORT_LABELS = {
    "dashboard": "Dash",
    "attention": "Attn",
    "inventory": "Stock",
    "webhooks": "Hooks",
    "providers": "Provs",
}


class NavBar(Static):
    """Shows every screen with its key; the current one highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(classes="navbar")
        self.current = current

    def render(self) -> Text:
        full = sum(len(label) + 4 for _, _, label in SCREENS)
        compact = self.size.width and self.size.width < full
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, name, label in SCREENS:
            style = "reverse bold" if name == self.current else ""
            if compact:
                text.append(key, style="bold")
                text.append(f" {SHORT_LABELS.get(name, label)}", style=style)
                text.append(" ")
                continue
            text.append(f" {key}", style="bold")
            text.append(f" {label} ", style=style)
        return text
