"""Orders: find them by part of the number, e-mail or customer name, by a key (its code
or the end its mask shows) and by filters (status, product, provider, dates); an
order's timeline (events, payment, provider purchases, keys masked); the key actions
(reveal, audited as an operator reveal; replace a faulty key; revoke a key) and sending
one of the order's e-mails again."""

from __future__ import annotations

import uuid
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.messages import ActionFailed, KeyRevealed, OrdersLoaded, TimelineLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import (
    ChoiceScreen,
    ConfirmScreen,
    Reason,
    ReasonScreen,
    RevealScreen,
)
from console.widgets.columns import Col, lay_out
from console.widgets.formatting import money, short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.errors import DomainError
from core.services.console_reads.inventory import mask_key_id
from core.services.console_reads.orders import (
    KeyRow,
    OrderRow,
    Timeline,
    order_timeline,
    recent_orders,
    search_orders,
)
from core.services.notifications import resend_order_email, sent_order_emails
from core.services.operator import (
    replace_faulty_key,
    reveal_key_for_operator,
    revoke_delivered_key,
)


def render_timeline(t: Timeline) -> Text:
    o = t.order
    text = Text()
    text.append(f"{o.number}", style="bold")
    text.append(f"  {o.status}  {money(o.total_minor, o.currency)}")
    if o.refunded_minor and o.status != "refunded":
        text.append(f" ({money(o.refunded_minor, o.currency)} refunded)", style="yellow")
    text.append(f"  {o.email}\n")
    for title, qty, price in t.lines:
        text.append(f"  {qty} x {title} at {money(price, o.currency)}\n")
    if o.attention_reason and o.status == "needs_attention":
        text.append(f"  needs attention: {o.attention_reason}\n", style="red")
    for entry in t.entries:
        text.append(f"{when(entry.at)} ", style="dim")
        text.append(f"{entry.kind:<8}", style="bold" if entry.kind != "event" else "")
        text.append(f" {entry.text}\n")
    return text


# The e-mail and the product share the terminal's spare width; at 80 columns every
# column still fits.
RESULT_COLUMNS = [
    Col("Order", 14),
    Col("E-mail", 10, grow=1),
    Col("Status", 15),
    Col("Total", 11),
    Col("Created", 16),
]
KEY_COLUMNS = [
    Col("Key", 14),
    Col("Product", 10, grow=1),
    Col("Status", 9),
    Col("Delivered", 16),
    Col("Revealed", 16),
]


