"""The webhook log (newest first, filtered by source) with each event's raw body and
outcome; replaying one is confirmed and queued for processing again."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.messages import RowsLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services.webhooks import recent_webhooks, replay_webhook

BODY_SHOWN = 4000  # characters of a raw body shown


class WebhooksScreen(ConsoleScreen):
    NAME = "webhooks"
    AUTO_FOCUS = "#webhooks-table"
    BINDINGS = [
        Binding("p", "replay", "Replay", id="webhooks.replay"),
        Binding("slash", "focus_filter", "Filter", id="webhooks.filter"),
    ]
    PALETTE = [
        ("Replay the selected webhook", "replay", "asks for confirmation"),
        ("Filter webhooks by source", "focus_filter", "stripe, kinguin, …"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.details: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(placeholder="source (empty: all), then Enter", id="webhook-source")
        yield DataTable(id="webhooks-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="webhook-body-box"):
            yield Static("", id="webhook-body", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#webhooks-table", DataTable).add_columns(
            "#", "Received", "Source", "Type", "Auth", "Outcome"
        )
        self.query_one("#webhook-body-box").border_title = "Raw body and outcome"

    def action_focus_filter(self) -> None:
        self.query_one("#webhook-source", Input).focus()

    @on(Input.Submitted, "#webhook-source")
    def load(self) -> None:
        self.fetch(self.query_one("#webhook-source", Input).value.strip() or None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, source: str | None) -> None:
        with session_scope(write=False) as session:
            rows = []
            for w in recent_webhooks(session=session, source=source, limit=200):
                body = w.raw_body[:BODY_SHOWN].decode("utf-8", errors="replace")
                detail = f"outcome: {w.outcome or '(not processed)'}\n\n{body}"
                outcome = w.outcome or ("pending" if w.processed_at is None else "")
                rows.append(
                    (
                        w.id,
                        when(w.received_at),
                        w.source,
                        w.event_type,
                        "yes" if w.authenticated else "NO",
                        short(outcome, 30),
                        detail,
                    )
                )
        self.post_message(RowsLoaded(rows))

    @on(RowsLoaded)
    def show_rows(self, message: RowsLoaded) -> None:
        table = self.query_one("#webhooks-table", DataTable)
        table.clear()
        self.details = {}
        for webhook_id, *cells, detail in message.rows:
            self.details[str(webhook_id)] = detail
            table.add_row(str(webhook_id), *cells, key=str(webhook_id))
        self.sub_title = f"{len(message.rows)} webhooks"
        self._show_body()

    @on(DataTable.RowHighlighted, "#webhooks-table")
    def _show_body(self) -> None:
        key = self.selected_key(self.query_one("#webhooks-table", DataTable))
        self.query_one("#webhook-body", Static).update(self.details.get(key or "", ""))

    def action_replay(self) -> None:
        key = self.selected_key(self.query_one("#webhooks-table", DataTable))
        if key is None:
            self.notify("No webhook selected.", severity="warning")
            return
        webhook_id = int(key)

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Replay", lambda: self._replay(webhook_id))

        self.app.push_screen(
            ConfirmScreen(
                f"Replay webhook #{webhook_id}?",
                "It is processed again; its effects are idempotent.",
                confirm_label="Replay",
            ),
            confirmed,
        )

    def _replay(self, webhook_id: int) -> str:
        replay_webhook(webhook_id=webhook_id)
        return f"webhook #{webhook_id} queued for processing again"
