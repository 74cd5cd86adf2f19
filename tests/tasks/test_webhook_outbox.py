"""The stored payment webhook is the source of truth, through real consumer processes
(Redis on the PostgreSQL pass): a payment whose hand-over to the queue was lost, or
whose worker was killed while acting on it, still ends with the keys delivered."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from core import jobs
from core.models import Order, WebhookEvent, utcnow
from core.services import maintenance
from core.services.test_payments import send_test_event
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.pg import wait_for_lock_wait
from tests.support.waiting import wait_for
from tests.support.worker import delivered, status_of


def _unprocessed(session) -> list[WebhookEvent]:
    fresh(session)
    return list(session.exec(select(WebhookEvent).where(WebhookEvent.processed_at.is_(None))))


def test_a_payment_stored_while_the_queue_was_down_is_delivered_by_reconciliation(session, queue):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    queue.start_worker()
    real = jobs._dispatcher

    def queue_down(name, args, kwargs):
        raise ConnectionError("Error 111 connecting to the queue. Connection refused.")

    jobs.set_dispatcher(queue_down)
    try:
        assert send_test_event(order_number=order.number).status == 200
    finally:
        jobs.set_dispatcher(real)
    [stored] = _unprocessed(session)
    # Expiry must not cancel it meanwhile, however late it runs.
    assert maintenance.expire_unpaid_orders(now=utcnow() + timedelta(days=2)) == []
    report = maintenance.reconcile(now=utcnow() + timedelta(minutes=5))  # the periodic task
    assert report.webhooks == [stored.id]
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    assert len(delivered(session, order)) == 1
    assert _unprocessed(session) == []


@pytest.mark.postgres_only
def test_a_worker_killed_while_acting_on_a_payment_leaves_it_for_reconciliation(
    engine, session, queue
):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    first = queue.start_worker()
    queue.wait_warm()
    with engine.connect() as holder:
        tx = holder.begin()
        holder.execute(text("SELECT id FROM orders WHERE id = :id FOR UPDATE"), {"id": order.id})
        send_test_event(order_number=order.number)
        # the worker is acting on it, waiting for the order row this connection holds
        wait_for_lock_wait(
            engine, blocked_by=holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        tx.rollback()
    [stored] = _unprocessed(session)
    assert stored.authenticated and status_of(session, order) == "pending_payment"
    assert maintenance.expire_unpaid_orders(now=utcnow() + timedelta(days=2)) == []
    queue.start_worker()
    report = maintenance.reconcile(now=utcnow() + timedelta(minutes=5))
    assert report.webhooks == [stored.id]
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    assert len(delivered(session, order)) == 1
    assert fresh(session).get(Order, order.id).payment_reference.startswith("pi_test_")


def test_the_redelivered_event_is_acted_on_when_its_first_copy_never_was(session, queue):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    queue.start_worker()
    from core.services.payments import webhook_secret
    from core.services.test_payments import build_test_event, sign_stripe_payload
    from core.services.webhooks import receive_webhook

    body = build_test_event(order)
    headers = {"Stripe-Signature": sign_stripe_payload(body, webhook_secret())}
    real = jobs._dispatcher

    def queue_down(name, args, kwargs):
        raise ConnectionError("the queue is unreachable")

    jobs.set_dispatcher(queue_down)
    try:
        receive_webhook(source="stripe", headers=headers, body=body)
    finally:
        jobs.set_dispatcher(real)
    again = receive_webhook(source="stripe", headers=headers, body=body)  # Stripe retries
    assert again.duplicate and again.webhook_id is not None
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
