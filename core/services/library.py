""" "My keys": every key delivered to a customer's orders, across orders, newest first.

The library lists keys as the portal does, masked (:class:`KeyView` rules: never the
code); a key is shown again through :func:`core.services.portal.reveal_order_key`, which
checks ownership, asks for the order's delivery consent and audits each reveal. Which
orders are the customer's is the portal's rule: ``Order.customer_id`` (orders placed
signed in, and guest orders with a verified address, core.services.accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import col, select

from core.db import session_scope
from core.errors import InvalidInput
from core.models import Key, KeyStatus, Order, OrderLine
from core.services.portal import IMAGE_MASK, TEXT_MASK
from core.services.storefront import activation_url

LIBRARY_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class LibraryKey:
    key_id: str
    order_number: str
    title: str
    platform: str
    region: str
    kind: str
    status: str  # delivered | faulty | revoked
    masked: str
    revealed: bool
    delivered_at: datetime | None
    activation_url: str | None
    consent_given: bool  # the order's delivery consent (needed to reveal)

    @property
    def can_reveal(self) -> bool:
        return self.status == KeyStatus.DELIVERED


def key_library(*, customer_id: int, limit: int = LIBRARY_MAX) -> list[LibraryKey]:
    """The customer's keys (delivered, and the faulty or revoked ones with their
    status), newest delivery first. One read-only query."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise InvalidInput("unknown customer", field="customer_id")
    shown = (KeyStatus.DELIVERED, KeyStatus.FAULTY, KeyStatus.REVOKED)
    with session_scope(write=False) as session:
        rows = session.exec(
            select(Key, OrderLine, Order)
            .join(OrderLine, col(OrderLine.id) == col(Key.order_line_id))
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(col(Order.customer_id) == customer_id, col(Key.status).in_(shown))
            .order_by(col(Key.delivered_at).desc(), col(Key.id))
            .limit(max(1, min(limit, LIBRARY_MAX)))
        ).all()
        return [
            LibraryKey(
                key_id=str(key.id),
                order_number=order.number,
                title=line.title,
                platform=line.platform,
                region=line.region,
                kind=key.kind,
                status=key.status,
                masked=IMAGE_MASK if key.kind == "image" else TEXT_MASK,
                revealed=key.revealed_at is not None,
                delivered_at=key.delivered_at,
                activation_url=activation_url(line.platform),
                consent_given=order.delivery_consent_at is not None,
            )
            for key, line, order in rows
        ]