class OrdersScreen(ConsoleScreen):
    NAME = "orders"
    AUTO_FOCUS = "#order-results"
    BINDINGS = [
        # "/" is named in the search field itself; the footer keeps its room for the actions.
        Binding("slash", "focus_search", "Search", show=False, id="orders.search"),
        Binding("v", "reveal", "Reveal", id="orders.reveal"),
        Binding("x", "replace_faulty", "Replace", id="orders.replace_faulty"),
        Binding("k", "revoke", "Revoke", id="orders.revoke"),
        Binding("m", "resend_email", "Resend", id="orders.resend_email"),
        Binding("u", "customer", "Customer", id="orders.customer"),
        Binding("escape", "focus_results", "Results", show=False, id="orders.results"),
    ]
    PALETTE = [
        ("Search orders: number, e-mail, name, key; filters", "focus_search", "then Enter"),
        ("Reveal the selected key (audited)", "reveal", "asks for confirmation"),
        ("Replace the selected faulty key from stock", "replace_faulty", "asks for a reason"),
        ("Revoke the selected key", "revoke", "asks for a reason"),
        ("Send one of the order's e-mails again", "resend_email", "choose which"),
        ("Show the order's customer", "customer", "orders, keys, reveals, reports"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.results: dict[str, OrderRow] = {}
        self.order_id: int | None = None
        self.keys: dict[str, KeyRow] = {}
        self.emails: list[tuple[str, str]] = []  # (kind, ref) sent for the order shown
        self.query_text = ""
        self.pager = Pager()

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(
            placeholder=(
                "/ search: number, e-mail, name, key (code or …a1b2); "
                "status: product: provider: since: until:"
            ),
            id="order-search",
        )
        yield DataTable(id="order-results", cursor_type="row")
        with VerticalScroll(id="timeline-box"):
            yield Static("Search for an order.", id="timeline")
        yield DataTable(id="order-keys", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.table_width = self.app.size.width
        self.widths = lay_out(
            self.query_one("#order-results", DataTable), RESULT_COLUMNS, self.table_width
        )
        self.key_widths = lay_out(
            self.query_one("#order-keys", DataTable), KEY_COLUMNS, self.table_width
        )
        self.query_one("#timeline-box").border_title = "Timeline"

    def on_resize(self) -> None:
        """The terminal changed width: fit the columns to it again."""
        if self.app.size.width != self.table_width:
            self.table_width = self.app.size.width
            results = self.query_one("#order-results", DataTable)
            self.widths = lay_out(results, RESULT_COLUMNS, self.table_width)
            keys = self.query_one("#order-keys", DataTable)
            self.key_widths = lay_out(keys, KEY_COLUMNS, self.table_width)
            self.results, self.keys = {}, {}
            self.pager.reset()
            self.search(self.query_text, None)

    def action_customer(self) -> None:
        """``u``: the customer of the order shown (their orders, keys, reveals, reports)."""
        if self.order_id is None:
            self.notify("Search for an order first.", severity="warning")
            return
        self.app.open_customer(self.order_id)  # type: ignore[attr-defined]

    def load(self) -> None:
        if self.order_id is not None:
            self.load_timeline(self.order_id)
        elif not self.results:
            self.pager.reset()
            self.search("", None)

    def action_focus_search(self) -> None:
        self.query_one("#order-search", Input).focus()

    def action_focus_results(self) -> None:
        self.query_one("#order-results", DataTable).focus()

    # -- search ------------------------------------------------------------------------

    @on(Input.Submitted, "#order-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.pager.reset()
        self.search(event.value.strip(), None)

    def _refresh_tick(self) -> None:
        """The timer's reload: the first page of the current search again, quietly (no
        "no match" notice, the cursor kept on its order), and the shown order's timeline.
        A list scrolled past its first page is left as it is until F5."""
        if self.app.screen is not self or isinstance(self.focused, Input):
            return
        # a part whose last read has not answered is left to answer (a newer read would
        # cancel it, and its answer would be dropped)
        if self.order_id is not None and not self.running("load"):
            self.load_timeline(self.order_id)
        if len(self.results) <= PAGE and not self.running("search"):
            self.search(self.query_text, None, quiet=True)

    @work(thread=True, exclusive=True, group="search")
    def search(self, text: str, before_id: int | None, *, quiet: bool = False) -> None:
        """One page of orders: the newest when ``text`` is empty, else those matching it
        (:func:`core.services.console_reads.orders.search_orders`)."""
        try:
            with session_scope(write=False) as session:
                if not text:
                    rows = recent_orders(session=session, before_id=before_id, limit=PAGE)
                else:
                    rows = search_orders(
                        session=session, text=text, before_id=before_id, limit=PAGE
                    )
        except DomainError as exc:
            self.app.call_from_thread(
                self.notify, exc.message, title="Search: refused", severity="error"
            )
            return
        self.post_message(
            OrdersLoaded(rows, query=text if before_id is None else "\0more", quiet=quiet)
        )

    @on(OrdersLoaded)
    def show_results(self, message: OrdersLoaded) -> None:
        table = self.query_one("#order-results", DataTable)
        first_page = message.query != "\0more"
        kept = self.selected_key(table) if message.quiet else None
        if first_page:
            table.clear()
            self.results = {}
            self.query_text = message.query
        self.results.update({row.number: row for row in message.rows})
        self.pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        for row in message.rows:
            table.add_row(
                short(row.number, self.widths["Order"]),
                short(row.email, self.widths["E-mail"]),
                row.status,
                money(row.total_minor, row.currency),
                when(row.created_at),
                key=row.number,
            )
        self.sub_title = f"{len(self.results)} order(s) shown · {self.updated()}"
        if message.quiet:
            if kept in self.results:
                table.move_cursor(row=table.get_row_index(kept))
            return
        if not first_page:
            return
        if not message.rows:
            self.clear_timeline(
                "No order matches that search." if message.query else "No orders yet."
            )
            if message.query:
                self.notify("No order matches that number, e-mail or key.", severity="warning")
            return
        if message.query:
            table.focus()
            self._highlighted()

    @on(DataTable.RowHighlighted, "#order-results")
    def _more(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#order-results", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.search(self.query_text, self.pager.cursor)

    @on(DataTable.RowHighlighted, "#order-results")
    def _highlighted(self) -> None:
        number = self.selected_key(self.query_one("#order-results", DataTable))
        if number in self.results:
            self.order_id = self.results[number].id
            self.load_timeline(self.order_id)

    # -- timeline ----------------------------------------------------------------------

    def clear_timeline(self, text: str) -> None:
        """No order chosen: nothing shown, and no key action has a key to act on."""
        self.order_id = None
        self.keys = {}
        self.emails = []
        self.query_one("#order-keys", DataTable).clear()
        self.query_one("#timeline", Static).update(text)

    @work(thread=True, exclusive=True, group="load")
    def load_timeline(self, order_id: int) -> None:
        with session_scope(write=False) as session:
            timeline = order_timeline(session=session, order_id=order_id)
            emails = sent_order_emails(session=session, order_id=order_id)
        self.post_message(TimelineLoaded(timeline, emails=emails))

    @on(TimelineLoaded)
    def show_timeline(self, message: TimelineLoaded) -> None:
        t = message.timeline
        if t is not None and t.order.id != self.order_id:
            return  # a search replaced that order meanwhile
        keys = self.query_one("#order-keys", DataTable)
        keep = self.selected_key(keys)
        keys.clear()
        self.keys = {}
        self.emails = message.emails
        if t is None:
            self.query_one("#timeline", Static).update("That order no longer exists.")
            return
        self.query_one("#timeline", Static).update(render_timeline(t))
        for k in t.keys:
            self.keys[str(k.id)] = k
            keys.add_row(
                k.masked + (" prov" if k.from_provider else ""),
                short(k.title, self.key_widths["Product"]),
                k.status,
                when(k.delivered_at),
                when(k.revealed_at),
                key=str(k.id),
            )
        if keep in self.keys:
            keys.move_cursor(row=keys.get_row_index(keep))

    def selected_key_row(self) -> KeyRow | None:
        key = self.selected_key(self.query_one("#order-keys", DataTable))
        row = self.keys.get(key) if key else None
        if row is None:
            self.notify("No key selected (search for an order first).", severity="warning")
        return row

    # -- key actions -------------------------------------------------------------------

    def action_reveal(self) -> None:
        if (key := self.selected_key_row()) is None:
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.reveal(key.id)

        self.app.push_screen(
            ConfirmScreen(
                f"Reveal key {key.masked} ({key.title})?",
                f"Recorded in the audit trail as an operator reveal under {self.operator}."
                " It does not count as the customer's reveal: a key the customer never"
                " saw can still go back to stock on a refund.",
                confirm_label="Reveal",
            ),
            confirmed,
        )

    @work(thread=True, group="actions")
    def reveal(self, key_id: uuid.UUID) -> None:
        try:
            code = reveal_key_for_operator(key_id=key_id, actor=self.actor)
        except DomainError as exc:
            self.post_message(ActionFailed("Reveal key", exc.message))
            return
        self.post_message(KeyRevealed(mask_key_id(key_id), code))

    @on(KeyRevealed)
    def show_revealed(self, message: KeyRevealed) -> None:
        self.app.push_screen(RevealScreen(message.key_label, message.secret.value))
        self.load()

    def action_replace_faulty(self) -> None:
        if (key := self.selected_key_row()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action(
                    "Replace faulty key", lambda: self._replace(key.id, reason.text)
                )

        self.app.push_screen(
            ReasonScreen(
                f"Replace faulty key {key.masked}?",
                "The key is quarantined as faulty and a key from stock is delivered instead.",
                confirm_label="Replace",
            ),
            given,
        )

    def _replace(self, key_id: uuid.UUID, reason: str) -> str:
        new = replace_faulty_key(key_id=key_id, actor=self.actor, reason=reason)
        return f"key {mask_key_id(key_id)} replaced by {mask_key_id(new.id)}"

    def action_revoke(self) -> None:
        if (key := self.selected_key_row()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action("Revoke key", lambda: self._revoke(key.id, reason.text))

        self.app.push_screen(
            ReasonScreen(
                f"Revoke key {key.masked}?",
                "The key is marked revoked; it never returns to stock. A fulfilled order"
                " left short goes to the attention queue.",
                confirm_label="Revoke",
            ),
            given,
        )

    def _revoke(self, key_id: uuid.UUID, reason: str) -> str:
        revoke_delivered_key(key_id=key_id, actor=self.actor, reason=reason)
        return f"key {mask_key_id(key_id)} revoked"

    def action_resend_email(self) -> None:
        order_id = self.order_id
        if order_id is None:
            self.notify("No order selected.", severity="warning")
            return
        if not self.emails:
            self.notify("No e-mail was sent for this order yet.", severity="warning")
            return
        number = next((r.number for r in self.results.values() if r.id == order_id), "")
        emails = list(self.emails)

        def chosen(index: int | None) -> None:
            if index is not None:
                kind, ref = emails[index]
                self.run_operator_action(
                    "Resend e-mail",
                    lambda: resend_order_email(
                        order_id=order_id, kind=kind, ref=ref, actor=self.actor
                    ),
                )

        self.app.push_screen(
            ChoiceScreen(
                f"Send which e-mail of {number} again?",
                [f"{kind} ({ref})" if ref else kind for kind, ref in emails],
                confirm_label="Send again",
            ),
            chosen,
        )
