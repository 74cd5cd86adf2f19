"""The attention queue: orders in ``needs_attention`` with their reason, and the ways
to resolve one (retry, assign from stock, buy from a chosen provider, refund, cancel).
An order's provider purchases whose outcome is unknown are shown under its reason with
the two ways to settle one (DESIGN §4 invariant 3): "confirm not charged, send again"
(``n``) and "bought": enter its keys (``e``) or fetch it by the provider's order id
(``o``) — rules in :mod:`core.services.operator`;
below them customers' open faulty-key reports (order, product, e-mail, message, age)
and the ways to close one (replace the key from stock, revoke it, reject the report).
Every action is confirmed in a modal, runs in a worker and is audited by the service
under the operator's name; the rules for closing a report live in
:func:`core.services.operator.resolve_key_report`."""

from __future__ import annotations

import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import AttentionLoaded
from console.screens.base import ActionFailedError, ConsoleScreen
from console.screens.modals import (
    ConfirmScreen,
    ProviderChoice,
    ProviderScreen,
    Reason,
    ReasonScreen,
    ValueScreen,
)
from console.widgets.formatting import age, money, short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import operator as ops
from core.services.console_reads.key_reports import KeyReportRow, open_key_reports
from core.services.console_reads.orders import OrderRow, attention_orders

COLUMNS = [("Order", 12), ("E-mail", 24), ("Total", 11), ("Since", 16), ("Reason", 40)]
REPORT_COLUMNS = [
    ("#", 4),
    ("Order", 12),
    ("Product", 18),
    ("E-mail", 20),
    ("Age", 7),
    ("Message", 40),
]


