"""The attention queue: orders in ``needs_attention`` with their reason, and the ways
to resolve one (retry, assign from stock, buy from a chosen provider, refund, cancel);
below them customers' open faulty-key reports (order, product, e-mail, message, age)
and the ways to close one (replace the key from stock, revoke it, reject the report).
Every action is confirmed in a modal, runs in a worker and is audited by the service
under the operator's name; the rules for closing a report live in
:func:`core.services.operator.resolve_key_report`."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import AttentionLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import (
    ConfirmScreen,
    ProviderChoice,
    ProviderScreen,
    Reason,
    ReasonScreen,
)
from console.widgets.formatting import age, money, short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import operator as ops
from core.services.console_queries import (
    KeyReportRow,
    OrderRow,
    attention_orders,
    open_key_reports,
)

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
        Binding("c", "cancel_order", "Cancel order", id="attention.cancel"),
        Binding("x", "replace_key", "Replace key", id="attention.report_replace"),
        Binding("k", "revoke_key", "Revoke key", id="attention.report_revoke"),
        Binding("j", "reject_report", "Reject report", id="attention.report_reject"),
    ]
    PALETTE = [
        ("Retry fulfilment of the selected order", "retry", "needs_attention → paid, queued"),
        ("Assign keys from stock to the selected order", "assign", "deliver from own stock"),
        ("Buy the selected order's keys from a provider", "buy", "choose the provider"),
        ("Refund the selected order", "refund", "asks for a reason"),
        ("Cancel the selected order", "cancel_order", "asks for a reason"),
        ("Replace the reported faulty key from stock", "replace_key", "closes the report"),
        ("Revoke the reported key", "revoke_key", "closes the report"),
        ("Reject the faulty-key report (key is good)", "reject_report", "closes the report"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.rows: dict[str, OrderRow] = {}
        self.reports: dict[str, KeyReportRow] = {}

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
        with session_scope(write=False) as session:
            rows = attention_orders(session=session)
            reports = open_key_reports(session=session)
        self.post_message(AttentionLoaded(rows, reports))

    @on(AttentionLoaded)
    def show_queue(self, message: AttentionLoaded) -> None:
        self.show_orders(message.orders)
        self.show_reports(message.reports)
        self.sub_title = (
            f"{len(message.orders)} orders need attention, "
            f"{len(message.reports)} faulty-key reports open"
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
        with session_scope() as session:
            done = ops.resolve_key_report(
                session=session, report_id=report.id, action=action, actor=self.actor, note=note
            )
            outcome = done.status
        return f"report #{report.id} on {report.order_number}: {outcome}"

    def action_replace_key(self) -> None:
        self._report_action("replace")

    def action_revoke_key(self) -> None:
        self._report_action("revoke")

    def action_reject_report(self) -> None:
        self._report_action("reject")
