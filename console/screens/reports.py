"""Reports: sales of a period (the last 30 days until changed) with revenue, cost and
margin, grouped by day, week, month, product, platform, provider or source (``g``
cycles), and a chart of revenue per day in the period's main currency. The figures come
from :func:`core.services.reports.sales`, the same as ``keyshop report sales``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Sparkline, Static

from console.screens.base import ConsoleScreen
from console.widgets.formatting import money
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.errors import DomainError
from core.services.reports import GROUPS, SalesRow, daily_revenue, sales


class SalesLoaded(Message):
    def __init__(
        self, rows: list[SalesRow], daily: list[int], currency: str | None, error: str = ""
    ) -> None:
        super().__init__()
        self.rows = rows
        self.daily = daily
        self.currency = currency
        self.error = error


class ReportsScreen(ConsoleScreen):
    NAME = "reports"
    AUTO_FOCUS = "#report-table"
    BINDINGS = [
        Binding("g", "next_group", "Group by", id="reports.group"),
        Binding("slash", "focus_period", "Period", id="reports.period"),
    ]
    PALETTE = [("Group the sales report differently", "next_group", "day, week, … source")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.group = "day"

    def compose(self) -> ComposeResult:
        today = self.deps.now().date()
        yield Header()
        yield NavBar(self.NAME)
        with Horizontal(id="report-period"):
            yield Input(value=(today - timedelta(days=29)).isoformat(), id="report-from")
            yield Input(value=today.isoformat(), id="report-to")
        yield Static("", id="report-summary")
        yield Sparkline([], id="report-chart")
        yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def action_focus_period(self) -> None:
        self.query_one("#report-from", Input).focus()

    def action_next_group(self) -> None:
        self.group = GROUPS[(GROUPS.index(self.group) + 1) % len(GROUPS)]
        self.load()

    @on(Input.Submitted)
    def load(self) -> None:
        self.fetch(
            self.query_one("#report-from", Input).value,
            self.query_one("#report-to", Input).value,
            self.group,
        )

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, start_text: str, end_text: str, group: str) -> None:
        try:
            start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
        except ValueError:
            self.post_message(SalesLoaded([], [], None, "the period's days are YYYY-MM-DD"))
            return
        try:
            with session_scope(write=False) as session:
                rows = sales(session=session, start=start, end=end, by=group)
                totals: dict[str, int] = {}
                for r in rows:
                    totals[r.currency] = totals.get(r.currency, 0) + r.revenue_minor
                currency = max(totals, key=lambda c: totals[c]) if totals else None
                daily = (
                    [
                        v
                        for _, v in daily_revenue(
                            session=session, start=start, end=end, currency=currency
                        )
                    ]
                    if currency
                    else []
                )
        except DomainError as exc:
            self.post_message(SalesLoaded([], [], None, exc.message))
            return
        self.post_message(SalesLoaded(rows, daily, currency))

    @on(SalesLoaded)
    def show(self, message: SalesLoaded) -> None:
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        table.add_columns(
            self.group.capitalize(), "Cur", "Keys", "Revenue", "Cost", "Margin", "%", "No cost"
        )
        summary = self.query_one("#report-summary", Static)
        if message.error:
            summary.update(Text(message.error, style="red"))
            self.query_one("#report-chart", Sparkline).data = []
            return
        for r in message.rows:
            pct = "" if r.margin_percent is None else f"{r.margin_percent:.1f}"
            table.add_row(
                r.group,
                r.currency,
                Text(str(r.count), justify="right"),
                Text(money(r.revenue_minor, r.currency), justify="right"),
                Text(money(r.cost_minor, r.currency), justify="right"),
                Text(money(r.margin_minor, r.currency), justify="right"),
                Text(pct, justify="right"),
                Text(str(r.cost_unknown) if r.cost_unknown else "", justify="right"),
            )
        keys = sum(r.count for r in message.rows)
        chart = f"; revenue per day in {message.currency} below" if message.currency else ""
        summary.update(f"{keys} key(s) sold, grouped by {self.group}{chart}")
        self.query_one("#report-chart", Sparkline).data = message.daily
        self.sub_title = f"sales by {self.group}"
