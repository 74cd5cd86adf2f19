"""The operator console (``keyshop console``): a Textual app over the shop's database.

This module only builds the app: screens live in :mod:`console.screens`, widgets in
:mod:`console.widgets`, the messages workers post in :mod:`console.messages`, styles in
``console.tcss``. The operator's name is handed down to every screen and recorded by
the services on every action.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen

from console.commands import OperatorCommands
from console.screens.alerts import AlertsScreen
from console.screens.attention import AttentionScreen
from console.screens.audit import AuditScreen
from console.screens.base import ConsoleScreen
from console.screens.dashboard import DashboardScreen
from console.screens.inventory import InventoryScreen
from console.screens.orders import OrdersScreen
from console.screens.outbox import OutboxScreen
from console.screens.webhooks import WebhooksScreen
from console.widgets.navbar import SCREENS
from core import config
from core.config import Settings


class KeyshopConsole(App[None]):
    CSS_PATH = "console.tcss"
    TITLE = "keyshop console"
    COMMANDS = App.COMMANDS | {OperatorCommands}
    BINDINGS = [
        Binding(key, f"show('{name}')", label, id=f"show.{name}", show=False)
        for key, name, label in SCREENS
    ]

    def __init__(self, *, settings: Settings, operator: str, refresh_seconds: float = 10.0) -> None:
        super().__init__()
        self.settings = settings
        self.operator = operator
        self.sub_title = f"operator {operator}"
        common = {"settings": settings, "operator": operator}
        self.screen_factories: dict[str, Callable[[], ConsoleScreen]] = {
            "dashboard": lambda: DashboardScreen(refresh_seconds=refresh_seconds, **common),
            "attention": lambda: AttentionScreen(**common),
            "inventory": lambda: InventoryScreen(**common),
            "orders": lambda: OrdersScreen(**common),
            "audit": lambda: AuditScreen(**common),
            "alerts": lambda: AlertsScreen(**common),
            "webhooks": lambda: WebhooksScreen(**common),
            "outbox": lambda: OutboxScreen(**common),
        }

    def on_mount(self) -> None:
        for name, factory in self.screen_factories.items():
            self.install_screen(factory(), name)
        self.push_screen("dashboard")

    def action_show(self, name: str) -> None:
        """Switch to screen ``name`` (ignored while a dialog is open)."""
        if isinstance(self.screen, ModalScreen) or name not in self.screen_factories:
            return
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)


def make_app(
    settings: Settings, operator: str = "operator", *, refresh_seconds: float = 10.0
) -> KeyshopConsole:
    """The console on ``settings`` (made the settings in force if they are not already),
    acting as ``operator``. ``refresh_seconds``: the dashboard's timer (0: none)."""
    if not operator.strip():
        raise ValueError("the operator needs a name")
    if config.get_settings() is not settings:
        config.use_settings(settings)
    return KeyshopConsole(
        settings=settings, operator=operator.strip(), refresh_seconds=refresh_seconds
    )
