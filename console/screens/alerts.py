"""Alerts (low stock, provider balance or health, orders needing attention), each naming
the product or order it is about, with a detail pane. Alerts close themselves when their
cause is gone (core.services.alerts); the operator acknowledges the selected one, or
every marked one at once (space marks), after a confirmation; ``h`` shows the history
of closed alerts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import RowsLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import operator as ops
from core.services.console_reads.alerts import AlertRow, alert_rows


class AlertsScreen(ConsoleScreen):
    NAME = "alerts"
    AUTO_FOCUS = "#alerts-table"
    BINDINGS = [
        Binding("a", "acknowledge", "Acknowledge", id="alerts.acknowledge"),
        Binding("space", "mark", "Mark", id="alerts.mark"),
        Binding("h", "history", "Open/closed", id="alerts.history"),
    ]
    PALETTE = [
        ("Acknowledge the marked (or selected) alerts", "acknowledge", "asks for confirmation"),
        ("Mark the selected alert", "mark", "to acknowledge several at once"),
        ("Show open alerts or the history of closed ones", "history", "toggle"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: dict[str, AlertRow] = {}
        self.marked: set[str] = set()
        self.closed = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="alert-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts-table", DataTable).add_columns(
            " ", "Since", "Severity", "Kind", "About", "Message"
        )

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            rows = alert_rows(session=session, closed=self.closed)
        self.post_message(RowsLoaded(rows))

    @on(RowsLoaded)
    def show_rows(self, message: RowsLoaded) -> None:
        table = self.query_one("#alerts-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        self.rows = {str(a.id): a for a in message.rows}
        self.marked &= set(self.rows)
        for a in message.rows:
            table.add_row(
                "*" if str(a.id) in self.marked else " ",
                when(a.created_at),
                a.severity,
                a.kind,
                short(a.about, 40),
                short(a.message, 60),
                key=str(a.id),
            )
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        what = "closed alerts (h: open)" if self.closed else "open alerts (h: history)"
        self.sub_title = f"{len(message.rows)} {what} · {self.updated()}"
        self._show_detail()

    @on(DataTable.RowHighlighted, "#alerts-table")
    def _show_detail(self) -> None:
        key = self.selected_key(self.query_one("#alerts-table", DataTable))
        a = self.rows.get(key or "")
        detail = self.query_one("#alert-detail", Static)
        if a is None:
            detail.update("No closed alerts." if self.closed else "No open alerts.")
            return
        text = f"{a.kind} about {a.about}, since {when(a.created_at)}:\n{a.message}"
        if a.closed_at is not None:
            how = "resolved" if a.closed_by == "resolved" else f"acknowledged by {a.closed_by}"
            text += f"\n{how} {when(a.closed_at)}" + (f": {a.resolution}" if a.resolution else "")
        detail.update(Text(text))

    def action_history(self) -> None:
        self.closed = not self.closed
        self.marked.clear()
        self.load()

    def action_mark(self) -> None:
        table = self.query_one("#alerts-table", DataTable)
        key = self.selected_key(table)
        if key is None or self.closed:
            return
        self.marked ^= {key}
        table.update_cell(key, table.ordered_columns[0].key, "*" if key in self.marked else " ")

    def action_acknowledge(self) -> None:
        if self.closed:
            self.notify("These alerts are already closed.", severity="warning")
            return
        chosen = sorted(self.marked) or [
            k for k in [self.selected_key(self.query_one("#alerts-table", DataTable))] if k
        ]
        if not chosen:
            self.notify("No alert selected.", severity="warning")
            return
        ids = [int(k) for k in chosen]
        title = (
            f"Acknowledge the alert about {self.rows[chosen[0]].about}?"
            if len(ids) == 1
            else f"Acknowledge {len(ids)} marked alerts?"
        )

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Acknowledge", lambda: self._acknowledge(ids))

        self.app.push_screen(ConfirmScreen(title, confirm_label="Acknowledge"), confirmed)

    def _acknowledge(self, alert_ids: list[int]) -> str:
        done = ops.acknowledge_alerts(alert_ids=alert_ids, actor=self.actor)
        self.marked.clear()
        if len(done) == 1:
            return f"alert about {self.rows[str(done[0].id)].about} acknowledged"
        return f"{len(done)} alerts acknowledged"
