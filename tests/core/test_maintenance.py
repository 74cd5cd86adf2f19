"""Scheduled upkeep: reconciliation, expiry of unpaid orders, stock and balance alerts."""

from datetime import timedelta

from sqlmodel import select

from core.models import Alert, Order, ProviderPurchase, utcnow
from core.services.maintenance import (
    balance_alerts,
    expire_unpaid_orders,
    low_stock_alerts,
    reconcile,
)
from tests.factories import fresh, make_keys, make_order, make_product, order_lines


def test_reconcile_requeues_stale_paid_orders_and_escalates_overdue_ones(session, queued_jobs):
    product = make_product(session)
    now = utcnow()
    fresh_order = make_order(session, [(product, 1)], paid_at=now)
    stale = make_order(session, [(product, 1)], paid_at=now - timedelta(minutes=5))
    overdue = make_order(session, [(product, 1)], paid_at=now - timedelta(hours=2))
    held = make_order(
        session,
        [(product, 1)],
        paid_at=now - timedelta(minutes=5),
        fulfilment_lease_until=now + timedelta(minutes=1),
    )
    waiting = make_order(session, [(product, 1)], paid_at=now - timedelta(hours=2))
    [line] = order_lines(session, waiting)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="kinguin",
            reference="pre-1",
            quantity=1,
            status="pending",
            updated_at=now,
        )
    )
    session.commit()
    report = reconcile(now=now)
    assert sorted(report.requeued) == sorted([stale.id, waiting.id])
    assert report.to_attention == [overdue.id]
    assert {args[0] for name, args, _ in queued_jobs if name == "fulfil_order"} == {
        stale.id,
        waiting.id,
    }
    fresh(session)
    assert session.get(Order, overdue.id).status == "needs_attention"
    assert "still not fulfilled" in session.get(Order, overdue.id).attention_reason
    assert session.get(Order, fresh_order.id).status == session.get(Order, held.id).status == "paid"
    assert session.exec(select(Alert)).one().subject == f"order:{overdue.number}"


def test_unknown_purchases_are_handed_back_to_fulfilment(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="needs_attention", attention_reason="x")
    [line] = order_lines(session, order)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="codeswholesale",
            reference="u-1",
            quantity=1,
            status="unknown",
            updated_at=utcnow() - timedelta(minutes=10),
        )
    )
    session.commit()
    assert reconcile().requeued == [order.id]


def test_unpaid_orders_expire_and_paid_ones_stay(session):
    product = make_product(session)
    old = make_order(
        session, [(product, 1)], status="pending_payment", created_at=utcnow() - timedelta(hours=3)
    )
    recent = make_order(session, [(product, 1)], status="pending_payment")
    paid = make_order(
        session, [(product, 1)], status="paid", created_at=utcnow() - timedelta(hours=3)
    )
    assert expire_unpaid_orders() == [old.id]
    fresh(session)
    assert [session.get(Order, o.id).status for o in (old, recent, paid)] == [
        "cancelled",
        "pending_payment",
        "paid",
    ]


def test_low_stock_raises_one_alert_per_product(session):
    low = make_product(session, title="Low Game", low_stock_threshold=5)
    make_keys(session, low, 2)
    fine = make_product(session, low_stock_threshold=1)
    make_keys(session, fine, 3)
    assert low_stock_alerts() == 1
    assert low_stock_alerts() == 1
    alerts = fresh(session).exec(select(Alert)).all()
    assert [(a.kind, a.subject) for a in alerts] == [("low_stock", f"product:{low.id}")]
    assert "2 keys left" in alerts[0].message


def test_balance_forecast_warns_before_the_money_runs_out(session, providers, sim_server):
    product = make_product(session)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    # 600.00 spent at Kinguin in the last day = 25.00 an hour; 1000.00 covers 40 hours
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="kinguin",
            reference="spend-1",
            quantity=100,
            unit_cost_minor=600,
            status="completed",
            updated_at=utcnow(),
        )
    )
    session.commit()
    checks = {c.provider: c for c in balance_alerts(clients=providers)}
    assert checks["kinguin"].hours_left == 40.0 and checks["kinguin"].alert is None
    sim_server.control("kinguin", balance="300.00")  # 12 hours left
    checks = {c.provider: c for c in balance_alerts(clients=providers)}
    assert "covers about 12.0 hours" in checks["kinguin"].alert
    sim_server.control("codeswholesale", balance="20.00")  # under the 100.00 floor
    checks = {c.provider: c for c in balance_alerts(clients=providers)}
    assert "below the floor" in checks["codeswholesale"].alert
    kinds = {(a.kind, a.subject) for a in fresh(session).exec(select(Alert))}
    assert kinds == {
        ("low_balance", "provider:kinguin"),
        ("low_balance", "provider:codeswholesale"),
    }


def test_the_periodic_stock_flag_refresh_takes_a_sold_out_product_out_of_the_listing(session):
    """The scheduler's minute task: a claim that took the last key left the product
    listed as in stock; the refresh corrects it, and a second run changes nothing."""
    from core.services import inventory
    from core.services.catalogue import search_products
    from core.services.maintenance import refresh_stock_flags

    product = make_product(session, slug="sold-out-soon")
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=line.id)
    session.commit()
    assert [h.slug for h in search_products(session=session, in_stock=True).items] == [
        "sold-out-soon"
    ]
    assert refresh_stock_flags() == 1
    fresh(session)
    assert search_products(session=session, in_stock=True).items == []
    assert refresh_stock_flags() == 0
