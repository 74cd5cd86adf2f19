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
from tests.factories import fresh, make_keys, make_order, make_product, order_lines
from tests.support.fulfilment import attention_order, offer, unknown_order

ALICE = Actor.operator("alice")


def audit(session, action):
    return fresh(session).exec(select(AuditEvent).where(AuditEvent.action == action)).all()


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
    assert assign_from_stock(order_id=order.id, actor=ALICE) == 2
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert len(audit(session, "key.assign")) == 2


def test_buy_from_a_chosen_provider_even_below_margin(
    session, providers, sim_server, queued_jobs, monkeypatch
):
    import core.services.fulfilment as fulfilment

    product = make_product(session, price_minor=1000)
    offer(
        session, sim_server, product, "kinguin", cost="9.95"
    )  # 0.5% margin: refused automatically
    order = attention_order(session, product, qty=1)
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)
    result = buy_from_provider(
        order_id=order.id, provider="kinguin", actor=ALICE, ignore_margin=True
    )
    assert result.outcome == "fulfilled", result.detail
    assert len(sim_server.orders("kinguin")) == 1
    assert audit(session, "order.buy_from_provider")[0].data == {
        "provider": "kinguin",
        "ignore_margin": True,
    }


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
    cancel_order(order_id=order.id, actor=ALICE, reason="fraud suspected")
    assert fresh(session).get(Order, order.id).status == "cancelled"
    assert session.get(Key, key.id).status == "available"
    assert {a.action for a in audit(session, "key.revoke")} == {"key.revoke"}


def test_replace_a_faulty_key_from_stock(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="fulfilled")
    [line] = order_lines(session, order)
    [bad] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    make_keys(session, product, 1)
    new = replace_faulty_key(key_id=bad.id, actor=ALICE, reason="already redeemed")
    fresh(session)
    assert session.get(Key, bad.id).status == "faulty"
    assert (
        session.get(Key, new.id).status == "delivered"
        and session.get(Key, new.id).order_line_id == line.id
    )
    assert audit(session, "key.faulty") and audit(session, "key.assign")


# -- purchases whose outcome is unknown --------------------------------------------------------


def test_unknown_purchases_are_shown_with_the_two_actions(session, sim_server, queued_jobs):
    from core.services.operator import PURCHASE_ACTIONS, unknown_purchases

    order, purchase, _ = unknown_order(session, sim_server, qty=2)
    [shown] = unknown_purchases(session=session, order_id=order.id)
    assert (shown.id, shown.reference, shown.quantity, shown.keys_stored) == (
        purchase.id,
        "ks-lost-1",
        2,
        0,
    )
    assert "order history failed" in shown.error
    assert shown.actions == PURCHASE_ACTIONS
    assert PURCHASE_ACTIONS[0] == "confirm not charged, send again"
    assert PURCHASE_ACTIONS[1].startswith("bought: enter the keys")


def test_confirm_not_charged_sends_again_under_the_same_reference(
    session, providers, sim_server, queued_jobs, monkeypatch
):
    import core.services.fulfilment as fulfilment
    from core.models import ProviderPurchase
    from core.services.operator import resend_purchase

    _order, purchase, _ = unknown_order(session, sim_server)
    monkeypatch.setattr(fulfilment, "provider_clients", lambda settings=None: providers)
    result = resend_purchase(purchase_id=purchase.id, actor=ALICE)
    assert result.outcome == "fulfilled"
    [placed] = sim_server.orders("codeswholesale")
    assert placed["reference"] == "ks-lost-1"
    assert sim_server.orders("kinguin") == []
    assert fresh(session).get(ProviderPurchase, purchase.id).status == "completed"
    [event] = audit(session, "purchase.resend")
    assert event.actor_id == "alice" and event.object_id == "ks-lost-1"


