"""Operator actions: orders that need a human (the console's attention queue), among
them provider purchases whose outcome is unknown (send again once the operator confirmed
no charge, or enter / fetch what was bought), customers' faulty-key reports, stock
(thresholds, revoking keys) and provider syncs.

Every action is audited (invariant 7) and goes through the same services as the
automatic paths: the order status machine, the inventory, fulfilment, the webhook path
for refunds. Functions with a ``session`` run in the caller's transaction; the others
own theirs (they call providers or payment services, which never happens under a lock).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import stripe
from sqlalchemy import func
from sqlmodel import Session, col, select

from core import crypto, jobs
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, InvalidInput, InvalidKeyState, NotFound
from core.models import (
    Key,
    KeyReport,
    KeyReportStatus,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProviderPurchase,
    PurchaseStatus,
    row_id,
    utcnow,
)
from core.providers.base import DeliveredKey, ProviderClient, PurchaseResult
from core.services import locking
from core.services.audit import Actor, record_audit
from core.services.catalogue import get_product, update_product
from core.services.fulfilment import (
    FulfilmentResult,
    FulfilmentRetry,
    deliver_missing_from_stock,
    fulfil_order,
    line_needs,
    store_purchase_result,
)
from core.services.inventory import claim_keys, deliver_lines, mark_faulty, revoke_key
from core.services.key_returns import return_eligible
from core.services.orders import transition_order
from core.services.payments import stripe_client, take_back_keys
from core.services.test_payments import send_test_event

S = OrderStatus


def _order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def retry_fulfilment(*, order_id: int, actor: Actor) -> None:
    """needs_attention → paid, and fulfilment queued after the commit."""
    with session_scope() as session:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason="operator retried fulfilment",
            expected_from=S.NEEDS_ATTENTION,
        )
        jobs.enqueue_after_commit(session, "fulfil_order", order_id)


def buy_from_provider(
    *, order_id: int, provider: str, actor: Actor, ignore_margin: bool = False
) -> FulfilmentResult:
    """Buy what the order lacks from ``provider`` now (the operator's choice; with
    ``ignore_margin`` even at a loss, up to twice our price)."""
    if provider not in get_settings().providers:
        raise InvalidInput(f"{provider} is not a configured provider")
    with session_scope() as session:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason=f"operator buys from {provider}",
            expected_from=S.NEEDS_ATTENTION,
        )
        record_audit(
            session=session,
            actor=actor,
            action="order.buy_from_provider",
            object_type="order",
            object_id=_order(session, order_id).number,
            data={"provider": provider, "ignore_margin": ignore_margin},
        )
    return fulfil_order(
        order_id=order_id, buy_from=provider, min_margin_percent=-100.0 if ignore_margin else None
    )


def _complete_if_whole(session: Session, order: Order, actor: Actor, reason: str) -> bool:
    if any(n.missing or n.on_the_way for n in line_needs(session, row_id(order.id))):
        return False
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.FULFILLED,
        actor=actor,
        reason=reason,
    )
    jobs.enqueue_after_commit(session, "send_order_email", order.id, "delivered")
    return True


def assign_from_stock(*, session: Session, order_id: int, actor: Actor) -> int:
    """Deliver what the order lacks from stock, each key audited as ``key.assign``; the
    order is fulfilled when nothing is missing any more. Returns how many keys."""
    order = _order(session, order_id)
    if order.status not in (S.NEEDS_ATTENTION, S.PAID):
        raise InvalidInput(f"order {order.number} is {order.status}; nothing to assign")
    assigned = 0
    for line_id, keys in deliver_missing_from_stock(session=session, order_id=order_id).items():
        for key in keys:
            record_audit(
                session=session,
                actor=actor,
                action="key.assign",
                object_type="key",
                object_id=str(key.id),
                data={"order": order.number, "order_line_id": line_id},
            )
        assigned += len(keys)
    if assigned == 0:
        raise InvalidInput(f"no keys in stock for what order {order.number} lacks")
    if order.status == S.NEEDS_ATTENTION:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason=f"operator assigned {assigned} keys from stock",
        )
    _complete_if_whole(session, order, actor, f"operator assigned {assigned} keys from stock")
    return assigned


def refund_order(*, order_id: int, actor: Actor, reason: str) -> str:
    """Give the money back. With Stripe, a refund is created and Stripe's
    ``charge.refunded`` webhook does the rest; with the built-in test payments the same
    Stripe-format event goes through the same webhook path. Either way the keys never
    revealed come back (DESIGN §5.5) once the event is processed."""
    if not reason.strip():
        raise InvalidInput("a refund needs a reason")
    with session_scope() as session:
        order = _order(session, order_id)
        if order.status not in (S.PAID, S.NEEDS_ATTENTION, S.FULFILLED, S.DISPUTED):
            raise InvalidInput(
                f"order {order.number} is {order.status}; there is no payment to refund"
            )
        if not order.payment_reference:
            raise InvalidInput(f"order {order.number} has no payment reference")
        number, reference = order.number, order.payment_reference
        record_audit(
            session=session,
            actor=actor,
            action="order.refund",
            object_type="order",
            object_id=number,
            data={"reason": reason, "payment": reference},
        )
    settings = get_settings()
    if settings.test_payments:
        send_test_event(order_number=number, kind="charge.refunded")
        return f"refund of {number} sent through the test payments"
    try:
        refund = stripe_client().v1.refunds.create(
            params={"payment_intent": reference, "metadata": {"order_number": number}},
            options={"idempotency_key": f"keyshop-refund-{number}"},
        )
    except stripe.StripeError as exc:
        raise DomainError(
            f"Stripe refused the refund of {number}: {exc.user_message or exc.code}"
        ) from None
    return f"Stripe refund {refund.id} created for {number}; its webhook completes it"


def cancel_order(*, session: Session, order_id: int, actor: Actor, reason: str) -> Order:
    """Cancel an order that needs attention (fraud, a customer's request): keys never
    revealed come back, revealed ones are flagged. Money already taken is refunded
    separately (refund_order); cancelling does not move money."""
    if not reason.strip():
        raise InvalidInput("a cancellation needs a reason")
    order = _order(session, order_id)
    counts = take_back_keys(
        session=session, order=order, actor=actor, reason=f"cancelled: {reason}"
    )
    return transition_order(
        session=session,
        order_id=order_id,
        to_status=S.CANCELLED,
        actor=actor,
        reason=reason,
        data=counts,
    )


def replace_faulty_key(*, session: Session, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    """Quarantine a key reported faulty and deliver a replacement from stock to the same
    order line (both audited). Raises InsufficientStock, changing nothing, when stock has
    none: buy one with buy_from_provider after marking the key faulty yourself."""
    key = session.get(Key, key_id)
    if key is None or key.order_line_id is None:
        raise NotFound(f"key {key_id} is not delivered to any order")
    line = session.get(OrderLine, key.order_line_id)
    assert line is not None
    [replacement] = claim_keys(
        session=session, product_id=line.product_id, quantity=1, line_id=row_id(line.id)
    )
    mark_faulty(session=session, key_id=key_id, actor=actor, reason=reason)
    deliver_lines(session=session, line_ids=[row_id(line.id)])
    record_audit(
        session=session,
        actor=actor,
        action="key.assign",
        object_type="key",
        object_id=str(replacement.id),
        data={"replaces": str(key_id), "order_line_id": line.id},
    )
    return session.exec(select(Key).where(col(Key.id) == replacement.id)).one()


def revealable_keys(*, session: Session, order_id: int) -> list[Key]:
    lines = [
        row_id(ln.id)
        for ln in session.exec(select(OrderLine).where(OrderLine.order_id == order_id))
    ]
    return list(
        session.exec(
            select(Key).where(col(Key.order_line_id).in_(lines), Key.status == KeyStatus.DELIVERED)
        )
    )


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
        jobs.enqueue_after_commit(session, "fulfil_order", order.id)


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


def enter_purchase_keys(
    *, purchase_id: int, codes: str | list[str], actor: Actor, provider_order_id: str = ""
) -> int:
    """ "Bought: enter the keys": the operator found the purchase charged at the provider
    and enters its keys (a list, or text separated by spaces, commas or new lines),
    exactly as many as it still lacks. They are stored encrypted and delivered; the
    order goes back to work (fulfilled when whole). Audited as
    ``purchase.keys_entered`` (never the keys). Bad input is InvalidInput and changes
    nothing. Returns how many keys were stored. Owns its transaction."""
    if isinstance(codes, str):
        codes = _KEY_SEPARATORS.split(codes)
    entered = [c.strip() for c in codes if c and c.strip()]
    limit = get_settings().max_key_length
    with session_scope() as session:
        purchase, order = _unsettled(session, purchase_id)
        have = session.exec(
            select(func.count()).select_from(Key).where(Key.provider_purchase_id == purchase_id)
        ).one()
        lacking = purchase.quantity - have
        if len(entered) != lacking:
            raise InvalidInput(
                f"purchase {purchase.reference} lacks {lacking} key(s); {len(entered)} entered"
            )
        if len(set(entered)) != len(entered):
            raise InvalidInput("the same key is entered twice")
        if any(len(c) > limit for c in entered):
            raise InvalidInput(f"a key is longer than {limit} characters")
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
    provider_order_id = provider_order_id.strip()
    if not provider_order_id:
        raise InvalidInput("enter the provider's order id")
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


# -- faulty-key reports ---------------------------------------------------------------------

REPORT_ACTIONS = ("replace", "revoke", "reject")


def resolve_key_report(
    *, session: Session, report_id: int, action: str, actor: Actor, note: str
) -> KeyReport:
    """Close an open faulty-key report, with the operator's ``note``:

    - ``replace``: the key is quarantined as faulty and a key from stock is delivered to
      the same order line (:func:`replace_faulty_key`; InsufficientStock, changing
      nothing, when stock has none) → ``replaced``; a Kinguin key never revealed and
      within Kinguin's 24-hour return window is then returned to Kinguin for a refund
      (the ``return_faulty_key`` job, :mod:`core.services.key_returns`);
    - ``revoke``: the key is revoked (:func:`core.services.inventory.revoke_key`), for a
      refund or when no replacement will come → ``revoked``;
    - ``reject``: the operator found the key good; nothing happens to it → ``rejected``.

    The report gets its status, ``resolution`` (what was done, and the note),
    ``resolved_at`` and ``resolved_by``; ``key_report.resolve`` is audited. A report that
    is not open any more, an unknown action or an empty note is refused (InvalidInput)
    and nothing changes. Runs in the caller's transaction and never commits.
    """
    if action not in REPORT_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: one of {', '.join(REPORT_ACTIONS)}")
    note = note.strip()
    if not note:
        raise InvalidInput("resolving a report needs a note")
    report = session.get(KeyReport, report_id, with_for_update=True, populate_existing=True)
    if report is None:
        raise NotFound(f"faulty-key report #{report_id} does not exist")
    if report.status != KeyReportStatus.OPEN:
        raise InvalidInput(
            f"faulty-key report #{report_id} is already {report.status}", status=report.status
        )
    reason = f"faulty-key report #{report_id}: {note}"
    data: dict[str, object] = {"action": action, "key_id": str(report.key_id), "note": note}
    if action == "replace":
        new = replace_faulty_key(session=session, key_id=report.key_id, actor=actor, reason=reason)
        report.status = KeyReportStatus.REPLACED
        report.resolution = f"replaced by key {new.id}: {note}"
        data["replacement_key_id"] = str(new.id)
        if return_eligible(session=session, key_id=report.key_id) is not None:
            # never revealed, bought from Kinguin within 24 h: claimed back after the commit
            jobs.enqueue_after_commit(session, "return_faulty_key", str(report.key_id))
            data["returned_to_supplier"] = True
    elif action == "revoke":
        revoke_key(session=session, key_id=report.key_id, actor=actor, reason=reason)
        report.status = KeyReportStatus.REVOKED
        report.resolution = f"key revoked: {note}"
    else:
        report.status = KeyReportStatus.REJECTED
        report.resolution = f"rejected: {note}"
    report.resolved_at = utcnow()
    report.resolved_by = actor.id
    session.add(report)
    record_audit(
        session=session,
        actor=actor,
        action="key_report.resolve",
        object_type="key_report",
        object_id=report_id,
        data={**data, "status": report.status, "order_id": report.order_id},
    )
    session.flush()
    return report


# -- stock ----------------------------------------------------------------------------------

MAX_LOW_STOCK_THRESHOLD = 1_000_000
MAX_KEYS_REVOKED_AT_ONCE = 10_000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def set_low_stock_threshold(
    *, session: Session, product_id: int, threshold: int | str, actor: Actor
) -> Product:
    """Set a product's low-stock threshold (a whole number from 0, meaning never low, to
    1,000,000; text as typed by an operator is accepted) through
    :func:`core.services.catalogue.update_product`, audited as ``product.threshold``.
    Bad input is InvalidInput and changes nothing. Runs in the caller's transaction."""
    if isinstance(threshold, str):
        text = threshold.strip()
        if not _WHOLE_NUMBER.fullmatch(text):
            raise InvalidInput(
                f"the low-stock threshold must be a whole number, 0 or more (got {text!r})"
                if text
                else "the low-stock threshold must be a whole number, 0 or more",
                field="low_stock_threshold",
            )
        threshold = int(text)
    if isinstance(threshold, int) and threshold > MAX_LOW_STOCK_THRESHOLD:
        raise InvalidInput(
            f"the low-stock threshold is at most {MAX_LOW_STOCK_THRESHOLD:,}",
            field="low_stock_threshold",
        )
    product = get_product(session=session, product_id=product_id)
    before = product.low_stock_threshold
    update_product(session=session, product_id=product_id, low_stock_threshold=threshold)
    record_audit(
        session=session,
        actor=actor,
        action="product.threshold",
        object_type="product",
        object_id=product_id,
        data={"slug": product.slug, "from": before, "to": threshold},
    )
    session.flush()
    return product


