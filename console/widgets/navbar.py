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

# The catalogue's screens: bound on every screen and offered in the command palette; the
# bar lists them while one of them is shown (the main bar stays as it was, so the other
# screens' layout does not move).
CATALOGUE_SCREENS: list[tuple[str, str, str]] = [
    ("0", "products", "Products"),
    ("f2", "offers", "Offers"),
    ("f3", "pricing", "Pricing"),
    ("f4", "reports", "Reports"),
    ("f6", "legal", "Legal"),
    ("f7", "credit", "Credit"),
    ("f8", "promos", "Promos"),
    ("f9", "workers", "Workers"),
]
ALL_SCREENS = SCREENS + CATALOGUE_SCREENS

# Shorter labels for a narrow terminal (80 columns), so every screen stays visible.
SHORT_LABELS = {
    "dashboard": "Dash",
    "attention": "Attn",
    "inventory": "Stock",
    "webhooks": "Hooks",
    "providers": "Provs",
    "products": "Prods",
    "workers": "Work",
}


def _width(shown: list[tuple[str, str, str]], *, compact: bool) -> int:
    """Cells the bar needs for ``shown`` (compact: short labels)."""
    if compact:
        return sum(len(key) + len(SHORT_LABELS.get(name, label)) + 2 for key, name, label in shown)
    return sum(len(key) + len(label) + 3 for key, _, label in shown)


class NavBar(Static):
    """Shows every screen with its key; the current one highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(classes="navbar")
        self.current = current

    def render(self) -> Text:
        shown = SCREENS
        if any(name == self.current for _, name, _ in CATALOGUE_SCREENS):
            shown = ALL_SCREENS
            if self.size.width and self.size.width < _width(ALL_SCREENS, compact=True):
                # too narrow for both: the catalogue's own (1-9 still switch screens)
                shown = CATALOGUE_SCREENS
        compact = self.size.width and self.size.width < _width(shown, compact=False)
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, name, label in shown:
            style = "reverse bold" if name == self.current else ""
            if compact:
                text.append(key, style="bold")
                text.append(f" {SHORT_LABELS.get(name, label)}", style=style)
                text.append(" ")
                continue
            text.append(f" {key}", style="bold")
            text.append(f" {label} ", style=style)
        return text
