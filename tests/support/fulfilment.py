"""Fulfilment fixtures shared by the core, operator and console tests: provider offers
at the simulator, orders in front of an operator, purchases of unknown outcome."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select

from core.models import Key, ProviderOffer, ProviderPurchase
from core.services.fulfilment import Retry
from tests.factories import fresh, make_order, make_product, order_lines

NO_WAIT = Retry(attempts=3, base_seconds=0.01, sleep=lambda s: None)


def offer(session, sim, product, provider, *, cost="5.00", stock=50, **sim_fields):
    """A product at the simulated provider, and our synced, mapped offer for it."""
    made = sim.add_product(provider, name=product.title, price=cost, stock=stock, **sim_fields)
    external_id = made["external_id"]
    row = ProviderOffer(
        provider=provider,
        external_id=str(external_id),
        product_id=product.id,
        name=product.title,
        cost_minor=int(Decimal(cost) * 100),
        currency="EUR",
        stock=stock,
    )
    session.add(row)
    session.commit()
    return row


def keys_of(session, order):
    """The keys delivered to ``order``."""
    fresh(session)
    line_ids = [ln.id for ln in order_lines(session, order)]
    return session.exec(
        select(Key).where(Key.order_line_id.in_(line_ids), Key.status == "delivered")
    ).all()


def attention_order(session, product, qty=2, **kw):
    """An order in ``needs_attention`` for ``qty`` of ``product``."""
    return make_order(
        session, [(product, qty)], status="needs_attention", attention_reason="no stock", **kw
    )


def unknown_order(session, sim_server, *, qty=1, reference="ks-lost-1"):
    """An order in front of an operator with a CodesWholesale purchase of unknown outcome."""
    product = make_product(session)
    cw = offer(session, sim_server, product, "codeswholesale")
    offer(session, sim_server, product, "kinguin")
    order = attention_order(session, product, qty=qty)
    [line] = order_lines(session, order)
    purchase = ProviderPurchase(
        order_line_id=line.id,
        provider="codeswholesale",
        reference=reference,
        offer_id=cw.id,
        quantity=qty,
        unit_cost_minor=500,
        status="unknown",
        attempts=1,
        error="outcome unknown: order history failed",
    )
    session.add(purchase)
    session.commit()
    return order, purchase, cw
