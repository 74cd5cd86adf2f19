"""The attention queue: each way to resolve an order, through the console, lands in the
database and in the audit trail under the operator's name."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from console.screens.modals import ConfirmScreen, ProviderScreen, ReasonScreen, ValueScreen
from core.models import Key, Order
from core.services.webhooks import process_webhook
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_order, make_product, order_lines
from tests.support.fulfilment import attention_order as support_attention_order
from tests.support.fulfilment import offer, unknown_order


def attention_order(session, product, qty=1, **kw):
    return support_attention_order(session, product, qty=qty, **kw)


def test_lists_orders_with_their_reason(session, console_app):
    order = attention_order(session, make_product(session))
    make_order(session, [(make_product(session), 1)], status="paid")

    async def scenario(pilot):
        await show(pilot, "2")
        table = pilot.app.screen.query_one("#attention-table", DataTable)
        assert table.row_count == 1
        assert table.get_row_at(0)[0] == order.number
        assert "no stock" in str(pilot.app.screen.query_one("#attention-reason").render())

    run(console_app, scenario)


def test_retry(session, console_app, queued_jobs):
    order = attention_order(session, make_product(session))

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("r")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert pilot.app.screen.query_one("#attention-table", DataTable).row_count == 0

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "paid"
    assert ("fulfil_order", (order.id,), {}) in queued_jobs
    [event] = audit(session, "order.transition")
    assert event.actor_id == OPERATOR and event.actor_type == "operator"


def test_backing_out_changes_nothing(session, console_app):
    order = attention_order(session, make_product(session))

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("r")
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("c")
        assert isinstance(pilot.app.screen, ReasonScreen)
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    assert audit(session, "order.transition") == []


def test_assign_from_stock(session, console_app):
    product = make_product(session)
    order = attention_order(session, product, qty=2)
    make_keys(session, product, 2)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("s", "y")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assigned = audit(session, "key.assign")
    assert len(assigned) == 2 and {a.actor_id for a in assigned} == {OPERATOR}
    assert ("information", f"2 key(s) from stock assigned to {order.number}") in console_app.notes


def test_assign_without_stock_is_refused_and_changes_nothing(session, console_app):
    order = attention_order(session, make_product(session))

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("s", "y")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    assert audit(session, "key.assign") == [] and audit(session, "order.transition") == []
    assert any(sev == "error" and "no keys in stock" in msg for sev, msg in console_app.notes)


def test_cancel_with_a_reason(session, console_app):
    product = make_product(session)
    order = attention_order(session, product)
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("c")
        await pilot.press("enter")  # no reason yet: refused in the dialog
        assert isinstance(pilot.app.screen, ReasonScreen)
        await pilot.press(*"fraud suspected", "enter")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "cancelled"
    assert session.get(Key, key.id).status == "available"
    [transition] = audit(session, "order.transition")
    assert transition.actor_id == OPERATOR
    assert transition.data["to"] == "cancelled" and transition.data["reason"] == "fraud suspected"
    assert {e.actor_id for e in audit(session, "key.revoke")} == {OPERATOR}


def test_refund_through_the_test_payments(session, console_app, queued_jobs):
    product = make_product(session)
    order = attention_order(session, product, payment_reference="pi_test_console")
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("f", *"customer asked", "enter")
        await settle(pilot)

    run(console_app, scenario)
    [refund] = audit(session, "order.refund")
    assert refund.actor_id == OPERATOR and refund.data["reason"] == "customer asked"
    for name, args, _ in list(queued_jobs):
        if name == "process_webhook":
            process_webhook(webhook_id=args[0])
    assert fresh(session).get(Order, order.id).status == "refunded"
    assert session.get(Key, key.id).status == "available"


def test_buy_from_a_chosen_provider(
    session, console_app, providers, sim_server, queued_jobs, monkeypatch
):
    import core.services.fulfilment as fulfilment

    product = make_product(session, price_minor=1000)
    offer(session, sim_server, product, "kinguin", cost="9.95")  # below margin
    order = attention_order(session, product)
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("b")
        dialog = pilot.app.screen
        assert isinstance(dialog, ProviderScreen)
        dialog.query_one("#providers").highlighted = dialog.providers.index("kinguin")
        await pilot.click("#ignore-margin")
        await pilot.click("#confirm")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert len(sim_server.orders("kinguin")) == 1
    [bought] = audit(session, "order.buy_from_provider")
    assert bought.actor_id == OPERATOR
    assert bought.data == {"provider": "kinguin", "ignore_margin": True}


def unknown_purchase_order(session, sim_server, qty=2):
    return unknown_order(session, sim_server, qty=qty)


def test_unknown_purchase_shown_and_bought_keys_entered(session, console_app, sim_server):
    from core.models import ProviderPurchase

    order, purchase, _ = unknown_purchase_order(session, sim_server)

    async def scenario(pilot):
        await show(pilot, "2")
        text = str(pilot.app.screen.query_one("#attention-reason").render())
        assert "Unknown purchase ks-lost-1 at codeswholesale" in text
        assert "confirm not charged, send again" in text and "bought: enter the keys" in text
        await pilot.press("e")
        assert isinstance(pilot.app.screen, ValueScreen)
        await pilot.press(*"CONSOLE-KEY-1 CONSOLE-KEY-2", "enter")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert session.get(ProviderPurchase, purchase.id).status == "completed"
    [event] = audit(session, "purchase.keys_entered")
    assert event.actor_id == OPERATOR and event.data["keys"] == 2
    assert ("information", f"2 key(s) of ks-lost-1 stored for {order.number}") in console_app.notes


def test_entered_keys_are_checked_in_the_dialog(session, console_app, sim_server):
    """Issue #17 defect 13: a wrong number of keys was refused only after the dialog had
    closed, so every key had to be typed again. The dialog now says what is wrong and
    keeps what was typed; nothing changes until the keys are right."""
    from core.models import ProviderPurchase

    order, purchase, _ = unknown_purchase_order(session, sim_server)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("e")
        dialog = pilot.app.screen
        assert isinstance(dialog, ValueScreen)
        await pilot.press(*"CONSOLE-KEY-1", "enter")
        await settle(pilot)
        assert pilot.app.screen is dialog
        error = str(dialog.query_one("#value-error").render())
        assert "lacks 2 key(s); 1 entered" in error
        assert dialog.query_one("#value", Input).value == "CONSOLE-KEY-1"
        await pilot.press(*" CONSOLE-KEY-1", "enter")
        await settle(pilot)
        assert pilot.app.screen is dialog
        assert "the same key is entered twice" in str(dialog.query_one("#value-error").render())
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(ProviderPurchase, purchase.id).status == purchase.status
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    assert audit(session, "purchase.keys_entered") == []


def test_unknown_purchase_confirmed_not_charged_is_sent_again(
    session, console_app, providers, sim_server, monkeypatch
):
    import core.services.fulfilment as fulfilment

    order, _purchase, _ = unknown_purchase_order(session, sim_server, qty=1)
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("n")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    [placed] = sim_server.orders("codeswholesale")
    assert placed["reference"] == "ks-lost-1" and sim_server.orders("kinguin") == []
    assert audit(session, "purchase.resend")[0].actor_id == OPERATOR


def test_an_order_without_unknown_purchases_refuses_the_purchase_actions(session, console_app):
    order = attention_order(session, make_product(session))

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("n")
        assert not isinstance(pilot.app.screen, ConfirmScreen)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    assert any("no purchase of unknown outcome" in msg for _, msg in console_app.notes)


def test_a_failed_purchase_is_shown_as_an_error_with_its_reason(
    session, console_app, providers, sim_server, queued_jobs, monkeypatch
):
    """Issue #17 defect 7: a buy that could not serve the order is an error toast with
    the reason, not a "Buy" success; the order is back on the list."""
    import core.services.fulfilment as fulfilment

    product = make_product(session, price_minor=1000)
    order = attention_order(session, product)  # no provider offers the product
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("b")
        await pilot.click("#confirm")
        await settle(pilot)
        table = pilot.app.screen.query_one("#attention-table", DataTable)
        assert table.get_row_at(0)[0] == order.number

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    errors = [msg for sev, msg in console_app.notes if sev == "error"]
    assert errors and order.number in errors[0] and "0 of 1 keys delivered" in errors[0]
    assert not any(sev == "information" and "via" in msg for sev, msg in console_app.notes)


def test_a_retry_that_fails_again_comes_back_as_an_error(
    session, test_settings, engine, queued_jobs
):
    """Issue #17 defect 7: the attention list refreshes by itself, and a retried order
    that lands back in needs_attention is reported as a failed retry with the reason."""
    import asyncio

    from console.app import make_app
    from core.db import session_scope
    from core.models import Order as OrderModel
    from core.services.audit import Actor
    from core.services.orders import transition_order
    from tests.console.conftest import fake_clients, keep_notes
    from tests.support.pilot import wait_until

    order = attention_order(session, make_product(session))
    clients = fake_clients(test_settings)
    app = keep_notes(
        make_app(
            test_settings,
            operator=OPERATOR,
            refresh_seconds=0.05,
            provider_clients=lambda: clients,
        )
    )

    def listed():
        return app.screen.query_one("#attention-table", DataTable).row_count

    async def scenario():
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("2")
            await wait_until(pilot, lambda: app.screen.id == "attention-screen" and listed() == 1)
            await pilot.press("r", "y")
            await wait_until(pilot, lambda: listed() == 0)
            with session_scope() as s:  # the worker's run fails again
                transition_order(
                    session=s,
                    order_id=order.id,
                    to_status="needs_attention",
                    actor=Actor.system(),
                    reason="codeswholesale: out of stock",
                )
            # nothing pressed: the list reloads by itself and reports the failure
            await wait_until(pilot, lambda: any(sev == "error" for sev, _ in app.notes))
            assert listed() == 1 and "updated " in app.screen.sub_title

    asyncio.run(scenario())
    assert fresh(session).get(OrderModel, order.id).status == "needs_attention"
    [error] = [msg for sev, msg in app.notes if sev == "error"]
    assert order.number in error and "codeswholesale: out of stock" in error


def test_cancelling_a_paid_order_warns_that_money_was_taken(session, console_app):
    """Issue #17 defect 13."""
    from core.models import utcnow

    order = attention_order(session, make_product(session), paid_at=utcnow())

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("c")
        dialog = pilot.app.screen
        assert isinstance(dialog, ReasonScreen)
        body = str(dialog.query_one(".dialog-body").render())
        assert "MONEY WAS TAKEN" in body and "does not refund" in body
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "needs_attention"
