"""Checkout reserves what will serve the order (issue #10, item 3; DESIGN §5.1).

- The flash sale: many checkouts from many threads for a product with few keys and no
  provider offer accept at most as many orders as there are keys, and every one of them,
  once paid, is fulfilled with keys nobody else got.
- Provider stock is counted against a per-offer hold, so two checkouts cannot both count
  the same partner units.
- Whatever way an order leaves ``pending_payment`` unpaid (expiry, Stripe refusing the
  session, an operator), what it reserved goes back.
- A checkout nothing can serve is refused in a customer's words and writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, text, update
from sqlmodel import select

from core.db import session_scope
from core.models import (
    AuditEvent,
    Key,
    KeyStatus,
    OfferHold,
    Order,
    OrderEvent,
    OrderLine,
    Product,
    ProviderOffer,
    utcnow,
)
from core.services import catalogue, checkout, fulfilment
from core.services.audit import Actor
from core.services.checkout import (
    CartLine,
    CartRejected,
    CheckoutFailed,
    pay_test_order,
    place_order,
    quote_cart,
)
from core.services.maintenance import expire_unpaid_orders
from core.services.orders import get_order_by_number, transition_order
from core.services.storefront import product_detail
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_keys, make_product
from tests.race_condition import Competitor, race_condition


def pay_and_fulfil(queued_jobs: list, results: list) -> None:
    """Pay every placed order through the test payment page and the webhook path, then
    run the fulfilment jobs that queued."""
    for result in results:
        pay_test_order(number=result.number, access_token=result.access_token)
    while queued_jobs:
        name, args, _ = queued_jobs.pop(0)
        if name == "process_webhook":
            process_webhook(webhook_id=args[0])
        elif name == "fulfil_order":
            fulfilment.fulfil_order(order_id=args[0], clients={})


def test_flash_sale_accepts_no_more_orders_than_it_can_serve(session, queued_jobs):
    n_keys, n_checkouts, n_threads = 100, 300, 32
    product = make_product(session, title="Flash Game", price_minor=999)
    make_keys(session, product, n_keys)
    session.commit()
    todo = iter(range(n_checkouts))
    take = threading.Lock()
    accepted: list = []
    refused: list[CartRejected] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def buyer() -> None:
        start.wait()
        while True:
            with take:
                n = next(todo, None)
            if n is None:
                return
            try:
                accepted.append(
                    place_order(email=f"buyer{n}@example.com", lines=[CartLine(product.slug, 1)])
                )
            except CartRejected as exc:
                refused.append(exc)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=buyer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(accepted) + len(refused) == n_checkouts
    assert len(accepted) <= n_keys, f"{len(accepted)} orders accepted for {n_keys} keys"
    assert all("out of stock" in exc.message for exc in refused)

    pay_and_fulfil(queued_jobs, accepted)
    s = fresh(session)
    statuses = Counter(s.exec(select(Order.status)).all())
    assert statuses == {"fulfilled": len(accepted)}, statuses  # no paid order without keys
    delivered = s.exec(select(Key.order_line_id).where(Key.status == KeyStatus.DELIVERED)).all()
    assert len(delivered) == len(accepted) and len(set(delivered)) == len(delivered)
    lines = s.exec(select(func.count()).select_from(OrderLine)).one()
    assert lines == len(accepted)


def key_statuses(session, product) -> Counter:
    return Counter(fresh(session).exec(select(Key.status).where(Key.product_id == product.id)))


def count(session, model) -> int:
    return fresh(session).exec(select(func.count()).select_from(model)).one()


def partner_offer(session, product, *, stock, provider="codeswholesale", cost_minor=500):
    row = ProviderOffer(
        provider=provider,
        external_id=f"{provider}-{product.id}",
        product_id=product.id,
        name=product.title,
        cost_minor=cost_minor,
        currency=product.currency,
        stock=stock,
    )
    session.add(row)
    session.commit()
    return row


def test_partner_units_are_never_counted_by_two_checkouts(session):
    n_keys, partner, n_checkouts, n_threads = 10, 10, 60, 16
    product = make_product(session, price_minor=1999)
    make_keys(session, product, n_keys)
    partner_offer(session, product, stock=partner)
    todo = iter(range(n_checkouts))
    take = threading.Lock()
    accepted: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def buyer() -> None:
        start.wait()
        while True:
            with take:
                n = next(todo, None)
            if n is None:
                return
            try:
                accepted.append(
                    place_order(email=f"b{n}@example.com", lines=[CartLine(product.slug, 1)])
                )
            except CartRejected:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=buyer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    s = fresh(session)
    held = s.exec(select(func.coalesce(func.sum(OfferHold.quantity), 0))).one()
    assert key_statuses(session, product) == {"reserved": n_keys}
    assert held <= partner and len(accepted) == n_keys + held <= n_keys + partner
    assert product_detail(session=s, slug=product.slug).provider_available == partner - held


# -- reserving ----------------------------------------------------------------------------


def test_a_checkout_holds_its_keys_so_the_page_and_the_next_cart_see_them_gone(session):
    product = make_product(session, title="Starfall")
    make_keys(session, product, 3)
    place_order(email="a@example.com", lines=[CartLine(product.slug, 2)])
    assert key_statuses(session, product) == {"reserved": 2, "available": 1}
    detail = product_detail(session=fresh(session), slug=product.slug)
    assert (detail.stock_available, detail.max_quantity) == (1, 1)
    quote = quote_cart(session=session, lines=[CartLine(product.slug, 2)])
    assert quote.problems == ["Only 1 of Starfall available right now."]


def test_partner_stock_is_held_for_what_own_keys_cannot_cover(session):
    product = make_product(session, title="Hollow Tide", price_minor=1999)
    make_keys(session, product, 1)
    offer = partner_offer(session, product, stock=3)
    result = place_order(email="a@example.com", lines=[CartLine(product.slug, 3)])
    [hold] = fresh(session).exec(select(OfferHold)).all()
    assert (hold.offer_id, hold.quantity) == (offer.id, 2)
    assert product_detail(session=session, slug=product.slug).provider_available == 1
    with pytest.raises(CartRejected, match="Only 1 of Hollow Tide"):
        place_order(email="b@example.com", lines=[CartLine(product.slug, 2)])
    _cancel(result.number)
    assert fresh(session).exec(select(OfferHold)).all() == []
    assert product_detail(session=session, slug=product.slug).provider_available == 3


# -- refusing -----------------------------------------------------------------------------


def test_a_checkout_nothing_can_serve_is_refused_in_words_and_writes_nothing(session):
    product = make_product(session, title="Iron Orchard", region="EU")
    make_keys(session, product, 1)
    place_order(email="a@example.com", lines=[CartLine(product.slug, 1)])
    before = (count(session, Order), count(session, OrderEvent), count(session, AuditEvent))
    with pytest.raises(CartRejected) as err:
        place_order(email="b@example.com", lines=[CartLine(product.slug, 1)])
    assert err.value.problems == ["Iron Orchard (Steam, EU) is out of stock."]
    assert (count(session, Order), count(session, OrderEvent), count(session, AuditEvent)) == before


def test_stock_gone_between_quote_and_reservation_is_refused_and_writes_nothing(session):
    """The quote saw the last key; by the time the reservation claims, it has gone to
    someone else (here: the same transaction takes it away just before the claim)."""
    product = make_product(session, title="Last One", region="EU")
    [key] = make_keys(session, product, 1)

    def taken_elsewhere(*args, session, **kwargs):
        session.execute(update(Key).where(Key.id == key.id).values(status=KeyStatus.FAULTY))

    with (
        race_condition("core.services.checkout.reserve_order", before=taken_elsewhere) as point,
        pytest.raises(CartRejected) as err,
    ):
        place_order(email="b@example.com", lines=[CartLine(product.slug, 1)])
    assert point.call_count == 1
    assert err.value.problems == ["Last One (Steam, EU) is out of stock."]
    assert err.value.http_status == 422
    assert (count(session, Order), count(session, OrderEvent), count(session, AuditEvent)) == (
        0,
        0,
        0,
    )
    assert key_statuses(session, product) == {"available": 1}  # rolled back with it


# -- releasing ----------------------------------------------------------------------------


def _cancel(number: str, actor: Actor | None = None) -> None:
    with session_scope() as s:
        order = get_order_by_number(session=s, number=number)
        transition_order(
            session=s,
            order_id=order.id,
            to_status="cancelled",
            actor=actor or Actor.operator("ops@example.com"),
            reason="customer asked",
        )


def test_expiry_releases_the_keys_and_the_stock_flag_comes_back(session, test_settings):
    product = make_product(session)
    make_keys(session, product, 1)
    result = place_order(email="a@example.com", lines=[CartLine(product.slug, 1)])
    with session_scope() as s:
        catalogue.refresh_stock_flags(session=s)
    assert fresh(session).get(Product, product.id).in_stock is False
    later = utcnow() + timedelta(minutes=test_settings.unpaid_order_minutes + 1)
    assert expire_unpaid_orders(now=later) != []
    s = fresh(session)
    assert get_order_by_number(session=s, number=result.number).status == "cancelled"
    assert key_statuses(session, product) == {"available": 1}
    assert s.get(Product, product.id).in_stock is True
    again = place_order(email="b@example.com", lines=[CartLine(product.slug, 1)])
    assert again.number != result.number


def test_an_operator_cancel_releases_the_keys(session):
    product = make_product(session)
    make_keys(session, product, 2)
    result = place_order(email="a@example.com", lines=[CartLine(product.slug, 2)])
    _cancel(result.number)
    assert key_statuses(session, product) == {"available": 2}
    event = fresh(session).exec(select(OrderEvent).where(OrderEvent.to_status == "cancelled")).one()
    assert event.data["keys_released"] == 2


def test_a_failure_after_the_commit_cancels_the_order_and_releases_it(session, monkeypatch):
    """Issue #10 item 6: the client never gets an error while an order it does not know
    about stays pending with keys held."""
    product = make_product(session)
    make_keys(session, product, 1)

    def connection_lost(number: str) -> str:
        raise OSError("server closed the connection unexpectedly")

    monkeypatch.setattr(checkout, "order_access_token", connection_lost)
    with pytest.raises(CheckoutFailed, match="nothing was charged") as err:
        place_order(email="a@example.com", lines=[CartLine(product.slug, 1)])
    assert err.value.http_status == 503
    [order] = fresh(session).exec(select(Order)).all()
    assert order.status == "cancelled"
    assert key_statuses(session, product) == {"available": 1}


def test_when_the_cancel_fails_too_expiry_releases_later(session, monkeypatch, test_settings):
    product = make_product(session)
    make_keys(session, product, 1)

    def broken(*args, **kwargs):
        raise OSError("database unreachable")

    monkeypatch.setattr(checkout, "order_access_token", broken)
    monkeypatch.setattr(checkout, "_transition", broken)
    with pytest.raises(CheckoutFailed):
        place_order(email="a@example.com", lines=[CartLine(product.slug, 1)])
    assert key_statuses(session, product) == {"reserved": 1}
    expire_unpaid_orders(now=utcnow() + timedelta(minutes=test_settings.unpaid_order_minutes + 1))
    assert [o.status for o in fresh(session).exec(select(Order))] == ["cancelled"]
    assert key_statuses(session, product) == {"available": 1}


@pytest.mark.postgres_only
def test_a_checkout_waits_for_the_one_counting_the_same_partner_units(session, engine):
    """Deterministic: checkout A has locked the offers and not yet written its hold when
    checkout B for the same product reaches them. B must wait (seen in pg_stat_activity)
    and then see A's hold: the last unit goes to A only."""
    product = make_product(session, title="Partner Only", region="EU")
    partner_offer(session, product, stock=1)
    b = Competitor(lambda: place_order(email="b@example.com", lines=[CartLine(product.slug, 1)]))

    def b_reaches_the_offers(*args, **kwargs):
        b.start()
        _wait_for_offer_lock_wait(engine, b)

    with race_condition("core.services.locking.lock_offers", after=b_reaches_the_offers):
        a = place_order(email="a@example.com", lines=[CartLine(product.slug, 1)])
    assert b.join(10)
    assert isinstance(b.error, CartRejected), b.error
    assert b.error.problems == ["Partner Only (Steam, EU) is out of stock."]
    s = fresh(session)
    assert [o.number for o in s.exec(select(Order))] == [a.number]
    assert s.exec(select(OfferHold.quantity)).all() == [1]


def _wait_for_offer_lock_wait(engine, competitor) -> None:
    """Until a backend waits for a lock on a query locking provider offers."""
    deadline = time.monotonic() + 30
    with engine.connect() as watcher:
        while time.monotonic() < deadline and not competitor.finished.is_set():
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid() AND query ILIKE '%FROM provider_offers%FOR UPDATE%'"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the competing checkout never waited for the offers' lock")
