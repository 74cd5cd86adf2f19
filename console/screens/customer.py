"""One customer, opened from an order (``u`` on the orders or attention screen): the
account's state (or that they bought as a guest) and store credit, every order, the keys
of those orders with the customer's reveals, and their faulty-key reports. Escape goes
back to where it was opened from."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from console.screens.base import ConsoleScreen
from console.widgets.formatting import money, short, when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services.console_reads.customers import CustomerProfile, customer_of_order


class CustomerLoaded(Message):
    def __init__(self, profile: CustomerProfile | None) -> None:
        super().__init__()
        self.profile = profile


class CustomerScreen(ConsoleScreen):
    NAME = "customer"
    AUTO_FOCUS = "#customer-orders"
    BINDINGS = [Binding("escape", "back", "Back", id="customer.back")]

    def __init__(self, *, order_id: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.order_id = order_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Static("Loading the customer…", id="customer-summary", classes="detail")
        yield DataTable(id="customer-orders", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="customer-keys", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="customer-reports", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        for table_id, title, columns in (
            (
                "#customer-orders",
                "Orders",
                [("Order", 14), ("Status", 15), ("Total", 12), ("Created", 16)],
            ),
            (
                "#customer-keys",
                "Keys (reveals by the customer)",
                [("Order", 14), ("Key", 10), ("Product", 16), ("Status", 9), ("Reveals", 16)],
            ),
            (
                "#customer-reports",
                "Faulty-key reports",
                [("Report", 7), ("Order", 14), ("Key", 10), ("Status", 9), ("Message", 24)],
            ),
        ):
            table = self.query_one(table_id, DataTable)
            table.border_title = title
            for label, width in columns:
                table.add_column(label, width=width)

    def action_back(self) -> None:
        self.dismiss()

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            profile = customer_of_order(session=session, order_id=self.order_id)
        self.post_message(CustomerLoaded(profile))

    @on(CustomerLoaded)
    def show_profile(self, message: CustomerLoaded) -> None:
        p = message.profile
        summary = self.query_one("#customer-summary", Static)
        if p is None:
            summary.update("That order no longer exists.")
            return
        name = f"{p.display_name} " if p.display_name else ""
        since = f", customer since {when(p.created_at)}" if p.created_at else ""
        credit = ", ".join(money(v, c) for c, v in p.credit.items()) or "none"
        summary.update(
            Text(
                f"{name}<{p.email}> · {p.account_state}{since}\n"
                f"{len(p.orders)} order(s) · {len(p.keys)} key(s) · "
                f"{len(p.reports)} report(s) · store credit {credit}"
            )
        )
        orders = self.query_one("#customer-orders", DataTable)
        orders.clear()
        for o in p.orders:
            orders.add_row(
                o.number,
                o.status,
                Text(money(o.total_minor, o.currency), justify="right"),
                when(o.created_at),
                key=o.number,
            )
        keys = self.query_one("#customer-keys", DataTable)
        keys.clear()
        for k in p.keys:
            reveals = f"{k.reveals}x, last {k.last_reveal_from}" if k.reveals else "never"
            keys.add_row(k.order_number, k.masked, short(k.title, 16), k.status, reveals)
        reports = self.query_one("#customer-reports", DataTable)
        reports.clear()
        for r in p.reports:
            reports.add_row(
                f"#{r.id}", r.order_number, r.masked, r.status, short(r.message or "-", 24)
            )
        self.sub_title = f"{p.email} · {self.updated()}"
