"""The attention queue: orders in ``needs_attention`` with their reason, and the ways
to resolve one (retry, assign from stock, buy from a chosen provider, refund, cancel).
Every action is confirmed in a modal, runs in a worker and is audited by the service
under the operator's name."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import OrdersLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import (
    ConfirmScreen,
    ProviderChoice,
    ProviderScreen,
    Reason,
    ReasonScreen,
)
from console.widgets.formatting import money, short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import operator as ops
from core.services.console_queries import OrderRow, attention_orders


class AttentionScreen(ConsoleScreen):
    NAME = "attention"
    BINDINGS = [
        Binding("r", "retry", "Retry", id="attention.retry"),
        Binding("s", "assign", "From stock", id="attention.assign"),
        Binding("b", "buy", "Buy", id="attention.buy"),
        Binding("f", "refund", "Refund", id="attention.refund"),
        Binding("c", "cancel_order", "Cancel order", id="attention.cancel"),
    ]
    PALETTE = [
        ("Retry fulfilment of the selected order", "retry", "needs_attention → paid, queued"),
        ("Assign keys from stock to the selected order", "assign", "deliver from own stock"),
        ("Buy the selected order's keys from a provider", "buy", "choose the provider"),
        ("Refund the selected order", "refund", "asks for a reason"),
        ("Cancel the selected order", "cancel_order", "asks for a reason"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.rows: dict[str, OrderRow] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="attention-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="attention-reason", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#attention-table", DataTable)
        table.add_columns("Order", "E-mail", "Total", "Since", "Reason")

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            rows = attention_orders(session=session)
        self.post_message(OrdersLoaded(rows))

    @on(OrdersLoaded)
    def show_orders(self, message: OrdersLoaded) -> None:
        table = self.query_one("#attention-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        self.rows = {row.number: row for row in message.rows}
        for row in message.rows:
            table.add_row(
                row.number,
                short(row.email, 24),
                money(row.total_minor, row.currency),
                when(row.created_at),
                short(row.attention_reason, 40),
                key=row.number,
            )
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self.sub_title = f"{len(message.rows)} orders need attention"
        self._show_reason()

    @on(DataTable.RowHighlighted, "#attention-table")
    def _show_reason(self) -> None:
        order = self.selected()
        text = (
            f"{order.number}: {order.attention_reason or '(no reason recorded)'}"
            if order
            else "Nothing needs attention."
        )
        self.query_one("#attention-reason", Static).update(text)

    def selected(self) -> OrderRow | None:
        key = self.selected_key(self.query_one("#attention-table", DataTable))
        return self.rows.get(key) if key else None

    def _need_order(self) -> OrderRow | None:
        order = self.selected()
        if order is None:
            self.notify("No order selected.", severity="warning")
        return order

    # -- actions -----------------------------------------------------------------------

    def action_retry(self) -> None:
        if (order := self._need_order()) is None:
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Retry", lambda: self._retry(order))

        self.app.push_screen(
            ConfirmScreen(f"Retry fulfilment of {order.number}?", confirm_label="Retry"),
            confirmed,
        )

    def _retry(self, order: OrderRow) -> str:
        ops.retry_fulfilment(order_id=order.id, actor=self.actor)
        return f"{order.number} is back in the fulfilment queue"

    def action_assign(self) -> None:
        if (order := self._need_order()) is None:
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Assign from stock", lambda: self._assign(order))

        self.app.push_screen(
            ConfirmScreen(
                f"Assign keys from stock to {order.number}?",
                "Delivers what the order lacks from our own stock.",
                confirm_label="Assign",
            ),
            confirmed,
        )

    def _assign(self, order: OrderRow) -> str:
        with session_scope() as session:
            n = ops.assign_from_stock(session=session, order_id=order.id, actor=self.actor)
        return f"{n} key(s) from stock assigned to {order.number}"

    def action_buy(self) -> None:
        if (order := self._need_order()) is None:
            return

        def chosen(choice: ProviderChoice | None) -> None:
            if choice is not None:
                self.run_operator_action("Buy", lambda: self._buy(order, choice))

        self.app.push_screen(ProviderScreen(order.number, self.settings.providers), chosen)

    def _buy(self, order: OrderRow, choice: ProviderChoice) -> str:
        result = ops.buy_from_provider(
            order_id=order.id,
            provider=choice.provider,
            actor=self.actor,
            ignore_margin=choice.ignore_margin,
        )
        detail = f": {result.detail}" if result.detail else ""
        return f"{order.number} via {choice.provider}: {result.outcome}{detail}"

    def action_refund(self) -> None:
        if (order := self._need_order()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action(
                    "Refund",
                    lambda: ops.refund_order(
                        order_id=order.id, actor=self.actor, reason=reason.text
                    ),
                )

        self.app.push_screen(
            ReasonScreen(
                f"Refund {order.number} ({money(order.total_minor, order.currency)})?",
                "The money goes back; keys never revealed return to stock.",
                confirm_label="Refund",
            ),
            given,
        )

    def action_cancel_order(self) -> None:
        if (order := self._need_order()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action("Cancel", lambda: self._cancel(order, reason.text))

        self.app.push_screen(
            ReasonScreen(
                f"Cancel {order.number}?",
                "Keys never revealed return to stock. Cancelling does not move money.",
                confirm_label="Cancel order",
            ),
            given,
        )

    def _cancel(self, order: OrderRow, reason: str) -> str:
        with session_scope() as session:
            ops.cancel_order(session=session, order_id=order.id, actor=self.actor, reason=reason)
        return f"{order.number} cancelled"
