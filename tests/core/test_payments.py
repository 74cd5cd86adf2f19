"""Payments through the webhook path: test payments, Stripe signatures, refunds, disputes."""

import json
import threading
import time

import pytest
from sqlmodel import select

from core.models import Alert, AuditEvent, Key, Order, OrderEvent, WebhookEvent, utcnow
from core.services.payments import webhook_secret
from core.services.test_payments import send_test_event, sign_stripe_payload
from core.services.webhooks import WebhookRejected, process_webhook, receive_webhook
from tests.factories import fresh, make_keys, make_order, make_product, order_lines


def _event(order, kind="checkout.session.completed", **obj_overrides):
    obj = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "client_reference_id": order.number,
        "payment_status": "paid",
        "payment_intent": "pi_test_1",
        "amount_total": order.total_minor,
        "currency": order.currency.lower(),
    }
    obj.update(obj_overrides)
    return json.dumps(
        {
            "id": f"evt_{order.number}_{kind}",
            "object": "event",
            "type": kind,
            "data": {"object": obj},
        }
    ).encode()


def _deliver(body, secret=None, timestamp=None):
    header = sign_stripe_payload(body, secret or webhook_secret(), timestamp)
    return receive_webhook(
        source="stripe", headers={"Stripe-Signature": header}, body=body, remote_addr="127.0.0.1"
    )


def _process_all(queued_jobs):
    outcomes = []
    for name, args, _ in list(queued_jobs):
        if name == "process_webhook":
            outcomes.append(process_webhook(webhook_id=args[0]))
    return outcomes


def test_test_payment_marks_the_order_paid_and_queues_fulfilment(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    receipt = send_test_event(order_number=order.number)
    assert receipt.status == 200 and not receipt.duplicate
    assert [j[0] for j in queued_jobs] == ["process_webhook"]
    assert _process_all(queued_jobs) == [f"order {order.number} paid"]
    fresh(session)
    paid = session.get(Order, order.id)
    assert paid.status == "paid" and paid.payment_reference.startswith("pi_test_")
    assert [j[0] for j in queued_jobs] == ["process_webhook", "fulfil_order"]
    assert queued_jobs[-1][1] == (order.id,)


@pytest.mark.parametrize("forge", ["wrong-secret", "no-header", "tampered-body", "stale"])
def test_a_forged_payment_webhook_is_refused_and_changes_nothing(session, queued_jobs, forge):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = _event(order)
    if forge == "wrong-secret":
        call = lambda: _deliver(body, secret="whsec_not_ours")  # noqa: E731
    elif forge == "no-header":
        call = lambda: receive_webhook(source="stripe", headers={}, body=body)  # noqa: E731
    elif forge == "tampered-body":
        header = sign_stripe_payload(body, webhook_secret())
        call = lambda: receive_webhook(  # noqa: E731
            source="stripe",
            headers={"Stripe-Signature": header},
            body=body.replace(b"paid", b"PAID"),
        )
    else:
        call = lambda: _deliver(body, timestamp=int(time.time()) - 3600)  # noqa: E731
    with pytest.raises(WebhookRejected) as info:
        call()
    assert info.value.http_status == 401
    assert queued_jobs == []
    fresh(session)
    assert session.get(Order, order.id).status == "pending_payment"
    logged = session.exec(select(WebhookEvent)).all()
    assert [(w.authenticated, w.processed_at is not None) for w in logged] == [(False, True)]
    # the genuine event still gets through afterwards: the forgery squatted nothing
    assert _deliver(body).duplicate is False


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b"{}", b"x" * 2_000_000])
def test_malformed_or_oversized_bodies_are_400(session, queued_jobs, body):
    header = sign_stripe_payload(body, webhook_secret())
    with pytest.raises(WebhookRejected) as info:
        receive_webhook(source="stripe", headers={"Stripe-Signature": header}, body=body)
    assert info.value.http_status == 400
    assert session.exec(select(WebhookEvent)).all() == []


