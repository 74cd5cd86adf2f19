"""Fulfilment through the real provider clients against the simulators over HTTP."""

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from core import crypto
from core.models import Alert, Key, MailOutbox, Order, ProviderOffer, ProviderPurchase, utcnow
from core.services.fulfilment import FulfilmentRetry, fulfil_order
from tests.factories import fresh, make_keys, make_order, make_product, order_lines
from tests.support.fulfilment import NO_WAIT, keys_of, offer

BATCH_JOB = ("send_due_order_emails", (), {})


def due_mail(session, order) -> list[str]:
    """The order e-mails the order owes (its mail_outbox rows' kinds)."""
    fresh(session)
    return [m.kind for m in session.exec(select(MailOutbox).where(MailOutbox.order_id == order.id))]


def plaintexts(keys):
    vault = crypto.get_vault()
    return [
        vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode() for k in keys
    ]


def sim_orders(sim, provider):
    return sim.orders(provider)


def test_stock_first_and_no_provider_is_called(session, providers, sim_server, queued_jobs):
    product = make_product(session)
    make_keys(session, product, 3, codes=["AAAAA-11111", "BBBBB-22222", "CCCCC-33333"])
    offer(session, sim_server, product, "codeswholesale")
    order = make_order(session, [(product, 2)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert (result.outcome, result.from_stock, result.from_providers) == ("fulfilled", 2, 0)
    delivered = plaintexts(keys_of(session, order))
    assert len(set(delivered)) == 2 and set(delivered) <= {
        "AAAAA-11111",
        "BBBBB-22222",
        "CCCCC-33333",
    }
    assert sim_orders(sim_server, "codeswholesale") == []
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert due_mail(session, order) == ["delivered"] and BATCH_JOB in queued_jobs
    # idempotent: a second run does nothing
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "skipped"
    assert len(keys_of(session, order)) == 2


def test_the_rest_comes_from_codeswholesale(session, providers, sim_server, queued_jobs):
    product = make_product(session, price_minor=1999)
    make_keys(session, product, 1)
    offer(session, sim_server, product, "codeswholesale", cost="6.50")
    order = make_order(session, [(product, 3)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert (result.outcome, result.from_stock, result.from_providers) == ("fulfilled", 1, 2)
    keys = keys_of(session, order)
    assert len(keys) == 3 and len(set(plaintexts(keys))) == 3
    [purchase] = session.exec(select(ProviderPurchase)).all()
    assert (purchase.provider, purchase.status, purchase.quantity) == (
        "codeswholesale",
        "completed",
        2,
    )
    assert len(sim_orders(sim_server, "codeswholesale")) == 1
    assert {k.supplier for k in keys if k.provider_purchase_id} == {"codeswholesale"}


def test_out_of_stock_at_codeswholesale_falls_back_to_kinguin(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    cw = offer(session, sim_server, product, "codeswholesale", cost="5.00")
    offer(session, sim_server, product, "kinguin", cost="5.50")
    sim_server.control("codeswholesale", out_of_stock=[cw.external_id])
    order = make_order(session, [(product, 1)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "fulfilled"
    purchases = {p.provider: p.status for p in fresh(session).exec(select(ProviderPurchase))}
    assert purchases == {"codeswholesale": "failed", "kinguin": "completed"}
    assert session.get(ProviderOffer, cw.id).stock == 0
    assert len(keys_of(session, order)) == 1


def test_5xx_is_retried_then_the_next_provider_is_used(session, providers, sim_server, queued_jobs):
    product = make_product(session)
    offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    sim_server.control("codeswholesale", error_rate=1.0)
    order = make_order(session, [(product, 1)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "fulfilled"
    cw = (
        fresh(session)
        .exec(select(ProviderPurchase).where(ProviderPurchase.provider == "codeswholesale"))
        .one()
    )
    assert cw.status in ("failed",) and cw.attempts >= 3
    assert sim_orders(sim_server, "codeswholesale") == []
    assert len(sim_orders(sim_server, "kinguin")) == 1


def test_crash_after_charge_is_recovered_by_reference_without_a_second_purchase(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    sim_server.control("codeswholesale", crash_after_charge=True)
    order = make_order(session, [(product, 2)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "fulfilled"
    assert len(sim_orders(sim_server, "codeswholesale")) == 1, "paid CodesWholesale once"
    assert sim_orders(sim_server, "kinguin") == [], (
        "never bought elsewhere while the outcome was unknown"
    )
    [purchase] = fresh(session).exec(select(ProviderPurchase)).all()
    assert purchase.status == "completed"
    assert len(keys_of(session, order)) == 2


def test_a_timeout_is_an_unknown_outcome_asked_about_before_any_retry(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    # The order is placed long after the client gave up (2 s) and asked: a loaded machine
    # must not let the first lookup come after the provider placed it.
    sim_server.control("codeswholesale", timeout=10.0)
    order = make_order(session, [(product, 1)])
    # asked at once, the provider has no order yet: that proves nothing (still in flight)
    with pytest.raises(FulfilmentRetry, match="may still be in flight"):
        fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert fresh(session).exec(select(ProviderPurchase)).one().status == "unknown"
    wait_until(lambda: len(sim_orders(sim_server, "codeswholesale")) == 1, timeout=40.0)
    sim_server.control("codeswholesale", timeout=0)
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "fulfilled"
    assert sim_server.stats("codeswholesale")["order_requests"] == 1, "never sent twice"
    assert sim_orders(sim_server, "kinguin") == []


def wait_until(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def unknown_purchase(session, line, cw_offer, reference, *, age_seconds=0):
    at = utcnow() - timedelta(seconds=age_seconds)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="codeswholesale",
            reference=reference,
            offer_id=cw_offer.id,
            quantity=1,
            unit_cost_minor=500,
            status="unknown",
            attempts=1,
            created_at=at,
            updated_at=at,
        )
    )
    session.commit()


def later(seconds):
    return lambda: utcnow() + timedelta(seconds=seconds)


def test_a_lost_answer_whose_lookup_fails_is_never_sent_again_and_goes_to_an_operator(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    sim_server.control("codeswholesale", crash_after_charge=True, fail_lookups=True)
    order = make_order(session, [(product, 1)])
    with pytest.raises(FulfilmentRetry, match="lookup: order history failed"):
        fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    # asked again (reconciliation, task retries): still unclear, still waiting
    with pytest.raises(FulfilmentRetry):
        fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT, now=later(60))
    assert fresh(session).get(Order, order.id).status == "paid"
    # past KEYSHOP_UNKNOWN_PURCHASE_SECONDS: an operator decides
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT, now=later(3600))
    assert result.outcome == "needs_attention"
    [purchase] = fresh(session).exec(select(ProviderPurchase)).all()
    assert purchase.status == "unknown" and "order history failed" in purchase.error
    o = session.get(Order, order.id)
    assert (
        purchase.reference in o.attention_reason
        and "confirm it was not charged" in o.attention_reason
    )
    assert sim_server.stats("codeswholesale")["order_requests"] == 1, "never sent again"
    assert sim_orders(sim_server, "kinguin") == [], "never bought from the next provider"


def test_a_purchase_the_provider_positively_lacks_waits_out_the_in_flight_window(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    cw_offer = offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    unknown_purchase(session, line, cw_offer, "ks-just-sent-1")
    with pytest.raises(FulfilmentRetry, match="may still be in flight"):
        fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert sim_server.stats("codeswholesale")["order_requests"] == 0
    assert sim_orders(sim_server, "kinguin") == []


def test_an_intent_left_by_a_dead_worker_is_resolved_by_reference(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    cw_offer = offer(session, sim_server, product, "codeswholesale")
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    # The worker committed its intent, the provider charged, then the worker died.
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="codeswholesale",
            reference="ks-dead-worker-1",
            offer_id=cw_offer.id,
            quantity=1,
            unit_cost_minor=500,
            status="requested",
        )
    )
    session.commit()
    providers["codeswholesale"].purchase(
        reference="ks-dead-worker-1",
        external_id=cw_offer.external_id,
        quantity=1,
        max_unit_cost_minor=500,
        currency="EUR",
        allow_preorder=False,
    )
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "fulfilled"
    assert len(sim_orders(sim_server, "codeswholesale")) == 1
    assert fresh(session).exec(select(ProviderPurchase)).one().status == "completed"


def test_an_intent_the_provider_never_saw_is_sent_again_under_the_same_reference(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    cw_offer = offer(session, sim_server, product, "codeswholesale")
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    unknown_purchase(session, line, cw_offer, "ks-never-sent-1", age_seconds=120)
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "fulfilled"
    [sim_order] = sim_orders(sim_server, "codeswholesale")
    assert sim_order["reference"] == "ks-never-sent-1"


def test_nothing_left_needs_attention_with_a_reason(session, providers, sim_server, queued_jobs):
    product = make_product(session, title="Hollow Tide", price_minor=1000)
    make_keys(session, product, 1)
    offer(session, sim_server, product, "codeswholesale", cost="9.90")  # would leave a 1% margin
    order = make_order(session, [(product, 3)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "needs_attention"
    o = fresh(session).get(Order, order.id)
    assert o.status == "needs_attention"
    assert "1 of 3 keys delivered" in o.attention_reason and "Hollow Tide" in o.attention_reason
    assert "margin" in o.attention_reason
    assert session.exec(select(Alert)).one().subject == f"order:{order.number}"
    assert sim_orders(sim_server, "codeswholesale") == []
    assert len(keys_of(session, order)) == 1, "what was delivered stays delivered"
    assert due_mail(session, order) == ["attention"] and BATCH_JOB in queued_jobs


def test_late_keys_wait_then_complete(session, providers, sim_server, queued_jobs):
    product = make_product(session)
    kg = offer(session, sim_server, product, "kinguin")
    sim_server.control("kinguin", late_keys_seconds=30)
    order = make_order(session, [(product, 1)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "waiting"
    assert fresh(session).get(Order, order.id).status == "paid"
    assert due_mail(session, order) == ["waiting"] and BATCH_JOB in queued_jobs
    [sim_order] = sim_orders(sim_server, "kinguin")
    sim_server.release("kinguin", sim_order["order_id"])
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "fulfilled"
    assert len(sim_orders(sim_server, "kinguin")) == 1
    assert len(keys_of(session, order)) == 1
    assert kg.id


def test_concurrent_runs_take_turns_and_deliver_each_key_once(
    session, providers, sim_server, queued_jobs
):
    product = make_product(session)
    make_keys(session, product, 2)
    offer(session, sim_server, product, "codeswholesale")
    order = make_order(session, [(product, 4)])
    barrier = threading.Barrier(6)
    outcomes = []

    def run():
        barrier.wait()
        try:
            outcomes.append(
                fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome
            )
        except FulfilmentRetry:
            outcomes.append("retry")

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("fulfilled") == 1
    assert set(outcomes) <= {"fulfilled", "busy", "skipped"}
    keys = keys_of(session, order)
    assert len(keys) == 4 and len({k.id for k in keys}) == 4
    assert len(sim_orders(sim_server, "codeswholesale")) == 1


@pytest.mark.parametrize("status", ["pending_payment", "fulfilled", "needs_attention", "refunded"])
def test_only_paid_orders_are_fulfilled(session, providers, queued_jobs, status):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status=status)
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "skipped"
    assert keys_of(session, order) == []


def test_key_plaintext_never_reaches_the_logs(session, providers, sim_server, queued_jobs, caplog):
    import logging

    from core.services.audit import Actor
    from core.services.keys import reveal_key

    caplog.set_level(logging.DEBUG)
    product = make_product(session)
    make_keys(session, product, 1, codes=["STOCK-PLAIN-TEXT-1"])
    offer(session, sim_server, product, "codeswholesale")
    order = make_order(session, [(product, 3)])
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "fulfilled"
    keys = keys_of(session, order)
    codes = plaintexts(keys)
    for key in keys:
        assert reveal_key(session=session, key_id=key.id, actor=Actor.customer(1)) in codes
    session.commit()
    assert len(codes) == 3 and "STOCK-PLAIN-TEXT-1" in codes
    for code in codes:
        assert code not in caplog.text


# -- orders reserved at checkout ----------------------------------------------------------------


def _place_and_pay(slug, quantity):
    from core.db import session_scope
    from core.services.audit import Actor
    from core.services.checkout import CartLine, place_order
    from core.services.orders import get_order_by_number, transition_order

    result = place_order(email="b@example.com", lines=[CartLine(slug, quantity)])
    with session_scope() as s:
        order = get_order_by_number(session=s, number=result.number)
        transition_order(session=s, order_id=order.id, to_status="paid", actor=Actor.system("test"))
        return order


def test_the_keys_reserved_at_checkout_are_the_ones_delivered(session, providers, queued_jobs):
    product = make_product(session)
    make_keys(session, product, 4)
    order = _place_and_pay(product.slug, 2)
    reserved = {k.id for k in fresh(session).exec(select(Key).where(Key.status == "reserved"))}
    assert len(reserved) == 2
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert (result.outcome, result.from_stock) == ("fulfilled", 2)
    assert {k.id for k in keys_of(session, order)} == reserved
    assert due_mail(session, order) == ["delivered"] and BATCH_JOB in queued_jobs


def test_a_line_partly_held_at_a_provider_buys_its_held_units(
    session, providers, sim_server, queued_jobs
):
    from core.models import OfferHold

    product = make_product(session, price_minor=1999)
    make_keys(session, product, 1)
    offer(session, sim_server, product, "codeswholesale", cost="6.50", stock=2)
    order = _place_and_pay(product.slug, 3)
    [hold] = fresh(session).exec(select(OfferHold)).all()
    assert hold.quantity == 2 and hold.order_id == order.id
    # the order's own hold does not count against its own purchase
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert (result.outcome, result.from_stock, result.from_providers) == ("fulfilled", 1, 2)
    assert len(keys_of(session, order)) == 3
    assert fresh(session).exec(select(OfferHold)).all() == []  # the purchase replaced it


def test_more_than_nine_units_at_kinguin_are_split_into_purchases_of_their_own(
    session, providers, sim_server, queued_jobs
):
    """Kinguin takes at most 9 units per offer in one order (KG api/order/v2/README.md):
    a line of 20 becomes purchases of 9, 9 and 2, each under its own reference."""
    product = make_product(session)
    offer(session, sim_server, product, "kinguin", stock=50)
    order = make_order(session, [(product, 20)])
    result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert result.outcome == "fulfilled", result.detail
    purchases = fresh(session).exec(select(ProviderPurchase).order_by(ProviderPurchase.id)).all()
    assert [p.quantity for p in purchases] == [9, 9, 2]
    assert {p.status for p in purchases} == {"completed"} and len(
        {p.reference for p in purchases}
    ) == 3
    assert sorted(o["quantity"] for o in sim_orders(sim_server, "kinguin")) == [2, 9, 9]
    assert len(keys_of(session, order)) == 20