def revoke_stock_keys(
    *,
    session: Session,
    product_id: int,
    count: int,
    actor: Actor,
    reason: str,
    import_batch_id: int | None = None,
) -> list[uuid.UUID]:
    """Revoke ``count`` available keys of a product (oldest first; with
    ``import_batch_id``, only keys of that import — a bad batch), each audited as
    ``key.revoke``, plus one ``product.revoke_keys`` event. All or nothing: fewer
    available keys than ``count``, a count outside 1 to 10,000, an empty reason or an
    unknown product is InvalidInput (or UnknownProduct) and nothing changes. Returns the
    revoked keys' ids. Runs in the caller's transaction and never commits."""
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not (1 <= count <= MAX_KEYS_REVOKED_AT_ONCE)
    ):
        raise InvalidInput(
            f"the number of keys to revoke must be from 1 to {MAX_KEYS_REVOKED_AT_ONCE:,}"
        )
    reason = reason.strip()
    if not reason:
        raise InvalidInput("revoking keys needs a reason")
    product = get_product(session=session, product_id=product_id)
    query = select(Key.id).where(Key.product_id == product_id, Key.status == KeyStatus.AVAILABLE)
    if import_batch_id is not None:
        query = query.where(Key.import_batch_id == import_batch_id)
    ids = list(session.exec(query.order_by(col(Key.id)).limit(count)))
    where = f" from import #{import_batch_id}" if import_batch_id is not None else ""
    if len(ids) < count:
        raise InvalidInput(
            f"{product.slug} has {len(ids)} available key(s){where}; asked to revoke {count}",
            available=len(ids),
        )
    locked = locking.lock_keys(session, ids)
    if len(locked) != count or any(k.status != KeyStatus.AVAILABLE for k in locked):
        raise InvalidKeyState("stock changed while choosing the keys; try again")
    for key in locked:
        revoke_key(session=session, key_id=key.id, actor=actor, reason=reason)
    record_audit(
        session=session,
        actor=actor,
        action="product.revoke_keys",
        object_type="product",
        object_id=product_id,
        data={
            "slug": product.slug,
            "count": count,
            "reason": reason,
            "import_batch_id": import_batch_id,
        },
    )
    session.flush()
    return [k.id for k in locked]


# -- providers ------------------------------------------------------------------------------


def request_provider_sync(*, provider: str, actor: Actor) -> None:
    """Queue a catalogue/price/stock sync of ``provider`` (the ``sync_provider`` job,
    after the commit), audited as ``provider.sync``. Owns its transaction."""
    if provider not in get_settings().providers:
        raise InvalidInput(f"{provider} is not a configured provider")
    with session_scope() as session:
        record_audit(
            session=session,
            actor=actor,
            action="provider.sync",
            object_type="provider",
            object_id=provider,
            data={"requested_at": utcnow().isoformat()},
        )
        jobs.enqueue_after_commit(session, "sync_provider", provider)