def test_bought_enter_the_keys(session, sim_server, queued_jobs):
    from core import crypto
    from core.errors import InvalidInput
    from core.models import ProviderPurchase
    from core.services.operator import enter_purchase_keys

    order, purchase, _ = unknown_order(session, sim_server, qty=2)
    for bad in ("ONLY-ONE-KEY", "SAME-KEY-1 SAME-KEY-1", "A-1 B-2 C-3", ""):
        try:
            enter_purchase_keys(purchase_id=purchase.id, codes=bad, actor=ALICE)
        except InvalidInput:
            pass
        else:
            raise AssertionError(f"{bad!r} was accepted")
    assert fresh(session).get(Order, order.id).status == "needs_attention"
    assert session.exec(select(Key)).all() == [] and audit(session, "purchase.keys_entered") == []
    assert (
        enter_purchase_keys(
            purchase_id=purchase.id,
            codes="KEY-AAAA-1111,\nKEY-BBBB-2222",
            actor=ALICE,
            provider_order_id="cw-123",
        )
        == 2
    )
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    stored = fresh(session).get(ProviderPurchase, purchase.id)
    assert (stored.status, stored.provider_order_id) == ("completed", "cw-123")
    vault = crypto.get_vault()
    keys = session.exec(select(Key).where(Key.provider_purchase_id == purchase.id)).all()
    assert sorted(
        vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode() for k in keys
    ) == ["KEY-AAAA-1111", "KEY-BBBB-2222"]
    assert {k.status for k in keys} == {"delivered"}
    [event] = audit(session, "purchase.keys_entered")
    assert event.actor_id == "alice" and "KEY-AAAA" not in str(event.data)
    assert ("send_order_email", (order.id, "delivered"), {}) in queued_jobs
    # settled: a second entry is refused
    try:
        enter_purchase_keys(purchase_id=purchase.id, codes="KEY-C KEY-D", actor=ALICE)
    except InvalidInput:
        pass
    else:
        raise AssertionError("entered twice")


def test_bought_fetch_by_provider_order_id(session, providers, sim_server, queued_jobs):
    from core.errors import InvalidInput
    from core.models import ProviderPurchase
    from core.services.operator import fetch_purchase_by_provider_order

    order, purchase, cw = unknown_order(session, sim_server, qty=2)
    # the provider took the order; its answer was lost
    placed = providers["codeswholesale"].purchase(
        reference="ks-lost-1",
        external_id=cw.external_id,
        quantity=2,
        max_unit_cost_minor=500,
        currency="EUR",
        allow_preorder=False,
    )
    try:
        fetch_purchase_by_provider_order(
            purchase_id=purchase.id, provider_order_id="  ", actor=ALICE, clients=providers
        )
    except InvalidInput:
        pass
    else:
        raise AssertionError("an empty order id was accepted")
    stored = fetch_purchase_by_provider_order(
        purchase_id=purchase.id,
        provider_order_id=placed.provider_order_id,
        actor=ALICE,
        clients=providers,
    )
    assert stored == 2
    assert fresh(session).get(Order, order.id).status == "fulfilled"
    assert session.get(ProviderPurchase, purchase.id).provider_order_id == placed.provider_order_id
    [event] = audit(session, "purchase.fetched")
    assert event.data["provider_order_id"] == placed.provider_order_id
    assert len(sim_server.orders("codeswholesale")) == 1 and sim_server.orders("kinguin") == []


def test_fetch_refuses_another_purchases_order(session, providers, sim_server, queued_jobs):
    from core.errors import InvalidInput
    from core.models import ProviderPurchase
    from core.services.operator import fetch_purchase_by_provider_order

    order, purchase, _cw = unknown_order(session, sim_server)
    other = make_order(session, [(make_product(session), 1)], status="fulfilled")
    [line] = order_lines(session, other)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="codeswholesale",
            reference="ks-other",
            provider_order_id="cw-taken",
            quantity=1,
            status="completed",
        )
    )
    session.commit()
    try:
        fetch_purchase_by_provider_order(
            purchase_id=purchase.id, provider_order_id="cw-taken", actor=ALICE, clients=providers
        )
    except InvalidInput as exc:
        assert "ks-other" in str(exc)
    else:
        raise AssertionError("another purchase's order was accepted")
    assert fresh(session).get(Order, order.id).status == "needs_attention"
