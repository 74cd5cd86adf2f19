"""Consent to immediate delivery: before the first key of an order is revealed, the
customer agrees that delivery starts now and that they lose their right of withdrawal
once a key is revealed (EU Consumer Rights Directive, art. 16(m), for digital content).

The customer sees :data:`CONSENT_TEXT` and ticks it; :func:`give_consent` stores the time
on the order (``Order.delivery_consent_at``) and writes an ``order.delivery_consent``
audit event with the address, the browser and the exact words agreed to, once per order.
:func:`core.services.portal.reveal_order_key` refuses (:class:`ConsentRequired`) until
then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import update
from sqlmodel import col

from core.db import session_scope
from core.errors import DomainError
from core.i18n import N_
from core.i18n import gettext as _
from core.models import Order, utcnow
from core.services.audit import Actor, record_audit

CONSENT_VERSION: Final = 1
CONSENT_TEXT: Final = N_(
    "I want my keys delivered now. I understand that once I reveal a key, I lose my "
    "right to withdraw from the purchase of that key."
)


class ConsentRequired(DomainError):
    code = "consent_required"
    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            _(
                "Please confirm that you want your keys now and that revealing a key ends "
                "your right of withdrawal for it."
            )
        )


def require_consent(order: Order) -> None:
    """ConsentRequired unless the order's customer has agreed (see the module)."""
    if order.delivery_consent_at is None:
        raise ConsentRequired()


def give_consent(
    *,
    number: str,
    access_token: str | None = None,
    customer_id: int | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> datetime:
    """Record the customer's consent for order ``number`` (opened as the portal opens it:
    OrderNotFound otherwise). Owns its transaction. Once per order: giving it again
    returns the first time and writes nothing."""
    from core.services.portal import _actor, open_order

    with session_scope() as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        now = utcnow()
        # compare-and-set: of two tabs agreeing at once, one records it
        won = session.execute(
            update(Order)
            .where(col(Order.id) == order.id, col(Order.delivery_consent_at).is_(None))
            .values(delivery_consent_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
            session.refresh(order)
            assert order.delivery_consent_at is not None
            return order.delivery_consent_at
        actor: Actor = _actor(order, customer_id, ip, user_agent)
        record_audit(
            session=session,
            actor=actor,
            action="order.delivery_consent",
            object_type="order",
            object_id=order.number,
            data={"text": CONSENT_TEXT, "version": CONSENT_VERSION, "at": now.isoformat()},
        )
        return now
