"""Reading what a real worker did: an order's status and delivered keys."""

from __future__ import annotations

from sqlmodel import select

from core.models import Key, Order, OrderLine
from tests.factories import fresh


def delivered(session, order):
    fresh(session)
    return session.exec(
        select(Key)
        .join(OrderLine, Key.order_line_id == OrderLine.id)
        .where(OrderLine.order_id == order.id, Key.status == "delivered")
    ).all()


def status_of(session, order):
    return fresh(session).get(Order, order.id).status
