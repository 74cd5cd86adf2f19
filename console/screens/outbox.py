"""The e-mails the embedded default wrote to the outbox folder, newest first."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header

from console.messages import RowsLoaded
from console.screens.base import ConsoleScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from core.mail import list_outbox


class OutboxScreen(ConsoleScreen):
    NAME = "outbox"

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="outbox-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#outbox-table", DataTable).add_columns("Date", "To", "Subject", "File")

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        items = list_outbox(self.settings.outbox_dir, limit=300)
        rows = [(when(i.date), short(i.to, 30), short(i.subject, 50), i.path.name) for i in items]
        self.post_message(RowsLoaded(rows))

    @on(RowsLoaded)
    def show_rows(self, message: RowsLoaded) -> None:
        table = self.query_one("#outbox-table", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(*row)
        folder = self.settings.outbox_dir
        self.sub_title = f"{len(message.rows)} e-mails in {folder} · {self.updated()}"
