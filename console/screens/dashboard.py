"""The dashboard: the shop at a glance, refreshed by a timer while it is on screen."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Footer, Header, Static

from console.messages import DashboardLoaded
from console.screens.base import ConsoleScreen
from console.widgets.formatting import money
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services.console_queries import DashboardFigures, dashboard_figures


def _revenue(by_currency: dict[str, int]) -> str:
    if not by_currency:
        return "0.00"
    return ", ".join(money(v, c) for c, v in sorted(by_currency.items()))


class DashboardScreen(ConsoleScreen):
    NAME = "dashboard"

    def __init__(self, *, refresh_seconds: float = 10.0, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.refresh_seconds = refresh_seconds

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        with Grid(id="dashboard-grid"):
            yield Static("loading…", id="dash-sales", classes="panel")
            yield Static("", id="dash-fulfilment", classes="panel")
            yield Static("", id="dash-stock", classes="panel")
            yield Static("", id="dash-alerts", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#dash-sales").border_title = "Sales (paid)"
        self.query_one("#dash-fulfilment").border_title = "Fulfilment"
        self.query_one("#dash-stock").border_title = "Low stock"
        self.query_one("#dash-alerts").border_title = "Alerts"
        if self.refresh_seconds > 0:
            self.set_interval(self.refresh_seconds, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.load()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            figures = dashboard_figures(session=session)
        self.post_message(DashboardLoaded(figures))

    @on(DashboardLoaded)
    def show_figures(self, message: DashboardLoaded) -> None:
        f: DashboardFigures = message.figures
        self.query_one("#dash-sales", Static).update(
            f"Last hour: {f.orders_last_hour} orders\n  {_revenue(f.revenue_last_hour)}\n"
            f"Last day:  {f.orders_last_day} orders\n  {_revenue(f.revenue_last_day)}"
        )
        attention = f"[b red]{f.needs_attention}[/]" if f.needs_attention else "0"
        self.query_one("#dash-fulfilment", Static).update(
            f"Awaiting fulfilment: {f.awaiting_fulfilment}\n"
            f"Needs attention:     {attention}  (press 2)"
        )
        if f.low_stock:
            lines = [
                f"[red]{s.available:>4}[/] / {s.threshold:<4} {s.title}" for s in f.low_stock[:8]
            ]
            if len(f.low_stock) > 8:
                lines.append(f"… and {len(f.low_stock) - 8} more (press 3)")
            stock = "\n".join(lines)
        else:
            stock = "Every product is above its threshold."
        self.query_one("#dash-stock", Static).update(stock)
        alerts = f"[b yellow]{f.open_alerts}[/] open (press 6)" if f.open_alerts else "None open."
        self.query_one("#dash-alerts", Static).update(alerts)
