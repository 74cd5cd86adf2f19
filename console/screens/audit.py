"""The audit trail, newest first, filtered by ``action:``, ``actor:``, ``type:``,
``object:`` and ``ip:`` terms (a bare term is an object id), each matching the values
that start with it: e.g. ``action:key.reveal`` shows who revealed which key when,
``action:key.`` every key action. An unknown filter is refused with the ones there are.
The highlighted event is shown whole (address, browser, data) below the list."""

from __future__ import annotations

import json
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.messages import PageLoaded
from console.screens.base import ConsoleScreen
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.models import AuditEvent
from core.services.audit import search_audit

FIELDS = {
    "action": "action",
    "actor": "actor_id",
    "type": "object_type",
    "object": "object_id",
    "ip": "ip",
}
KNOWN = ", ".join(f"{name}:" for name in FIELDS)


def parse_filter(text: str) -> dict[str, str]:
    """``action:key.reveal actor:alice 1234`` → search_audit keyword arguments.

    Raises ValueError naming the term for an unknown filter or one without a value (a
    bare term is an object id; an object id with a colon is given as ``object:ID``)."""
    criteria: dict[str, str] = {}
    for term in text.split():
        name, sep, value = term.partition(":")
        if not sep:
            criteria["object_id"] = term
        elif name.lower() not in FIELDS:
            raise ValueError(f"unknown filter '{name}:' (filters: {KNOWN})")
        elif not value:
            raise ValueError(f"'{name}:' needs a value, e.g. {name}:TEXT")
        else:
            criteria[FIELDS[name.lower()]] = value
    return criteria


def describe(event: AuditEvent) -> str:
    """The whole event for the detail pane: who, from where, and all its data."""
    data = json.dumps(event.data, sort_keys=True, default=str, ensure_ascii=False)
    return (
        f"#{event.id} {when(event.created_at)} {event.actor_type}:{event.actor_id} "
        f"{event.action} {event.object_type} {event.object_id}\n"
        f"address {event.ip or '-'}  browser {event.user_agent or '-'}\n"
        f"data {data}"
    )


class AuditScreen(ConsoleScreen):
    NAME = "audit"
    AUTO_FOCUS = "#audit-table"
    BINDINGS = [Binding("slash", "focus_filter", "Filter", id="audit.filter")]
    PALETTE = [("Search the audit trail", "focus_filter", "action: actor: type: object: ip:")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pager = Pager()
        self.criteria: dict[str, str] = {}
        self.details: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(
            placeholder="filter: action:key. actor:NAME type:order object:ID ip:10.0",
            id="audit-filter",
        )
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="audit-detail", classes="detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).add_columns(
            "When", "Actor", "Action", "Object", "IP", "User agent", "Data"
        )

    def action_focus_filter(self) -> None:
        self.query_one("#audit-filter", Input).focus()

    @on(Input.Submitted, "#audit-filter")
    def load(self) -> None:
        try:
            self.criteria = parse_filter(self.query_one("#audit-filter", Input).value)
        except ValueError as exc:
            self.notify(str(exc), title="Audit filter", severity="error")
            return
        self.pager.reset()
        self.fetch(self.criteria, None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, criteria: dict[str, str], before_id: int | None) -> None:
        with session_scope(write=False) as session:
            events = search_audit(
                session=session,
                limit=PAGE,
                before_id=before_id,
                prefix=True,
                **criteria,  # type: ignore[arg-type]
            )
            rows = [
                (
                    e.id,
                    describe(e),
                    when(e.created_at),
                    f"{e.actor_type}:{e.actor_id}",
                    e.action,
                    f"{e.object_type} {e.object_id}",
                    e.ip or "-",
                    short(e.user_agent or "-", 24),
                    short(json.dumps(e.data, sort_keys=True, default=str), 60),
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
            self.details.clear()
        for event_id, detail, *cells in message.rows:
            self.details[str(event_id)] = detail
            table.add_row(*cells, key=str(event_id))
        self.pager.loaded(message.rows, message.rows[-1][0] if message.rows else None)
        more = "+" if self.pager.more else ""
        self.sub_title = f"{table.row_count}{more} audit events · {self.updated()}"
        self._show_detail()

    def _show_detail(self) -> None:
        key = self.selected_key(self.query_one("#audit-table", DataTable))
        self.query_one("#audit-detail", Static).update(self.details.get(key or "", ""))

    @on(DataTable.RowHighlighted, "#audit-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#audit-table", DataTable)
        self._show_detail()
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch(self.criteria, self.pager.cursor)
