"""The customer screen, opened from any order (``u``): account state, every order, the
keys with the customer's reveals, faulty-key reports, store credit; Escape goes back."""

from __future__ import annotations

from textual.widgets import DataTable

from core.models import Customer, KeyReport, utcnow
from core.services.audit import Actor, record_audit
from tests.console.conftest import run, settle, show
from tests.console.test_orders import delivered_order, search
from tests.factories import make_order, make_product


def cells(pilot, table_id):
    table = pilot.app.screen.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def customer_with_history(session):
    customer = Customer(email="buyer@example.com", display_name="Alice Buyer", verified_at=utcnow())
    session.add(customer)
    session.commit()
    _product, order, key = delivered_order(session, email="buyer@example.com")
    order.customer_id = customer.id
    other = make_order(
        session,
        [(make_product(session, title="Other Game"), 1)],
        status="needs_attention",
        email="buyer@example.com",
        attention_reason="provider refused",
    )
    for ip in ("198.51.100.7", "198.51.100.8"):
        record_audit(
            session=session,
            actor=Actor.customer(customer.id, ip=ip),
            action="key.reveal",
            object_type="key",
            object_id=str(key.id),
        )
    record_audit(  # an operator's reveal is not the customer's
        session=session,
        actor=Actor.operator("bob"),
        action="key.operator_reveal",
        object_type="key",
        object_id=str(key.id),
    )
    session.add(
        KeyReport(
            key_id=key.id,
            order_id=order.id,
            customer_id=customer.id,
            email=customer.email,
            message="says already used",
        )
    )
    session.commit()
    return customer, order, other


def test_the_customer_of_an_order_with_orders_keys_reveals_and_reports(session, console_app):
    _customer, order, other = customer_with_history(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("u")
        await settle(pilot)
        screen = pilot.app.screen
        assert screen.name == "customer"
        summary = str(screen.query_one("#customer-summary").render())
        assert "Alice Buyer <buyer@example.com>" in summary and "verified" in summary
        assert "2 order(s) · 1 key(s) · 1 report(s)" in summary
        assert {r[0] for r in cells(pilot, "#customer-orders")} == {order.number, other.number}
        [key] = cells(pilot, "#customer-keys")
        assert key[0] == order.number and key[4] == "2x, last 198.51.100.8"
        [report] = cells(pilot, "#customer-reports")
        assert report[1] == order.number and report[4] == "says already used"
        await pilot.press("escape")
        await settle(pilot)
        assert pilot.app.screen.name == "orders"

    run(console_app, scenario, size=(120, 35))


def test_a_guest_and_from_the_attention_queue(session, console_app):
    order = make_order(
        session,
        [(make_product(session), 1)],
        status="needs_attention",
        email="guest@example.org",
        attention_reason="no stock",
    )

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("u")
        await settle(pilot)
        summary = str(pilot.app.screen.query_one("#customer-summary").render())
        assert "<guest@example.org> · guest (no account)" in summary
        assert [r[0] for r in cells(pilot, "#customer-orders")] == [order.number]
        await show(pilot, "1")
        assert pilot.app.screen.name == "dashboard"

    run(console_app, scenario)
