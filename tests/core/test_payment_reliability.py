"""Payment events that must never be lost or mis-applied (issue #10, items 1, 2, 4, 5):
the stored webhook is the source of truth, a refund wins every race, the amount is
always proven, hostile bodies are refused and rejected deliveries stay small."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from core import jobs
from core.models import Alert, Key, Order, WebhookEvent, utcnow
from core.services import maintenance
from core.services.notifications import order_access_token
from core.services.payments import webhook_secret
from core.services.portal import reveal_order_key
from core.services.test_payments import build_test_event, sign_stripe_payload
from core.services.webhooks import WebhookRejected, process_webhook, receive_webhook
from tests.factories import fresh, make_keys, make_order, make_product, order_lines
from tests.race_condition import Competitor, race_condition
from tests.support.pg import wait_for_lock_wait


def _deliver(body: bytes):
    header = sign_stripe_payload(body, webhook_secret())
    return receive_webhook(
        source="stripe", headers={"Stripe-Signature": header}, body=body, remote_addr="127.0.0.1"
    )


def _paid_event(order, **overrides) -> bytes:
    event = json.loads(build_test_event(order))
    event["data"]["object"].update(overrides)
    for key in [k for k, v in overrides.items() if v is _DROP]:
        del event["data"]["object"][key]
    return json.dumps(event).encode()


_DROP = object()


def _queue_is_down(name, args, kwargs):
    raise ConnectionError("the queue is unreachable")


# -- 1. the stored webhook is the source of truth ------------------------------------------------


def test_a_payment_stored_while_the_queue_is_down_is_processed_by_reconciliation(
    session, queued_jobs
):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    jobs.set_dispatcher(_queue_is_down)
    try:
        receipt = _deliver(build_test_event(order))
    finally:
        jobs.set_dispatcher(None)
    assert receipt.status == 200 and not receipt.duplicate
    stored = session.exec(select(WebhookEvent)).one()
    assert stored.processed_at is None and queued_jobs == []

    # Too young to be called lost: a worker may be about to take it.
    maintenance.reconcile()
    assert queued_jobs == []
    later = utcnow() + timedelta(minutes=5)
    report = maintenance.reconcile(now=later)
    assert report.webhooks == [stored.id]
    assert [j[:2] for j in queued_jobs] == [("process_webhook", (stored.id,))]
    assert process_webhook(webhook_id=stored.id) == f"order {order.number} paid"
    assert fresh(session).get(Order, order.id).status == "paid"


def test_a_redelivery_of_an_event_never_processed_is_processed_not_refused(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = build_test_event(order)
    jobs.set_dispatcher(_queue_is_down)
    try:
        _deliver(body)
    finally:
        jobs.set_dispatcher(None)
    stored = session.exec(select(WebhookEvent)).one()
    again = _deliver(body)  # Stripe retries: the first copy was never acted on
    assert again.status == 200 and again.duplicate
    assert [j[:2] for j in queued_jobs] == [("process_webhook", (stored.id,))]
    process_webhook(webhook_id=stored.id)
    # once processed, a further copy is a plain duplicate and queues nothing
    queued_jobs.clear()
    assert _deliver(body).duplicate and queued_jobs == []
    assert fresh(session).get(Order, order.id).status == "paid"


def test_expiry_never_cancels_an_order_whose_payment_is_stored_but_unprocessed(
    session, queued_jobs
):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    plain = make_order(session, [(product, 1)], status="pending_payment")
    jobs.set_dispatcher(_queue_is_down)
    try:
        _deliver(build_test_event(order))
    finally:
        jobs.set_dispatcher(None)
    later = utcnow() + timedelta(days=1)
    expired = maintenance.expire_unpaid_orders(now=later)
    assert expired == [plain.id]
    fresh(session)
    assert session.get(Order, order.id).status == "pending_payment"
    assert session.get(Order, plain.id).status == "cancelled"


def test_expiry_never_cancels_an_order_with_a_payment_record(session, queued_jobs):
    product = make_product(session)
    order = make_order(
        session, [(product, 1)], status="pending_payment", payment_reference="pi_seen"
    )
    assert maintenance.expire_unpaid_orders(now=utcnow() + timedelta(days=1)) == []
    assert fresh(session).get(Order, order.id).status == "pending_payment"


def test_a_webhook_that_keeps_failing_raises_an_alert(session, queued_jobs, monkeypatch):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    jobs.set_dispatcher(_queue_is_down)
    try:
        _deliver(build_test_event(order))
    finally:
        jobs.set_dispatcher(None)
    stored = session.exec(select(WebhookEvent)).one()
    now = utcnow()
    for attempt in range(1, 7):
        maintenance.reconcile(now=now + timedelta(hours=attempt))
    fresh(session)
    row = session.get(WebhookEvent, stored.id)
    assert row.redeliveries == 6
    alert = session.exec(select(Alert).where(Alert.kind == "needs_attention")).one()
    assert f"webhook {stored.id}" in alert.message and "stripe" in alert.message


# -- 2. a refund is never thrown away --------------------------------------------------------------


@pytest.mark.postgres_only
def test_a_refund_racing_a_reveal_still_refunds_flags_and_alerts(engine, session, queued_jobs):
    product = make_product(session)
    order = make_order(
        session,
        [(product, 2)],
        status="fulfilled",
        payment_reference="pi_test_race",
        delivery_consent_at=utcnow(),
    )
    [line] = order_lines(session, order)
    shown, kept = make_keys(
        session, product, 2, status="delivered", order_line_id=line.id, delivered_at=utcnow()
    )
    reached, go = threading.Event(), threading.Event()

    def hold_the_key_lock(*args, **kwargs):
        reached.set()  # the reveal has locked the key and set revealed_at, not committed
        assert go.wait(20)

    with race_condition("core.services.portal.reveal_key", after=hold_the_key_lock):
        reveal = Competitor(
            lambda: reveal_order_key(
                number=order.number,
                key_id=str(shown.id),
                access_token=order_access_token(order.number),
            ),
            name="reveal",
        )
        reveal.start()
        assert reached.wait(20)
        body = json.loads(build_test_event(order, kind="charge.refunded"))
        receipt = _deliver(json.dumps(body).encode())
        refund = Competitor(lambda: process_webhook(webhook_id=receipt.webhook_id), name="refund")
        refund.start()
        wait_for_lock_wait(engine, gave_up=refund.finished.is_set)
        go.set()
        assert reveal.join(20) and refund.join(20)
    assert reveal.error is None, reveal.error
    assert refund.error is None, refund.error
    assert refund.result.startswith(f"order {order.number} refunded"), refund.result
    fresh(session)
    assert session.get(Order, order.id).status == "refunded"
    keys = {k.id: k for k in session.exec(select(Key))}
    assert keys[shown.id].status == "delivered" and "revealed before" in keys[shown.id].status_note
    assert keys[kept.id].status == "available"
    assert session.exec(select(Alert)).one().severity == "error"


# -- 4. the amount is always checked ----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, said",
    [
        ({"amount_total": None}, "did not state the amount"),
        ({"amount_total": _DROP}, "did not state the amount"),
        ({"currency": None}, "did not state the amount"),
        ({"amount_total": "1999"}, "did not state the amount"),
        ({"amount_total": 1}, "paid 1 EUR"),
        ({"currency": "usd"}, "USD"),
    ],
)
def test_a_payment_that_does_not_prove_the_amount_needs_attention(
    session, queued_jobs, overrides, said
):
    product = make_product(session, price_minor=1999)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    _deliver(_paid_event(order, **overrides))
    [(_name, args, _)] = queued_jobs
    outcome = process_webhook(webhook_id=args[0])
    assert "needs attention" in outcome
    fresh(session)
    stored = session.get(Order, order.id)
    assert stored.status == "needs_attention" and said in stored.attention_reason
    assert "fulfil_order" not in [j[0] for j in queued_jobs]


def test_a_payment_intent_without_amount_received_needs_attention(session, queued_jobs):
    product = make_product(session, price_minor=500)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = json.dumps(
        {
            "id": "evt_pi_1",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": "pi_1",
                    "object": "payment_intent",
                    "metadata": {"order_number": order.number},
                    "currency": "eur",
                }
            },
        }
    ).encode()
    _deliver(body)
    process_webhook(webhook_id=queued_jobs[0][1][0])
    assert fresh(session).get(Order, order.id).status == "needs_attention"


# -- 5. hostile bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["stripe", "kinguin", "codeswholesale"])
def test_deeply_nested_json_is_a_400_not_a_crash(session, source):
    from core.config import get_settings
    from core.providers.registry import kinguin_webhook_secret

    body = b"[" * 100_000 + b"]" * 100_000
    headers = {
        "Stripe-Signature": sign_stripe_payload(body, webhook_secret()),
        "X-Event-Secret": kinguin_webhook_secret(get_settings()),
        "X-Event-Name": "order.status",
    }
    with pytest.raises(WebhookRejected) as info:
        receive_webhook(source=source, headers=headers, body=body)
    assert info.value.http_status == 400
    assert session.exec(select(WebhookEvent)).all() == []


def test_a_forged_delivery_keeps_a_bounded_prefix_and_its_digest(session, test_settings):
    body = b'{"id": "evt_forged", "type": "x", "pad": "' + b"A" * 60_000 + b'"}'
    with pytest.raises(WebhookRejected):
        receive_webhook(
            source="stripe",
            headers={"Stripe-Signature": "t=1,v1=00"},
            body=body,
            remote_addr="203.0.113.9",
        )
    row = session.exec(select(WebhookEvent)).one()
    assert not row.authenticated
    assert len(row.raw_body) <= 1024
    assert row.body_sha256 == hashlib.sha256(body).hexdigest()
    assert row.body_size == len(body)


def test_rejected_deliveries_are_purged_after_their_age_and_counted(session):
    from core.services.webhooks import purge_rejected_webhooks, rejection_counts

    for _ in range(3):
        with pytest.raises(WebhookRejected):
            receive_webhook(source="stripe", headers={"Stripe-Signature": "t=1,v1=00"}, body=b"{}")
    with pytest.raises(WebhookRejected):
        receive_webhook(source="kinguin", headers={}, body=b"{}")
    assert rejection_counts(session=session, since=utcnow() - timedelta(hours=1)) == {
        "kinguin": 1,
        "stripe": 3,
    }
    assert purge_rejected_webhooks() == 0  # too young
    assert purge_rejected_webhooks(now=utcnow() + timedelta(days=31)) == 4
    fresh(session)
    assert session.exec(select(WebhookEvent)).all() == []
