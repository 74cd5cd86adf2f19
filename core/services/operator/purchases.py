"""Operator actions on provider purchases whose outcome is unknown (DESIGN §4 invariant
3): list them, send one again once the operator confirmed no charge, or enter / fetch
what was bought. Each action goes through :mod:`core.services.fulfilment`, so a purchase
is never sent twice behind its back.

Every action is audited (invariant 7) and goes through the same services as the
automatic paths. Every action owns its transactions (the provider is called outside
them); :func:`unknown_purchases` only reads, in the caller's session.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import crypto, jobs
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.jobs import Job
from core.models import (
    Key,
    Order,
    OrderLine,
    ProviderPurchase,
    PurchaseStatus,
    row_id,
)
from core.providers.base import DeliveredKey, ProviderClient, PurchaseResult
from core.services.audit import Actor, record_audit
from core.services.fulfilment import (
    FulfilmentResult,
    FulfilmentRetry,
    fulfil_order,
    store_purchase_result,
)
from core.services.operator.orders import S, _complete_if_whole, _order
from core.services.orders import transition_order

# -- purchases whose outcome is unknown (DESIGN §4 invariant 3) -------------------------------

PURCHASE_ACTIONS = (
    "confirm not charged, send again",
    "bought: enter the keys",
    "bought: fetch by provider order id",
)
_UNSETTLED = (PurchaseStatus.UNKNOWN, PurchaseStatus.REQUESTED)
_KEY_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class UnknownPurchase:
    """A provider purchase of an order whose outcome nobody knows: shown to the operator
    with the actions that settle it."""

    id: int
    order_id: int
    provider: str
    reference: str
    quantity: int
    keys_stored: int
    created_at: datetime
    error: str | None
    actions: tuple[str, ...] = PURCHASE_ACTIONS


def unknown_purchases(*, session: Session, order_id: int) -> list[UnknownPurchase]:
    """The order's purchases whose outcome is unknown (or that a dead worker left
    requested), oldest first."""
    stored = (
        select(func.count())
        .select_from(Key)
        .where(Key.provider_purchase_id == ProviderPurchase.id)
        .correlate(ProviderPurchase)
        .scalar_subquery()
    )
    rows = session.exec(
        select(ProviderPurchase, stored)
        .join(OrderLine, col(OrderLine.id) == ProviderPurchase.order_line_id)
        .where(OrderLine.order_id == order_id, col(ProviderPurchase.status).in_(_UNSETTLED))
        .order_by(col(ProviderPurchase.id))
    ).all()
    return [
        UnknownPurchase(
            id=row_id(p.id),
            order_id=order_id,
            provider=p.provider,
            reference=p.reference,
            quantity=p.quantity,
            keys_stored=int(n),
            created_at=p.created_at,
            error=p.error,
        )
        for p, n in rows
    ]


def _unsettled(session: Session, purchase_id: int) -> tuple[ProviderPurchase, Order]:
    purchase = session.get(ProviderPurchase, purchase_id)
    if purchase is None:
        raise NotFound(f"provider purchase {purchase_id} does not exist")
    line = session.get(OrderLine, purchase.order_line_id)
    assert line is not None
    order = _order(session, line.order_id)
    if purchase.status not in _UNSETTLED:
        raise InvalidInput(f"purchase {purchase.reference} is {purchase.status}, not unknown")
    if order.status != S.NEEDS_ATTENTION:
        raise InvalidInput(f"order {order.number} is {order.status}, not needs_attention")
    return purchase, order


def _back_to_work(session: Session, order: Order, actor: Actor, reason: str) -> None:
    """needs_attention → paid, then fulfilled when nothing is missing, else fulfilment
    queued (after the commit) for the rest. Runs in the caller's transaction."""
    if not _complete_if_whole(session, order, actor, reason):
        jobs.enqueue_after_commit(session, Job.FULFIL_ORDER, order.id)


