"""The audit trail, newest first, filtered by ``action:``, ``actor:``, ``type:`` and
``object:`` terms (a bare term is an object id): e.g. ``action:key.reveal`` shows who
revealed which key when."""

from __future__ import annotations

import json
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input

from console.messages import PageLoaded
from console.screens.base import ConsoleScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.services.audit import search_audit

FIELDS = {"action": "action", "actor": "actor_id", "type": "object_type", "object": "object_id"}


def parse_filter(text: str) -> dict[str, str]:
    """``action:key.reveal actor:alice 1234`` → search_audit keyword arguments."""
    criteria: dict[str, str] = {}
    for term in text.split():
        name, sep, value = term.partition(":")
        if sep and name.lower() in FIELDS and value:
            criteria[FIELDS[name.lower()]] = value
        elif not sep:
            criteria["object_id"] = term
    return criteria


class AuditScreen(ConsoleScreen):
    NAME = "audit"
    AUTO_FOCUS = "#audit-table"
    BINDINGS = [Binding("slash", "focus_filter", "Filter", id="audit.filter")]
    PALETTE = [("Search the audit trail", "focus_filter", "action: actor: type: object:")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pager = Pager()
        self.criteria: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(
            placeholder="filter: action:key.reveal actor:NAME type:order object:ID",
            id="audit-filter",
        )
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).add_columns(
            "When", "Actor", "Action", "Object", "Data"
        )

    def action_focus_filter(self) -> None:
        self.query_one("#audit-filter", Input).focus()

    @on(Input.Submitted, "#audit-filter")
    def load(self) -> None:
        self.criteria = parse_filter(self.query_one("#audit-filter", Input).value)
        self.pager.reset()
        self.fetch(self.criteria, None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, criteria: dict[str, str], before_id: int | None) -> None:
        with session_scope(write=False) as session:
            events = search_audit(
                session=session,
                limit=PAGE,
                before_id=before_id,
                **criteria,  # type: ignore[arg-type]
            )
            rows = [
                (
                    e.id,
                    when(e.created_at),
                    f"{e.actor_type}:{e.actor_id}",
                    e.action,
                    f"{e.object_type} {e.object_id}",
                    short(json.dumps(e.data, sort_keys=True, default=str), 80),
                )
                for e in events
            ]
        self.post_message(
            PageLoaded("audit-table", rows, first_page=before_id is None, more=len(rows) >= PAGE)
        )

    @on(PageLoaded)
    def show_rows(self, message: PageLoaded) -> None:
        table = self.query_one("#audit-table", DataTable)
        if message.first_page:
            table.clear()
        for event_id, *cells in message.rows:
            table.add_row(*cells, key=str(event_id))
        self.pager.loaded(message.rows, message.rows[-1][0] if message.rows else None)
        more = "+" if self.pager.more else ""
        self.sub_title = f"{table.row_count}{more} audit events"

    @on(DataTable.RowHighlighted, "#audit-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#audit-table", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch(self.criteria, self.pager.cursor)
