"""The dashboard: the shop at a glance, refreshed by a timer while it is on screen.

Three workers feed it, so the slowest never holds up the others: the figures from the
database (one read transaction), the task queue's depth and the workers' heartbeat (the
callables injected into ``make_app``; "no worker seen for N s" once the newest beat is
older than ``KEYSHOP_WORKER_STALE_SECONDS``), and the providers' balances (asked live,
with a timeout)."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Footer, Header, Static

from console.messages import (
    BalancesChecked,
    DashboardLoaded,
    QueueDepthRead,
    WorkerHeartbeatRead,
)
from console.screens.base import ConsoleScreen
from console.widgets.formatting import money
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.jobs import worker_presence
from core.services.console_reads.dashboard import DashboardFigures, dashboard_figures
from core.services.console_reads.providers import BalanceRow, provider_balances_from


def _revenue(by_currency: dict[str, int]) -> str:
    if not by_currency:
        return "0.00"
    return ", ".join(money(v, c) for c, v in sorted(by_currency.items()))


class DashboardScreen(ConsoleScreen):
    NAME = "dashboard"

    def __init__(self, *, refresh_seconds: float = 10.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.refresh_seconds = refresh_seconds
        self.figures: DashboardFigures | None = None
        self.queue: QueueDepthRead | None = None
        self.heartbeat: WorkerHeartbeatRead | None = None
        self.balances: dict[str, BalanceRow] = {}

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
        self.query_one("#dash-alerts").border_title = "Alerts and providers"
        if self.refresh_seconds > 0:
            self.set_interval(self.refresh_seconds, self._tick)

    def _tick(self) -> None:
        """The timer's reload: each part whose last read has answered (a newer read
        would cancel a slow one, and its answer would be dropped)."""
        if not self.is_current:
            return
        if not self.running("load"):
            self.load_figures()
        if not self.running("queue"):
            self.read_queue()
        if not self.running("balances"):
            self.check_balances()

    def load(self) -> None:
        self.load_figures()
        self.read_queue()
        self.check_balances()

    @work(thread=True, exclusive=True, group="load")
    def load_figures(self) -> None:
        with session_scope(write=False) as session:
            figures = dashboard_figures(
                session=session, now=self.deps.now(), providers=list(self.settings.providers)
            )
        self.post_message(DashboardLoaded(figures))

    @work(thread=True, exclusive=True, group="queue")
    def read_queue(self) -> None:
        if self.deps.queue_depth is not None:
            try:
                depth = self.deps.queue_depth()
            except Exception as exc:  # noqa: BLE001 (the queue is another system: show, never raise)
                self.post_message(QueueDepthRead(None, type(exc).__name__))
            else:
                self.post_message(QueueDepthRead(depth))
        if self.deps.worker_heartbeat is not None:
            try:
                beat = self.deps.worker_heartbeat()
            except Exception as exc:  # noqa: BLE001 (as above)
                self.post_message(WorkerHeartbeatRead(None, type(exc).__name__))
            else:
                presence = worker_presence(
                    beat,
                    now=self.deps.now().timestamp(),
                    stale_after=self.settings.worker_stale_seconds,
                )
                self.post_message(WorkerHeartbeatRead(presence))

    @work(thread=True, exclusive=True, group="balances")
    def check_balances(self) -> None:
        rows = provider_balances_from(
            self.deps.provider_clients,
            providers=self.settings.providers,
            timeout=self.deps.balance_timeout,
            now=self.deps.now,
        )
        self.post_message(BalancesChecked(rows))

    @on(QueueDepthRead)
    def show_queue(self, message: QueueDepthRead) -> None:
        self.queue = message
        self._show_fulfilment()

    @on(WorkerHeartbeatRead)
    def show_heartbeat(self, message: WorkerHeartbeatRead) -> None:
        self.heartbeat = message
        self._show_fulfilment()

    @on(BalancesChecked)
    def show_balances(self, message: BalancesChecked) -> None:
        self.balances = {b.provider: b for b in message.rows}
        self._show_providers()

    def _show_fulfilment(self) -> None:
        f = self.figures
        if f is None:
            return
        if self.deps.queue_depth is None:
            queue = "not connected"
        elif self.queue is None:
            queue = "…"
        elif self.queue.depth is None:
            queue = f"[red]unreadable ({self.queue.error})[/]"
        else:
            queue = f"{self.queue.depth} waiting"
        workers = ""
        if self.deps.worker_heartbeat is not None:
            beat = self.heartbeat
            if beat is None:
                seen = "…"
            elif beat.presence is None:
                seen = f"[red]unreadable ({beat.error})[/]"
            elif beat.presence.state == "ok":
                seen = beat.presence.describe()
            else:
                seen = f"[b red]{beat.presence.describe()}[/]"
            workers = f"Workers:             {seen}\n"
        attention = f"[b red]{f.needs_attention}[/]" if f.needs_attention else "0"
        reports = f"[b red]{f.open_key_reports}[/]" if f.open_key_reports else "0"
        self.query_one("#dash-fulfilment", Static).update(
            f"Awaiting fulfilment: {f.awaiting_fulfilment}\n"
            f"Queue:               {queue}\n"
            f"{workers}"
            f"Needs attention:     {attention}  (press 2)\n"
            f"Faulty-key reports:  {reports}"
        )

    def _show_providers(self) -> None:
        f = self.figures
        if f is None:
            return
        lines = [f"[b yellow]{f.open_alerts}[/] open (press 6)" if f.open_alerts else "None open."]
        for p in f.providers:
            b = self.balances.get(p.provider)
            if b is None:
                balance = "…"
            elif b.amount_minor is None:
                balance = "[red]balance failed[/]"
            else:
                balance = money(b.amount_minor, b.currency or "?")
            health = "[b red]alert[/]" if p.problem else "[green]ok[/]"
            lines.append(f"{p.provider[:14]:<14} {health} {balance}")
        self.query_one("#dash-alerts", Static).update("\n".join(lines))

    @on(DashboardLoaded)
    def show_figures(self, message: DashboardLoaded) -> None:
        f: DashboardFigures = message.figures
        self.figures = f
        self.query_one("#dash-sales", Static).update(
            f"Last hour: {f.orders_last_hour} orders\n  {_revenue(f.revenue_last_hour)}\n"
            f"Last day:  {f.orders_last_day} orders\n  {_revenue(f.revenue_last_day)}"
        )
        self._show_fulfilment()
        if f.low_stock:
            lines = [
                f"[red]{s.available:>4}[/] / {s.threshold:<4} {s.title}" for s in f.low_stock[:6]
            ]
            if len(f.low_stock) > 6:
                lines.append(f"… and {len(f.low_stock) - 6} more (press 3)")
            stock = "\n".join(lines)
        else:
            stock = "Every product is above its threshold."
        self.query_one("#dash-stock", Static).update(stock)
        self._show_providers()
