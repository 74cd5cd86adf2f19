"""Key returns to Kinguin in the faulty-key workflow (DESIGN "faulty-key workflow: ...
claim back from the supplier").

Kinguin takes keys back for a refund to the balance with
``POST /v2/order/{orderId}/keys/return``: one request per order, within 24 hours,
keys not claimed by the buyer, never a pre-order or a wholesale order (KG
``features/ReturnKeys.md``). The request returns the *order's* keys, so keyshop returns
a Kinguin purchase only when every key of it is out of use: quarantined as faulty or
revoked, and never revealed to the customer. When an operator replaces such a key
(:func:`core.services.operator.resolve_key_report`), :func:`return_eligible` says so
and the ``return_faulty_key`` job, queued after the commit, calls Kinguin (never under
a row lock) and records the return and the refund on the purchase.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core.db import session_scope
from core.models import Key, KeyStatus, ProviderOffer, ProviderPurchase, PurchaseStatus, utcnow
from core.providers.base import ProviderClient, ProviderRejected
from core.services.audit import Actor, record_audit

RETURN_WINDOW = timedelta(hours=24)  # KG features/ReturnKeys.md
SYSTEM = Actor.system("key-returns")
_OUT_OF_USE = (KeyStatus.FAULTY, KeyStatus.REVOKED)


def return_eligible(
    *, session: Session, key_id: uuid.UUID, now: datetime | None = None
) -> ProviderPurchase | None:
    """The Kinguin purchase to return for ``key_id``, or None when it may not be (not a
    Kinguin key, revealed, already returned, a pre-order, past 24 hours, or another key
    of the same order still in use). Reads only; runs in the caller's transaction."""
    key = session.get(Key, key_id)
    if key is None or key.provider_purchase_id is None or key.supplier != "kinguin":
        return None
    purchase = session.get(ProviderPurchase, key.provider_purchase_id)
    if (
        purchase is None
        or purchase.provider != "kinguin"
        or purchase.status != PurchaseStatus.COMPLETED
        or not purchase.provider_order_id
        or purchase.returned_at is not None
        or (now or utcnow()) - purchase.created_at >= RETURN_WINDOW
    ):
        return None
    offer = session.get(ProviderOffer, purchase.offer_id) if purchase.offer_id else None
    if offer is not None and offer.is_preorder:
        return None
    keys = session.exec(select(Key).where(Key.provider_purchase_id == purchase.id)).all()
    if any(k.id != key_id and k.status not in _OUT_OF_USE for k in keys):
        return None
    if any(k.revealed_at is not None for k in keys):
        return None
    return purchase


def return_faulty_key(
    *,
    key_id: uuid.UUID,
    clients: Mapping[str, ProviderClient] | None = None,
    now: Callable[[], datetime] = utcnow,
) -> str:
    """Return the Kinguin order of a replaced faulty key, if still eligible, and record
    on its purchase when and what Kinguin refunded (the purchase's cost of the keys it
    reports returned), audited as ``purchase.keys_returned``. Idempotent: a purchase
    already returned is left alone. Owns its transactions; Kinguin is called outside."""
    with session_scope(write=False) as session:
        purchase = return_eligible(session=session, key_id=key_id, now=now())
        if purchase is None:
            return f"key {key_id}: nothing to return"
        purchase_id, order_id = purchase.id, str(purchase.provider_order_id)
        unit_cost = purchase.unit_cost_minor or 0
    if clients is None:
        from core.services.fulfilment import provider_clients

        clients = provider_clients()
    client = clients.get("kinguin")
    return_keys = getattr(client, "return_keys", None)
    if return_keys is None:
        return "kinguin is not configured: nothing returned"
    try:
        returned: list[str] = return_keys(provider_order_id=order_id)
    except ProviderRejected as exc:  # NoKeysToReturn: claimed, too late, already returned
        with session_scope() as session:
            record_audit(
                session=session,
                actor=SYSTEM,
                action="purchase.keys_return_refused",
                object_type="provider_purchase",
                object_id=order_id,
                data={"key_id": str(key_id), "reason": exc.message},
            )
        return f"kinguin refused the return of order {order_id}: {exc.message}"
    with session_scope() as session:
        row = session.get(ProviderPurchase, purchase_id)
        assert row is not None
        if row.returned_at is not None:
            return f"order {order_id} was already returned"
        row.returned_at = now()
        row.refund_minor = unit_cost * len(returned)
        session.add(row)
        record_audit(
            session=session,
            actor=SYSTEM,
            action="purchase.keys_returned",
            object_type="provider_purchase",
            object_id=row.reference,
            data={
                "provider_order_id": order_id,
                "key_id": str(key_id),
                "keys_returned": len(returned),
                "refund_minor": row.refund_minor,
                "currency": row.currency,
            },
        )
    return f"kinguin order {order_id}: {len(returned)} key(s) returned"