class AttentionScreen(ConsoleScreen):
    NAME = "attention"
    BINDINGS = [
        Binding("r", "retry", "Retry", id="attention.retry"),
        Binding("s", "assign", "From stock", id="attention.assign"),
        Binding("b", "buy", "Buy", id="attention.buy"),
        Binding("f", "refund", "Refund", id="attention.refund"),
        Binding(
            "t", "refund_to_credit", "Refund to credit", show=False, id="attention.refund_credit"
        ),
        Binding("c", "cancel_order", "Cancel order", id="attention.cancel"),
        Binding("n", "resend_purchase", "Not charged: send again", id="attention.resend"),
        Binding("e", "enter_keys", "Bought: enter keys", id="attention.enter_keys"),
        Binding("o", "fetch_purchase", "Bought: fetch order", id="attention.fetch"),
        Binding("x", "replace_key", "Replace key", id="attention.report_replace"),
        Binding("k", "revoke_key", "Revoke key", id="attention.report_revoke"),
        Binding("j", "reject_report", "Reject report", id="attention.report_reject"),
        Binding("u", "customer", "Customer", show=False, id="attention.customer"),
    ]
    PALETTE = [
        ("Retry fulfilment of the selected order", "retry", "needs_attention → paid, queued"),
        ("Assign keys from stock to the selected order", "assign", "deliver from own stock"),
        ("Buy the selected order's keys from a provider", "buy", "choose the provider"),
        ("Refund the selected order", "refund", "asks for a reason"),
        (
            "Refund the selected order to store credit",
            "refund_to_credit",
            "the whole order as the customer's credit; no card refund",
        ),
        ("Cancel the selected order", "cancel_order", "asks for a reason"),
        (
            "Unknown purchase: confirm not charged, send again",
            "resend_purchase",
            "same reference",
        ),
        ("Unknown purchase: bought, enter the keys", "enter_keys", "keys it lacks"),
        ("Unknown purchase: bought, fetch by provider order id", "fetch_purchase", "order id"),
        ("Replace the reported faulty key from stock", "replace_key", "closes the report"),
        ("Revoke the reported key", "revoke_key", "closes the report"),
        ("Reject the faulty-key report (key is good)", "reject_report", "closes the report"),
        ("Show the selected order's customer", "customer", "orders, keys, reveals, reports"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: dict[str, OrderRow] = {}
        self.reports: dict[str, KeyReportRow] = {}
        self.purchases: dict[int, list[ops.UnknownPurchase]] = {}
        # orders the operator sent back to work here → the last load started before
        self.retried: dict[int, int] = {}
        self._loads = 0
        self._loads_lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="attention-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="attention-reason", classes="detail")
        yield DataTable(id="reports-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="report-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#attention-table", DataTable)
        # Fixed widths: the layout does not depend on when the rows arrive.
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        reports = self.query_one("#reports-table", DataTable)
        for label, width in REPORT_COLUMNS:
            reports.add_column(label, width=width)
        table.border_title = "Orders needing attention"
        reports.border_title = "Faulty-key reports (x replace, k revoke, j reject)"

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with self._loads_lock:
            self._loads += 1
            generation = self._loads
        with session_scope(write=False) as session:
            rows = attention_orders(session=session)
            reports = open_key_reports(session=session)
            purchases = {
                row.id: found
                for row in rows
                if (found := ops.unknown_purchases(session=session, order_id=row.id))
            }
        self.post_message(AttentionLoaded(rows, reports, purchases, generation=generation))

    @on(AttentionLoaded)
    def show_queue(self, message: AttentionLoaded) -> None:
        self.purchases = message.purchases
        self.show_orders(message.orders)
        self.show_reports(message.reports)
        self.sub_title = (
            f"{len(message.orders)} orders need attention, "
            f"{len(message.reports)} faulty-key reports open · {self.updated()}"
        )
        for order in message.orders:
            # only a load started after the retry committed can show it failed again
            if message.generation > self.retried.get(order.id, message.generation):
                del self.retried[order.id]
                self.notify(
                    f"{order.number}: {order.attention_reason or '(no reason recorded)'}",
                    title="Retry: failed",
                    severity="error",
                    timeout=30,
                )

    def show_orders(self, orders: list[OrderRow]) -> None:
        table = self.query_one("#attention-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        self.rows = {row.number: row for row in orders}
        for row in orders:
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
        self._show_reason()

    def show_reports(self, reports: list[KeyReportRow]) -> None:
        table = self.query_one("#reports-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        self.reports = {str(r.id): r for r in reports}
        now = self.deps.now()
        for r in reports:
            table.add_row(
                str(r.id),
                r.order_number,
                short(r.product, 18),
                short(r.email, 20),
                age(r.created_at, now),
                short(r.message, 40),
                key=str(r.id),
            )
        if keep in self.reports:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_report()

    @on(DataTable.RowHighlighted, "#reports-table")
    def _show_report(self) -> None:
        report = self.selected_report()
        text = (
            f"#{report.id} {report.order_number}, key {report.key_masked} ({report.key_status}):"
            f" {report.message or '(no message)'}"
            if report
            else "No faulty-key reports open."
        )
        self.query_one("#report-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#attention-table")
    def _show_reason(self) -> None:
        order = self.selected()
        text = (
            f"{order.number}: {order.attention_reason or '(no reason recorded)'}"
            if order
            else "Nothing needs attention."
        )
        for p in self.purchases.get(order.id, []) if order else []:
            text += (
                f"\nUnknown purchase {p.reference} at {p.provider}: {p.quantity} unit(s), "
                f"{p.keys_stored} key(s) stored, since {when(p.created_at)}. "
                f"{p.error or ''}\n  n: {p.actions[0]} · e: {p.actions[1]} · o: {p.actions[2]}"
            )
        self.query_one("#attention-reason", Static).update(text)

    def selected(self) -> OrderRow | None:
        key = self.selected_key(self.query_one("#attention-table", DataTable))
        return self.rows.get(key) if key else None

    def selected_report(self) -> KeyReportRow | None:
        key = self.selected_key(self.query_one("#reports-table", DataTable))
        return self.reports.get(key) if key else None

    def _need_order(self) -> OrderRow | None:
        order = self.selected()
        if order is None:
            self.notify("No order selected.", severity="warning")
        return order

    # -- actions -----------------------------------------------------------------------

    def action_customer(self) -> None:
        """``u``: the customer of the selected order."""
        if (order := self._need_order()) is not None:
            self.app.open_customer(order.id)  # type: ignore[attr-defined]

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
        with self._loads_lock:
            self.retried[order.id] = self._loads
        return f"{order.number} is back in the fulfilment queue; a failure comes back here"

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
        n = ops.assign_from_stock(order_id=order.id, actor=self.actor)
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
        if result.failed:
            raise ActionFailedError(f"{order.number} via {choice.provider}{detail}")
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

    def action_refund_to_credit(self) -> None:
        if (order := self._need_order()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action(
                    "Refund to credit",
                    lambda: ops.refund_order(
                        order_id=order.id, actor=self.actor, reason=reason.text, to="credit"
                    ),
                )

        self.app.push_screen(
            ReasonScreen(
                f"Refund {order.number} ({money(order.total_minor, order.currency)}) "
                "to store credit?",
                "The whole order becomes the customer's store credit (the card is not "
                "refunded); keys never revealed return to stock.",
                confirm_label="Refund to credit",
            ),
            given,
        )

    def action_cancel_order(self) -> None:
        if (order := self._need_order()) is None:
            return

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action("Cancel", lambda: self._cancel(order, reason.text))

        body = "Keys never revealed return to stock. Cancelling does not move money."
        if order.paid_at is not None:
            body = (
                f"MONEY WAS TAKEN: {money(order.total_minor, order.currency)} paid "
                f"{when(order.paid_at)}. Cancelling does not refund it; refund with f "
                "(cancel or refund, not both). Keys never revealed return to stock."
            )
        self.app.push_screen(
            ReasonScreen(f"Cancel {order.number}?", body, confirm_label="Cancel order"),
            given,
        )

    def _cancel(self, order: OrderRow, reason: str) -> str:
        ops.cancel_order(order_id=order.id, actor=self.actor, reason=reason)
        return f"{order.number} cancelled"

    # -- purchases whose outcome is unknown ------------------------------------------------

    def _need_purchase(self) -> tuple[OrderRow, ops.UnknownPurchase] | None:
        if (order := self._need_order()) is None:
            return None
        found = self.purchases.get(order.id)
        if not found:
            self.notify(f"{order.number} has no purchase of unknown outcome.", severity="warning")
            return None
        return order, found[0]

    def action_resend_purchase(self) -> None:
        if (chosen := self._need_purchase()) is None:
            return
        order, purchase = chosen

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Send again", lambda: self._resend(order, purchase))

        self.app.push_screen(
            ConfirmScreen(
                f"Send {purchase.reference} to {purchase.provider} again?",
                f"Only if you checked with {purchase.provider} that this purchase was NOT "
                "charged: it is sent again under the same reference.",
                confirm_label="Not charged: send again",
            ),
            confirmed,
        )

    def _resend(self, order: OrderRow, purchase: ops.UnknownPurchase) -> str:
        result = ops.resend_purchase(purchase_id=purchase.id, actor=self.actor)
        detail = f": {result.detail}" if result.detail else ""
        if result.failed:
            raise ActionFailedError(f"{purchase.reference} sent again; {order.number}{detail}")
        return f"{purchase.reference} sent again; {order.number} {result.outcome}{detail}"

    def action_enter_keys(self) -> None:
        if (chosen := self._need_purchase()) is None:
            return
        order, purchase = chosen
        lacking = purchase.quantity - purchase.keys_stored

        def given(value: str | None) -> None:
            if value is not None:
                self.run_operator_action(
                    "Enter keys",
                    lambda: (
                        f"{ops.enter_purchase_keys(purchase_id=purchase.id, codes=value, actor=self.actor)}"
                        f" key(s) of {purchase.reference} stored for {order.number}"
                    ),
                )

        self.app.push_screen(
            ValueScreen(
                f"Keys of {purchase.reference} ({lacking} lacking)",
                "Bought at the provider: enter the keys, separated by spaces or commas.",
                confirm_label="Store keys",
                check=lambda value: ops.parse_entered_keys(
                    value, lacking=lacking, reference=purchase.reference
                ),
            ),
            given,
        )

    def action_fetch_purchase(self) -> None:
        if (chosen := self._need_purchase()) is None:
            return
        order, purchase = chosen

        def given(value: str | None) -> None:
            if value is not None:
                self.run_operator_action(
                    "Fetch order",
                    lambda: (
                        f"{ops.fetch_purchase_by_provider_order(purchase_id=purchase.id, provider_order_id=value, actor=self.actor)}"
                        f" key(s) of {purchase.reference} fetched for {order.number}"
                    ),
                )

        self.app.push_screen(
            ValueScreen(
                f"{purchase.provider} order id of {purchase.reference}",
                "Bought at the provider: its keys are fetched from that order.",
                confirm_label="Fetch",
                check=ops.parse_provider_order_id,
            ),
            given,
        )

    # -- faulty-key reports --------------------------------------------------------------

    _REPORT_ACTIONS = {
        "replace": (
            "Replace",
            "The key is quarantined as faulty and a key from stock is delivered instead.",
        ),
        "revoke": ("Revoke", "The key is revoked; it never returns to stock."),
        "reject": ("Reject", "The key stays as it is; the report is closed as rejected."),
    }

    def _report_action(self, action: str) -> None:
        report = self.selected_report()
        if report is None:
            self.notify("No faulty-key report selected.", severity="warning")
            return
        label, body = self._REPORT_ACTIONS[action]

        def given(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action(
                    f"{label} (report #{report.id})",
                    lambda: self._resolve(report, action, reason.text),
                )

        self.app.push_screen(
            ReasonScreen(
                f"{label}: report #{report.id} on {report.order_number}, key {report.key_masked}?",
                body,
                confirm_label=label,
            ),
            given,
        )

    def _resolve(self, report: KeyReportRow, action: str, note: str) -> str:
        done = ops.resolve_key_report(
            report_id=report.id, action=action, actor=self.actor, note=note
        )
        return f"report #{report.id} on {report.order_number}: {done.status}"

    def action_replace_key(self) -> None:
        self._report_action("replace")

    def action_revoke_key(self) -> None:
        self._report_action("revoke")

    def action_reject_report(self) -> None:
        self._report_action("reject")
