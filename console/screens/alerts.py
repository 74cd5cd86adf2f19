"""Open alerts (low stock, provider balance or health, orders needing attention);
acknowledging one is confirmed and audited."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header

from console.messages import RowsLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import operator as ops
from core.services.alerts import open_alerts


class AlertsScreen(ConsoleScreen):
    NAME = "alerts"
    BINDINGS = [Binding("a", "acknowledge", "Acknowledge", id="alerts.acknowledge")]
    PALETTE = [("Acknowledge the selected alert", "acknowledge", "asks for confirmation")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts-table", DataTable).add_columns(
            "Since", "Severity", "Kind", "Subject", "Message"
        )

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            rows = [
                (a.id, when(a.created_at), a.severity, a.kind, a.subject, short(a.message, 60))
                for a in open_alerts(session=session)
            ]
        self.post_message(RowsLoaded(rows))

    @on(RowsLoaded)
    def show_rows(self, message: RowsLoaded) -> None:
        table = self.query_one("#alerts-table", DataTable)
        table.clear()
        for alert_id, *cells in message.rows:
            table.add_row(*cells, key=str(alert_id))
        self.sub_title = f"{len(message.rows)} open alerts"

    def action_acknowledge(self) -> None:
        table = self.query_one("#alerts-table", DataTable)
        key = self.selected_key(table)
        if key is None:
            self.notify("No alert selected.", severity="warning")
            return
        alert_id = int(key)
        subject = table.get_row(key)[3]

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Acknowledge", lambda: self._acknowledge(alert_id))

        self.app.push_screen(
            ConfirmScreen(f"Acknowledge the alert about {subject}?", confirm_label="Acknowledge"),
            confirmed,
        )

    def _acknowledge(self, alert_id: int) -> str:
        [alert] = ops.acknowledge_alerts(alert_ids=[alert_id], actor=self.actor)
        return f"alert about {alert.subject} acknowledged"
