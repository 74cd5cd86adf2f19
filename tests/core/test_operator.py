"""Operator actions on orders needing attention: each takes effect and is audited."""

from sqlmodel import select

from core.models import AuditEvent, Key, Order
from core.services.audit import Actor
from core.services.operator import (
    assign_from_stock,
    buy_from_provider,
    cancel_order,
    refund_order,
    replace_faulty_key,
    retry_fulfilment,
)
from core.services.webhooks import process_webhook
from tests.core.test_fulfilment import offer
from tests.factories import fresh, make_keys, make_order, make_product, order_lines

ALICE = Actor.operator("alice")


def audit(session, action):
    return fresh(session).exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def attention_order(session, product, qty=2, **kw):
    return make_order(session, [(product, qty)], status="needs_attention", attention_reason="no stock", **kw)


def test_retry_goes_back_to_paid_and_queues_fulfilment(session, queued_jobs):
    order = attention_order(session, make_product(session))
    retry_fulfilment(order_id=order.id, actor=ALICE)
    assert fresh(session).get(Order, order.id).status == "paid"
    assert ("fulfil_order", (order.id,), {}) in queued_jobs
    assert [a.actor_id for a in audit(session, "order.transition")] == ["alice"]


def test_assign_from_stock_completes_the_order(session, queued_jobs):
    product = make_product(session)
    order = attention_order(session, product)
    make_keys(session, product, 2)
    assert assign_from_stock(session=session, order_id=order.id, actor=ALICE) == 2
    session.commit()
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert len(audit(session, "key.assign")) == 2


def test_buy_from_a_chosen_provider_even_below_margin(session, providers, sim_server, queued_jobs, monkeypatch):
    import core.services.fulfilment as fulfilment

    product = make_product(session, price_minor=1000)
    offer(session, sim_server, product, "kinguin", cost="9.95")  # 0.5% margin: refused automatically
    order = attention_order(session, product, qty=1)
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)
    result = buy_from_provider(order_id=order.id, provider="kinguin", actor=ALICE, ignore_margin=True)
    assert result.outcome == "fulfilled", result.detail
    assert len(sim_server.orders("kinguin")) == 1
    assert audit(session, "order.buy_from_provider")[0].data == {"provider": "kinguin", "ignore_margin": True}


def test_refund_through_the_test_payments_takes_keys_back(session, queued_jobs):
    product = make_product(session)
    order = attention_order(session, product, payment_reference="pi_test_5")
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    refund_order(order_id=order.id, actor=ALICE, reason="customer asked")
    for name, args, _ in list(queued_jobs):
        if name == "process_webhook":
            process_webhook(webhook_id=args[0])
    assert fresh(session).get(Order, order.id).status == "refunded"
    assert session.get(Key, key.id).status == "available"
    assert audit(session, "order.refund")[0].data["reason"] == "customer asked"


def test_cancel_takes_keys_back_and_is_audited(session, queued_jobs):
    product = make_product(session)
    order = attention_order(session, product)
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    cancel_order(session=session, order_id=order.id, actor=ALICE, reason="fraud suspected")
    session.commit()
    assert fresh(session).get(Order, order.id).status == "cancelled"
    assert session.get(Key, key.id).status == "available"
    assert {a.action for a in audit(session, "key.revoke")} == {"key.revoke"}


def test_replace_a_faulty_key_from_stock(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="fulfilled")
    [line] = order_lines(session, order)
    [bad] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    make_keys(session, product, 1)
    new = replace_faulty_key(session=session, key_id=bad.id, actor=ALICE, reason="already redeemed")
    session.commit()
    fresh(session)
    assert session.get(Key, bad.id).status == "faulty"
    assert session.get(Key, new.id).status == "delivered" and session.get(Key, new.id).order_line_id == line.id
    assert audit(session, "key.faulty") and audit(session, "key.assign")
