"""Checkout: quoting a cart, placing an order, opening the payment, the test payment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func
from sqlmodel import select

from core.errors import InvalidInput
from core.models import AuditEvent, Customer, Key, Order, OrderEvent, OrderLine, ProviderOffer
from core.services.checkout import (
    CartLine,
    CartRejected,
    OrderNotPayable,
    PaymentUnavailable,
    pay_test_order,
    place_order,
    quote_cart,
)
from core.services.portal import OrderNotFound, open_order, token_opens
from core.services.test_payments import NoTestPayments
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_keys, make_product
from tests.support.stripe import stripe_configured


def count(session, model) -> int:
    return fresh(session).exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def shop(session):
    """Two products in stock (EUR), one sold out, one priced in USD."""
    a = make_product(session, title="Starfall", price_minor=1500)
    b = make_product(session, title="Hollow Tide", price_minor=999, region="EU")
    make_keys(session, a, 5)
    make_keys(session, b, 2)
    sold_out = make_product(session, title="Iron Orchard")
    usd = make_product(session, title="Dollar Game", currency="USD")
    make_keys(session, usd, 3)
    return SimpleNamespace(a=a, b=b, sold_out=sold_out, usd=usd)


def run_jobs(queued_jobs):
    outcomes = []
    for name, args, _ in list(queued_jobs):
        if name == "process_webhook":
            outcomes.append(process_webhook(webhook_id=args[0]))
    return outcomes


# -- quote ------------------------------------------------------------------------------


def test_quote_prices_the_cart_and_merges_repeated_products(session, shop):
    quote = quote_cart(
        session=session,
        lines=[CartLine(shop.a.slug, 2), CartLine(shop.b.slug, 1), CartLine(shop.a.slug, 1)],
    )
    assert quote.ok and quote.problems == []
    assert [(ln.slug, ln.quantity, ln.line_total_minor) for ln in quote.lines] == [
        (shop.a.slug, 3, 4500),
        (shop.b.slug, 1, 999),
    ]
    assert quote.total_minor == 5499 and quote.currency == "EUR"
    assert quote.lines[1].region == "EU" and quote.lines[0].max_quantity == 5


def test_quote_reports_problems_instead_of_raising(session, shop):
    zero = make_product(session, title="Zero")
    make_keys(session, zero, 1)
    quote = quote_cart(
        session=session,
        lines=[
            CartLine("no-such-game", 1),
            CartLine(shop.sold_out.slug, 1),
            CartLine(shop.b.slug, 3),
            CartLine(shop.a.slug, 11),
            CartLine(zero.slug, 0),
        ],
    )
    assert not quote.ok
    by_slug = {ln.slug: ln for ln in quote.lines}
    assert "could not find" in by_slug["no-such-game"].problem
    assert "out of stock" in by_slug[shop.sold_out.slug].problem
    assert by_slug[shop.b.slug].problem == "Only 2 of Hollow Tide available right now."
    assert "At most 10" in by_slug[shop.a.slug].problem
    assert "at least 1" in by_slug[zero.slug].problem
    assert len(quote.problems) == 5
    assert (
        quote.total_minor
        == sum(ln.line_total_minor for ln in quote.lines)
        == 1999 + 3 * 999 + 11 * 1500
    )


def test_quote_refuses_mixed_currencies(session, shop):
    quote = quote_cart(
        session=session, lines=[CartLine(shop.a.slug, 1), CartLine(shop.usd.slug, 1)]
    )
    # the cart is in EUR (the first product's currency); the USD-only game is not sold in
    # it, says so, and adds nothing to the total (which is the sum of the lines)
    assert not quote.ok and quote.currency == "EUR"
    assert quote.problems == [
        "Dollar Game is not sold in EUR. Remove it, or switch currency to buy it."
    ]
    assert quote.total_minor == sum(ln.line_total_minor for ln in quote.lines) == 1500


def test_partner_stock_makes_a_product_buyable(session):
    product = make_product(session, price_minor=2000)
    session.add(
        ProviderOffer(
            provider="kinguin",
            external_id="k1",
            product_id=product.id,
            name="x",
            cost_minor=1000,
            currency="EUR",
            stock=3,
        )
    )
    session.commit()
    quote = quote_cart(session=session, lines=[CartLine(product.slug, 3)])
    assert quote.ok and quote.total_minor == 6000


# -- place_order ------------------------------------------------------------------------


def test_place_order_writes_a_pending_order_with_a_price_snapshot(session, shop, test_settings):
    result = place_order(
        email="  Buyer@Example.COM ",
        lines=[CartLine(shop.a.slug, 2), CartLine(shop.b.slug, 1)],
        ip="203.0.113.9",
    )
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.status == "pending_payment" and order.email == "buyer@example.com"
    assert order.total_minor == result.total_minor == 3999 and result.currency == "EUR"
    lines = session.exec(
        select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id)
    ).all()
    assert [(ln.title, ln.quantity, ln.unit_price_minor) for ln in lines] == [
        ("Starfall", 2, 1500),
        ("Hollow Tide", 1, 999),
    ]
    public = test_settings.public_url
    assert result.test_payment
    assert result.payment_url == f"{public}/pay/{result.number}?token={result.access_token}"
    assert result.order_url == f"{public}/orders/{result.number}?token={result.access_token}"
    assert token_opens(result.number, result.access_token)
    assert (
        open_order(session=session, number=result.number, access_token=result.access_token).id
        == order.id
    )
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "order.place")).one()
    assert audit.object_id == result.number and audit.ip == "203.0.113.9"


def test_a_signed_in_customer_owns_the_order(session, shop):
    customer = Customer(email="me@example.com")
    session.add(customer)
    session.commit()
    result = place_order(
        email="me@example.com", lines=[CartLine(shop.a.slug, 1)], customer_id=customer.id
    )
    assert (
        open_order(
            session=fresh(session), number=result.number, customer_id=customer.id
        ).customer_id
        == customer.id
    )


@pytest.mark.parametrize(
    ("email", "lines", "error", "words"),
    [
        ("not-an-email", [("a", 1)], InvalidInput, "e-mail"),
        ("b@example.com", [], CartRejected, "empty"),
        ("b@example.com", [("a", 0)], CartRejected, "at least 1"),
        ("b@example.com", [("a", 11)], CartRejected, "At most 10"),
        ("b@example.com", [("a", 4), ("a", 7)], CartRejected, "At most 10"),
        ("b@example.com", [("a", "2")], CartRejected, "at least 1"),
        ("b@example.com", [("no-such-game", 1)], CartRejected, "could not find"),
        ("b@example.com", [("sold_out", 1)], CartRejected, "out of stock"),
        ("b@example.com", [("a", 1), ("usd", 1)], CartRejected, "not sold in EUR"),
        ("b@example.com", [("b", 3)], CartRejected, "Only 2"),
    ],
)
def test_bad_checkouts_are_refused_and_write_nothing(session, shop, email, lines, error, words):
    cart = [
        CartLine(getattr(shop, slug).slug if hasattr(shop, slug) else slug, qty)
        for slug, qty in lines
    ]
    with pytest.raises(error) as err:
        place_order(email=email, lines=cart)
    assert words in err.value.message
    assert count(session, Order) == 0 and count(session, OrderEvent) == 0


def test_too_many_lines_and_unknown_customer_are_refused(session, shop):
    many = [make_product(session) for _ in range(21)]
    for p in many:
        make_keys(session, p, 1)
    with pytest.raises(CartRejected) as err:
        place_order(email="b@example.com", lines=[CartLine(p.slug, 1) for p in many])
    assert "at most 20" in err.value.message
    with pytest.raises(InvalidInput, match="unknown customer"):
        place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 1)], customer_id=999)
    assert count(session, Order) == 0


# -- Stripe -----------------------------------------------------------------------------


@pytest.fixture
def stripe_mode(test_settings, monkeypatch):
    with stripe_configured(test_settings, monkeypatch) as fake:
        yield fake


def test_with_stripe_the_payment_url_is_a_checkout_session_for_the_order(
    session, shop, stripe_mode
):
    result = place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 2)])
    assert (
        result.payment_url == "https://checkout.stripe.com/c/pay/cs_test_123"
        and not result.test_payment
    )
    [call] = stripe_mode.requests
    assert call["path"] == "/v1/checkout/sessions"
    assert call["authorization"] == "Bearer sk_test_x"
    assert call["idempotency_key"] == f"keyshop-checkout-{result.number}"
    form = call["form"]
    assert form["client_reference_id"] == result.number and form["mode"] == "payment"
    assert form["metadata[order_number]"] == result.number
    assert form["payment_intent_data[metadata][order_number]"] == result.number
    assert form["line_items[0][quantity]"] == "2"
    assert form["line_items[0][price_data][unit_amount]"] == "1500"
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["success_url"] == result.order_url
    events = (
        fresh(session)
        .exec(select(OrderEvent).where(OrderEvent.reason == "payment page opened"))
        .all()
    )
    assert [e.data for e in events] == [{"stripe_checkout_session": "cs_test_123"}]


@pytest.mark.parametrize("failure", ["error_reply", "unreachable"])
def test_when_stripe_refuses_the_order_is_cancelled(
    session, shop, stripe_mode, failure, monkeypatch
):
    if failure == "error_reply":
        stripe_mode.fail_with = 500
    else:
        stripe_mode.server.shutdown()
        stripe_mode.server.server_close()
    with pytest.raises(PaymentUnavailable, match="nothing was charged"):
        place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 5)])
    assert [o.status for o in fresh(session).exec(select(Order)).all()] == ["cancelled"]
    # the five keys checkout reserved are back in stock
    statuses = session.exec(select(Key.status).where(Key.product_id == shop.a.id)).all()
    assert statuses == ["available"] * 5
    cancel = session.exec(select(OrderEvent).where(OrderEvent.to_status == "cancelled")).one()
    assert "Stripe refused the checkout session" in cancel.reason
    assert cancel.data == {"keys_released": 5}


def test_test_payments_are_refused_when_stripe_is_configured(session, shop, stripe_mode):
    result = place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 1)])
    with pytest.raises(NoTestPayments):
        pay_test_order(number=result.number, access_token=result.access_token)


# -- the test payment -------------------------------------------------------------------


def test_test_payment_pays_the_order_through_the_webhook_path_and_twice_is_harmless(
    session, shop, queued_jobs
):
    result = place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 1)])
    pay_test_order(number=result.number, access_token=result.access_token)
    assert run_jobs(queued_jobs) == [f"order {result.number} paid"]
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.status == "paid" and order.payment_reference.startswith("pi_test_")
    # the order confirmation e-mail was queued when the order was placed
    assert [j[0] for j in queued_jobs] == ["send_order_email", "process_webhook", "fulfil_order"]
    pay_test_order(number=result.number.lower(), access_token=result.access_token)
    assert len(queued_jobs) == 3  # nothing new


def test_test_payment_needs_the_orders_own_token(session, shop, queued_jobs):
    mine = place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 1)])
    other = place_order(email="c@example.com", lines=[CartLine(shop.a.slug, 1)])
    for token in (other.access_token, "", "garbage", mine.access_token + "x"):
        with pytest.raises(OrderNotFound):
            pay_test_order(number=mine.number, access_token=token)
    assert [j[0] for j in queued_jobs] == ["send_order_email"] * 2  # the confirmations only


def test_a_cancelled_order_cannot_be_paid(session, shop, queued_jobs):
    result = place_order(email="b@example.com", lines=[CartLine(shop.a.slug, 1)])
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    order.status = "cancelled"
    session.add(order)
    session.commit()
    with pytest.raises(OrderNotPayable, match="cancelled"):
        pay_test_order(number=result.number, access_token=result.access_token)
    assert [j[0] for j in queued_jobs] == ["send_order_email"]  # the confirmation only
