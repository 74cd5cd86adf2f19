"""The operator console (``keyshop console``): a Textual app over the shop's database.

This module only builds the app: screens live in :mod:`console.screens`, widgets in
:mod:`console.widgets`, the messages workers post in :mod:`console.messages`, styles in
``console.tcss``. The operator's name is handed down to every screen and recorded by
the services on every action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.worker import WorkerState

from console.commands import OperatorCommands
from console.screens.alerts import AlertsScreen
from console.screens.attention import AttentionScreen
from console.screens.audit import AuditScreen
from console.screens.base import ConsoleScreen, Dependencies
from console.screens.credit import CreditScreen
from console.screens.customer import CustomerScreen
from console.screens.dashboard import DashboardScreen
from console.screens.inventory import InventoryScreen
from console.screens.legal import LegalScreen
from console.screens.modals import ConfirmScreen
from console.screens.offers import OffersScreen
from console.screens.orders import OrdersScreen
from console.screens.outbox import OutboxScreen
from console.screens.pricing import PricingScreen
from console.screens.products import ProductsScreen
from console.screens.promos import PromosScreen
from console.screens.providers import ProvidersScreen
from console.screens.reports import ReportsScreen
from console.screens.webhooks import WebhooksScreen
from console.screens.workers import WorkersScreen
from console.widgets.navbar import ALL_SCREENS
from core import config
from core.config import Settings
from core.jobs import QueueHealth
from core.models import utcnow
from core.providers.base import ProviderClient


class KeyshopConsole(App[None]):
    CSS_PATH = "console.tcss"
    TITLE = "keyshop console"
    COMMANDS = App.COMMANDS | {OperatorCommands}
    # q is listed by ? and F1, not in the footer: at 80 columns the screen's own keys
    # come first.
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"show('{name}')", label, id=f"show.{name}", show=False)
            for key, name, label in ALL_SCREENS
        ),
        Binding("q", "quit_console", "Quit", id="app.quit", show=False),
    ]
    # Worker groups whose work a quit would cut short (an operator action, an import).
    BUSY_GROUPS = frozenset({"actions", "import"})

    def __init__(
        self,
        *,
        settings: Settings,
        operator: str,
        refresh_seconds: float = 10.0,
        deps: Dependencies | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.operator = operator
        self.deps = deps or Dependencies()
        self.sub_title = f"operator {operator}"
        common: dict[str, Any] = {"settings": settings, "operator": operator, "deps": self.deps}
        # Lists reload themselves on the same timer (each says when: "updated hh:mm:ss").
        lists = common | {"reload_every": refresh_seconds}
        self.screen_factories: dict[str, Callable[[], ConsoleScreen]] = {
            "dashboard": lambda: DashboardScreen(refresh_seconds=refresh_seconds, **common),
            "attention": lambda: AttentionScreen(reload_every=refresh_seconds, **common),
            "inventory": lambda: InventoryScreen(**lists),
            "orders": lambda: OrdersScreen(**lists),
            "audit": lambda: AuditScreen(**lists),
            "alerts": lambda: AlertsScreen(**lists),
            "webhooks": lambda: WebhooksScreen(**lists),
            "outbox": lambda: OutboxScreen(**lists),
            "providers": lambda: ProvidersScreen(refresh_seconds=refresh_seconds, **common),
            "products": lambda: ProductsScreen(**lists),
            "offers": lambda: OffersScreen(**lists),
            "pricing": lambda: PricingScreen(**common),
            "reports": lambda: ReportsScreen(**common),
            "legal": lambda: LegalScreen(**common),
            "workers": lambda: WorkersScreen(**lists),
            "credit": lambda: CreditScreen(**common),
            "promos": lambda: PromosScreen(**lists),
        }

    def on_mount(self) -> None:
        for name, factory in self.screen_factories.items():
            self.install_screen(factory(), name)
        self.push_screen("dashboard")

    def busy(self) -> bool:
        """True while an operator action or an import is still running."""
        return any(
            w.group in self.BUSY_GROUPS and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def action_quit_console(self) -> None:
        """``q``: quit; while work is running, only once the operator confirms."""
        if isinstance(self.screen, ModalScreen):
            return
        if not self.busy():
            self.exit()
            return

        def answered(sure: bool | None) -> None:
            if sure:
                self.exit()

        self.push_screen(
            ConfirmScreen(
                "Quit while work is running?",
                "An operator action or an import has not finished; quitting now stops "
                "it part-way (what was committed stays, the rest is not done).",
                confirm_label="Quit",
            ),
            answered,
        )

    def open_customer(self, order_id: int) -> None:
        """Show the customer of order ``order_id`` over the current screen (Escape: back)."""
        self.push_screen(
            CustomerScreen(
                order_id=order_id, settings=self.settings, operator=self.operator, deps=self.deps
            )
        )

    def action_show(self, name: str) -> None:
        """Switch to screen ``name`` (ignored while a dialog is open)."""
        if isinstance(self.screen, ModalScreen) or name not in self.screen_factories:
            return
        if isinstance(self.screen, CustomerScreen):
            self.pop_screen()
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)


def make_app(
    settings: Settings,
    operator: str = "operator",
    *,
    refresh_seconds: float = 10.0,
    queue_depth: Callable[[], int] | None = None,
    worker_heartbeat: Callable[[], float | None] | None = None,
    queue_health: Callable[[], QueueHealth] | None = None,
    retry_task: Callable[[str], str] | None = None,
    provider_clients: Callable[[], Mapping[str, ProviderClient]] | None = None,
    now: Callable[[], datetime] = utcnow,
    balance_timeout: float = 5.0,
) -> KeyshopConsole:
    """The console on ``settings`` (made the settings in force if they are not already),
    acting as ``operator``. ``refresh_seconds``: the dashboard's and providers' timer
    (0: none).

    What the console needs from outside core comes in here, so core stays free of the
    queue and tests can pin it down: ``queue_depth`` counts the jobs waiting in the task
    queue (the CLI passes ``tasks.jobs.queue_depth``; None: not shown),
    ``worker_heartbeat`` gives the workers' newest heartbeat in epoch seconds, None if
    none (the CLI passes ``tasks.jobs.worker_heartbeat``; not given: not shown),
    ``queue_health`` and ``retry_task`` feed the worker screen (the CLI passes
    ``tasks.jobs.queue_health`` and ``tasks.jobs.retry_failed_task``), ``provider_clients``
    gives the provider clients (default: the configured ones), ``now`` is the clock for
    the figures and ages on screen, ``balance_timeout`` bounds the wait for provider
    balances (seconds)."""
    if not operator.strip():
        raise ValueError("the operator needs a name")
    if config.get_settings() is not settings:
        config.use_settings(settings)
    deps = Dependencies(
        queue_depth=queue_depth,
        worker_heartbeat=worker_heartbeat,
        queue_health=queue_health,
        retry_task=retry_task,
        provider_clients=provider_clients or (lambda: default_provider_clients(settings)),
        now=now,
        balance_timeout=balance_timeout,
    )
    return KeyshopConsole(
        settings=settings, operator=operator.strip(), refresh_seconds=refresh_seconds, deps=deps
    )


def default_provider_clients(settings: Settings) -> Mapping[str, ProviderClient]:
    from core.services.fulfilment import provider_clients

    return provider_clients(settings)