def resend_purchase(*, purchase_id: int, actor: Actor) -> FulfilmentResult:
    """ "Confirm not charged, send again": the operator checked with the provider that
    this purchase of unknown outcome was not charged; it is sent again under the same
    reference (never a new one) and the order is fulfilled as far as possible.
    Audited as ``purchase.resend``. Owns its transactions (it calls the provider)."""
    with session_scope() as session:
        purchase, order = _unsettled(session, purchase_id)
        transition_order(
            session=session,
            order_id=row_id(order.id),
            to_status=S.PAID,
            actor=actor,
            reason=f"operator confirmed purchase {purchase.reference} was not charged",
            expected_from=S.NEEDS_ATTENTION,
        )
        record_audit(
            session=session,
            actor=actor,
            action="purchase.resend",
            object_type="provider_purchase",
            object_id=purchase.reference,
            data={"order": order.number, "provider": purchase.provider},
        )
        order_id = row_id(order.id)
    try:
        return fulfil_order(order_id=order_id, resend_purchase_id=purchase_id)
    except FulfilmentRetry as exc:  # lost again: it waits, asked about by reconciliation
        return FulfilmentResult(order_id=order_id, outcome="waiting", detail=str(exc))


def parse_entered_keys(codes: str | list[str], *, lacking: int, reference: str) -> list[str]:
    """The keys an operator entered for purchase ``reference`` (a list, or text separated
    by spaces, commas, semicolons or new lines), checked without the database: exactly
    ``lacking`` of them, none twice, none too long. InvalidInput says what is wrong. The
    console's dialog runs it before closing; :func:`enter_purchase_keys` runs it again."""
    if isinstance(codes, str):
        codes = _KEY_SEPARATORS.split(codes)
    entered = [c.strip() for c in codes if c and c.strip()]
    if len(entered) != lacking:
        raise InvalidInput(f"purchase {reference} lacks {lacking} key(s); {len(entered)} entered")
    if len(set(entered)) != len(entered):
        raise InvalidInput("the same key is entered twice")
    limit = get_settings().max_key_length
    if any(len(c) > limit for c in entered):
        raise InvalidInput(f"a key is longer than {limit} characters")
    return entered


def parse_provider_order_id(text: str) -> str:
    """The provider's order id an operator typed, trimmed; InvalidInput when empty (the
    console's dialog runs it before closing)."""
    provider_order_id = text.strip()
    if not provider_order_id:
        raise InvalidInput("enter the provider's order id")
    return provider_order_id


def enter_purchase_keys(
    *, purchase_id: int, codes: str | list[str], actor: Actor, provider_order_id: str = ""
) -> int:
    """ "Bought: enter the keys": the operator found the purchase charged at the provider
    and enters its keys (a list, or text separated by spaces, commas or new lines),
    exactly as many as it still lacks. They are stored encrypted and delivered; the
    order goes back to work (fulfilled when whole). Audited as
    ``purchase.keys_entered`` (never the keys). Bad input is InvalidInput and changes
    nothing. Returns how many keys were stored. Owns its transaction."""
    with session_scope() as session:
        purchase, order = _unsettled(session, purchase_id)
        have = session.exec(
            select(func.count()).select_from(Key).where(Key.provider_purchase_id == purchase_id)
        ).one()
        entered = parse_entered_keys(
            codes, lacking=purchase.quantity - have, reference=purchase.reference
        )
        vault = crypto.get_vault()
        for n, code in enumerate(entered, 1):
            if session.exec(
                select(Key.id).where(Key.fingerprint == vault.fingerprint(code))
            ).first():
                raise InvalidInput(f"key {n} of {len(entered)} is already in our inventory")
        _reopen(session, purchase, order, actor, "keys entered by an operator")
        stored = store_purchase_result(
            session=session,
            purchase_id=purchase_id,
            answer=PurchaseResult(
                provider_order_id=provider_order_id.strip(),
                reference=purchase.reference,
                state="completed",
                keys=[DeliveredKey(external_id="", code=c) for c in entered],
            ),
            problems=[],
        )
        record_audit(
            session=session,
            actor=actor,
            action="purchase.keys_entered",
            object_type="provider_purchase",
            object_id=purchase.reference,
            data={
                "order": order.number,
                "keys": stored,
                "provider_order_id": provider_order_id.strip() or None,
            },
        )
        _back_to_work(session, order, actor, f"{stored} key(s) of {purchase.reference} entered")
    return stored


