"""The webhook log (newest first, filtered by source) with each event's raw body and
outcome; replaying one is confirmed and queued for processing again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.messages import PageLoaded, RowsLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.models import utcnow
from core.services.console_reads.webhooks import WebhookRow, webhook_body, webhook_page
from core.services.webhooks import rejection_counts, replay_webhook, webhook_attempts

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

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.outcomes: dict[str, str] = {}
        self.rows: dict[str, WebhookRow] = {}
        self.pager = Pager()
        self.source: str | None = None
        self.rejections = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(placeholder="source (empty: all), then Enter", id="webhook-source")
        yield DataTable(id="webhooks-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="webhook-body-box"):
            yield Static("", id="webhook-body", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#webhooks-table", DataTable)
        # Fixed widths: the layout does not depend on when the rows arrive.
        for label, width in [
            ("#", 4),
            ("Received", 16),
            ("Source", 9),
            ("Type", 22),
            ("Auth", 4),
            ("Outcome", 30),
        ]:
            table.add_column(label, width=width)
        self.query_one("#webhook-body-box").border_title = "Raw body and outcome"

    def action_focus_filter(self) -> None:
        self.query_one("#webhook-source", Input).focus()

    @on(Input.Submitted, "#webhook-source")
    def load(self) -> None:
        self.source = self.query_one("#webhook-source", Input).value.strip() or None
        self.pager.reset()
        self.fetch(self.source, None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, source: str | None, before_id: int | None) -> None:
        with session_scope(write=False) as session:
            rows = webhook_page(session=session, source=source, before_id=before_id, limit=PAGE)
            if before_id is None:
                counts = rejection_counts(session=session, since=utcnow() - timedelta(hours=24))
                self.rejections = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        self.post_message(
            PageLoaded("webhooks-table", rows, first_page=before_id is None, more=len(rows) >= PAGE)
        )

    @on(PageLoaded)
    def show_rows(self, message: PageLoaded) -> None:
        table = self.query_one("#webhooks-table", DataTable)
        if message.first_page:
            table.clear()
            self.outcomes = {}
            self.rows = {}
        for w in message.rows:
            outcome = (
                "pending" + (f" (was: {w.outcome})" if w.outcome else "")
                if w.processed_at is None
                else w.outcome or ""
            )
            self.outcomes[str(w.id)] = outcome or "(not processed)"
            self.rows[str(w.id)] = w
            table.add_row(
                str(w.id),
                when(w.received_at),
                w.source,
                w.event_type,
                "yes" if w.authenticated else "NO",
                short(outcome, 30),
                key=str(w.id),
            )
        self.pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        more = "+" if self.pager.more else ""
        self.sub_title = (
            f"{table.row_count}{more} webhooks · rejected in 24 h: "
            f"{self.rejections or 'none'} · {self.updated()}"
        )
        self._show_body()

    @on(DataTable.RowHighlighted, "#webhooks-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#webhooks-table", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch(self.source, self.pager.cursor)
        self._show_body()

    def _show_body(self) -> None:
        key = self.selected_key(self.query_one("#webhooks-table", DataTable))
        if key is None:
            self.query_one("#webhook-body", Static).update("")
            return
        self.fetch_body(int(key))

    @work(thread=True, exclusive=True, group="body")
    def fetch_body(self, webhook_id: int) -> None:
        with session_scope(write=False) as session:
            body = webhook_body(session=session, webhook_id=webhook_id, limit=BODY_SHOWN)
            attempts = [
                (a.processed_at, a.outcome)
                for a in webhook_attempts(session=session, webhook_id=webhook_id)
            ]
        self.post_message(RowsLoaded([(webhook_id, body, attempts)]))

    @on(RowsLoaded)
    def show_body(self, message: RowsLoaded) -> None:
        [(webhook_id, body, attempts)] = message.rows
        if self.selected_key(self.query_one("#webhooks-table", DataTable)) != str(webhook_id):
            return
        outcome = self.outcomes.get(str(webhook_id), "")
        tried = "".join(f"\n  {when(at)}  {text}" for at, text in attempts)
        history = f"\nattempts ({len(attempts)}):{tried}" if attempts else ""
        self.query_one("#webhook-body", Static).update(
            f"outcome: {outcome}{history}\n\n{body or ''}"
        )

    def action_replay(self) -> None:
        key = self.selected_key(self.query_one("#webhooks-table", DataTable))
        if key is None:
            self.notify("No webhook selected.", severity="warning")
            return
        webhook_id = int(key)
        row = self.rows.get(key)
        if row is not None and not row.authenticated:
            self.notify(
                f"Webhook #{webhook_id} failed authentication; it is never processed, so it"
                " cannot be replayed.",
                title="Replay: refused",
                severity="error",
            )
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Replay", lambda: self._replay(webhook_id))

        self.app.push_screen(
            ConfirmScreen(
                f"Replay webhook #{webhook_id}?",
                "It is processed again; its effects are idempotent. Earlier outcomes are"
                " kept, and the replay is audited under your name.",
                confirm_label="Replay",
            ),
            confirmed,
        )

    def _replay(self, webhook_id: int) -> str:
        replay_webhook(webhook_id=webhook_id, actor=self.actor)
        return f"webhook #{webhook_id} queued for processing again"