def test_one_webhook_delivered_50_times_concurrently_is_acted_on_once(engine, session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = _event(order)
    barrier = threading.Barrier(50)
    receipts = []

    def deliver():
        barrier.wait()
        receipts.append(_deliver(body))

    threads = [threading.Thread(target=deliver) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.duplicate for r in receipts) == [False] + [True] * 49
    [stored] = session.exec(select(WebhookEvent)).all()
    # and processing the stored event 50 times at once acts once
    outcomes = []
    barrier = threading.Barrier(50)

    def process():
        barrier.wait()
        outcomes.append(process_webhook(webhook_id=stored.id))

    threads = [threading.Thread(target=process) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh(session)
    assert sum(o == f"order {order.number} paid" for o in outcomes) == 1
    assert sum(o.startswith("already processed") for o in outcomes) == 49
    paid_events = session.exec(
        select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.to_status == "paid")
    ).all()
    assert len(paid_events) == 1
    assert [j[0] for j in queued_jobs].count("fulfil_order") == 1


def test_an_amount_mismatch_needs_attention_and_is_not_fulfilled(session, queued_jobs):
    product = make_product(session, price_minor=1999)
    order = make_order(session, [(product, 1)], status="pending_payment")
    _deliver(_event(order, amount_total=1))
    _process_all(queued_jobs)
    fresh(session)
    o = session.get(Order, order.id)
    assert o.status == "needs_attention" and "paid 1 EUR" in o.attention_reason
    assert "fulfil_order" not in [j[0] for j in queued_jobs]
    assert session.exec(select(Alert)).one().subject == f"order:{order.number}"


@pytest.mark.parametrize(
    "kind, final", [("charge.refunded", "refunded"), ("charge.dispute.created", "disputed")]
)
def test_refund_and_dispute_take_unrevealed_keys_back(session, queued_jobs, kind, final):
    product = make_product(session)
    order = make_order(session, [(product, 3)], status="fulfilled", payment_reference="pi_test_77")
    [line] = order_lines(session, order)
    stock_kept, stock_revealed, bought = make_keys(
        session, product, 3, status="delivered", order_line_id=line.id, delivered_at=utcnow()
    )
    stock_revealed.revealed_at = utcnow()
    bought.provider_purchase_id = None
    session.add(stock_revealed)
    session.commit()
    # the third key came from a provider purchase
    from core.models import ProviderPurchase

    purchase = ProviderPurchase(
        order_line_id=line.id, provider="kinguin", reference="ref-1", quantity=1, status="completed"
    )
    session.add(purchase)
    session.commit()
    bought.provider_purchase_id = purchase.id
    session.add(bought)
    session.commit()

    send_test_event(order_number=order.number, kind=kind)
    outcome = _process_all(queued_jobs)
    assert outcome[0].startswith(f"order {order.number} {final}")
    fresh(session)
    assert session.get(Order, order.id).status == final
    status = {k.id: (k.status, k.status_note) for k in session.exec(select(Key))}
    assert status[stock_kept.id][0] == "available"
    assert status[bought.id][0] == "revoked"
    assert (
        status[stock_revealed.id][0] == "delivered"
        and "revealed before" in status[stock_revealed.id][1]
    )
    assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "key.revoke")).all()) == 2
    assert session.exec(select(Alert)).one().severity == "error"
    # delivered again (Stripe retries): nothing more happens
    before = session.exec(select(OrderEvent)).all()
    assert _process_all(queued_jobs)[0].startswith("already processed")
    assert len(session.exec(select(OrderEvent)).all()) == len(before)


def _charge_refunded(order, event_id, amount_refunded, *, amount=None):
    amount = order.total_minor if amount is None else amount
    return _event(
        order,
        "charge.refunded",
        id="ch_test_1",
        object="charge",
        payment_intent=order.payment_reference,
        amount=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        metadata={"order_number": order.number},
    ).replace(f"evt_{order.number}_charge.refunded".encode(), event_id.encode())


def test_a_partial_refund_is_recorded_on_the_order_and_its_keys_stay(session, queued_jobs):
    """Stripe's charge.refunded carries what was refunded so far (``amount_refunded``);
    a partial refund is recorded on the order (reports and exports count it), keys and
    status stay, and an operator is told the amount. Events in any order, or twice,
    record the largest amount once."""
    product = make_product(session, price_minor=2000)
    order = make_order(session, [(product, 1)], status="fulfilled", payment_reference="pi_p_1")
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    _deliver(_charge_refunded(order, "evt_partial_1", 500))
    assert _process_all(queued_jobs) == [f"partial refund of 5.00 EUR on {order.number} recorded"]
    o = fresh(session).get(Order, order.id)
    assert (o.status, o.refunded_minor) == ("fulfilled", 500)
    assert session.get(Key, key.id).status == "delivered"
    [alert] = session.exec(select(Alert)).all()
    assert "5.00 EUR of 20.00 EUR refunded" in alert.message
    [event] = session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
    assert event.reason == "partial refund ch_test_1" and event.data["refunded_minor"] == 500
    # a second partial refund (800 so far), then the first event's late redelivery
    queued_jobs.clear()
    _deliver(_charge_refunded(order, "evt_partial_2", 800))
    _deliver(_charge_refunded(order, "evt_partial_1b", 500))
    outcomes = _process_all(queued_jobs)
    assert outcomes[1] == f"partial refund on {order.number}: 5.00 EUR so far, already recorded"
    assert fresh(session).get(Order, order.id).refunded_minor == 800
    # the rest refunded: the whole order is refunded, as before
    queued_jobs.clear()
    _deliver(_charge_refunded(order, "evt_full", 2000))
    assert _process_all(queued_jobs)[0].startswith(f"order {order.number} refunded")
    o = fresh(session).get(Order, order.id)
    assert (o.status, o.refunded_minor) == ("refunded", 2000)


def test_a_partial_refund_in_another_currency_changes_nothing_but_is_told(session, queued_jobs):
    product = make_product(session, price_minor=2000)
    order = make_order(session, [(product, 1)], status="fulfilled", payment_reference="pi_p_2")
    body = _charge_refunded(order, "evt_usd", 500).replace(b'"eur"', b'"usd"')
    _deliver(body)
    assert "not recorded" in _process_all(queued_jobs)[0]
    assert fresh(session).get(Order, order.id).refunded_minor == 0
    assert "USD" in session.exec(select(Alert)).one().message