def fetch_purchase_by_provider_order(
    *,
    purchase_id: int,
    provider_order_id: str,
    actor: Actor,
    clients: Mapping[str, ProviderClient] | None = None,
) -> int:
    """ "Bought: fetch by provider order id": the operator found the purchase at the
    provider under ``provider_order_id``; its keys are fetched from there, stored and
    delivered, and the order goes back to work (it waits if keys are still to come).
    Refused (changing nothing) when the id is empty or belongs to another of our
    purchases. Audited as ``purchase.fetched``. Returns how many keys were stored. Owns
    its transactions: the provider is called outside them."""
    provider_order_id = parse_provider_order_id(provider_order_id)
    with session_scope(write=False) as session:
        purchase, _ = _unsettled(session, purchase_id)
        _not_another_purchase(session, purchase, provider_order_id, None)
    from core.services import fulfilment

    client = (clients if clients is not None else fulfilment.provider_clients()).get(
        purchase.provider
    )
    if client is None:
        raise InvalidInput(f"{purchase.provider} is not a configured provider")
    answer = client.fetch_keys(provider_order_id=provider_order_id, reference=purchase.reference)
    with session_scope() as session:
        purchase, order = _unsettled(session, purchase_id)
        _not_another_purchase(session, purchase, provider_order_id, answer.reference)
        _reopen(
            session,
            purchase,
            order,
            actor,
            f"fetched as {purchase.provider} order {provider_order_id}",
        )
        stored = store_purchase_result(
            session=session,
            purchase_id=purchase_id,
            answer=PurchaseResult(
                provider_order_id=provider_order_id,
                reference=answer.reference,
                state=answer.state,
                keys=answer.keys,
                quantity=answer.quantity,
                total_cost_minor=answer.total_cost_minor,
                currency=answer.currency,
                preorder=answer.preorder,
            ),
            problems=[],
        )
        record_audit(
            session=session,
            actor=actor,
            action="purchase.fetched",
            object_type="provider_purchase",
            object_id=purchase.reference,
            data={
                "order": order.number,
                "provider_order_id": provider_order_id,
                "provider_reference": answer.reference,
                "state": answer.state,
                "keys": stored,
            },
        )
        _back_to_work(
            session, order, actor, f"{purchase.reference} fetched from {purchase.provider}"
        )
    return stored


def _not_another_purchase(
    session: Session, purchase: ProviderPurchase, provider_order_id: str, reference: str | None
) -> None:
    clash = session.exec(
        select(ProviderPurchase.reference).where(
            ProviderPurchase.provider == purchase.provider,
            col(ProviderPurchase.id) != purchase.id,
            (col(ProviderPurchase.provider_order_id) == provider_order_id)
            | (col(ProviderPurchase.reference) == (reference or purchase.reference)),
        )
    ).first()
    if clash is not None:
        raise InvalidInput(
            f"{purchase.provider} order {provider_order_id} belongs to our purchase {clash}"
        )


def _reopen(
    session: Session, purchase: ProviderPurchase, order: Order, actor: Actor, what: str
) -> None:
    """needs_attention → paid first: the order row serialises two operators settling
    the same purchase (the second finds the order paid and changes nothing)."""
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.PAID,
        actor=actor,
        reason=f"purchase {purchase.reference}: {what}",
        expected_from=S.NEEDS_ATTENTION,
    )
