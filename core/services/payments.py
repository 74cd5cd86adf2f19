"""Payments: Stripe webhooks (and the built-in test payments, which produce the same
Stripe-format events, signed with a local secret, through the same handler).

Events acted on:

- ``checkout.session.completed`` / ``checkout.session.async_payment_succeeded`` (when
  ``payment_status`` is ``paid``) and ``payment_intent.succeeded`` → the order is
  ``paid`` and fulfilment is queued after the commit. The order is found by
  ``client_reference_id`` or ``metadata.order_number``; the amount and currency must
  match the order's total, or the order goes to ``needs_attention`` with the reason.
- ``charge.refunded`` (fully refunded) → DESIGN §5.5: keys never revealed are revoked
  (stock keys go back to stock), revealed keys are flagged, the order is ``refunded``
  and an alert is raised. A partial refund is recorded on the order (``refunded_minor``,
  :func:`record_partial_refund`); its status and keys stay, and an alert is raised.
- ``charge.dispute.created`` → the same key handling, the order is ``disputed``.
- anything else is stored and marked ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import stripe
from sqlmodel import Session, col, select

from core import jobs
from core.config import get_settings, reveal
from core.errors import NotFound
from core.jobs import Job
from core.models import (
    AlertKind,
    Key,
    KeyStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    WebhookEvent,
    row_id,
)
from core.money import format_money
from core.services import credit, giftcards, locking
from core.services.alerts import raise_alert
from core.services.audit import Actor
from core.services.inventory import revoke_key
from core.services.orders import transition_order
from core.services.webhook_types import Verified, WebhookRejected, parse_json_object
from core.signing import secret_key

S = OrderStatus
STRIPE = Actor.system("stripe")
#: ``Order.payment_provider`` of an order gift cards and store credit paid wholly.
BALANCES = "balances"


def amount_due(session: Session, order: Order) -> int:
    """What the payment method must take for ``order``: its total less what gift cards
    and store credit paid (:func:`core.services.credit.covered_minor`)."""
    return order.total_minor - credit.covered_minor(session, order_id=row_id(order.id))


def webhook_secret() -> str:
    """Stripe's signing secret when Stripe is configured; otherwise the local secret the
    built-in test payments sign with (derived from the shop's signing secret)."""
    settings = get_settings()
    if settings.stripe_webhook_secret:
        return reveal(settings.stripe_webhook_secret) or ""
    digest = hmac.new(secret_key(), b"keyshop test payments webhook", hashlib.sha256).digest()
    return "whsec_test_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def authenticate_stripe(headers: Mapping[str, str], body: bytes) -> Verified:
    payload = parse_json_object(body)
    signature = headers.get("stripe-signature")
    if not signature:
        raise WebhookRejected("missing Stripe-Signature header", 401)
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8"),
            signature,
            webhook_secret(),
            tolerance=get_settings().stripe_tolerance_seconds,
        )
    except stripe.SignatureVerificationError:
        raise WebhookRejected("Stripe signature does not verify", 401) from None
    if not isinstance(payload.get("id"), str) or not isinstance(payload.get("type"), str):
        raise WebhookRejected("body is not a Stripe event", 400)
    return Verified(
        event_id=payload["id"],
        event_type=payload["type"],
        payload=payload,
        subject=_order_number_named(payload),
    )


def _order_number_named(payload: dict[str, Any]) -> str | None:
    """The order number a Stripe event names, if any (kept on the stored row so expiry
    can see a payment waiting to be acted on)."""
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    metadata = obj.get("metadata")
    number = obj.get("client_reference_id") or (
        metadata.get("order_number") if isinstance(metadata, dict) else None
    )
    return number if isinstance(number, str) and number else None


# -- calling Stripe --------------------------------------------------------------------------


def stripe_client() -> stripe.StripeClient:
    """A Stripe client from the settings: ``STRIPE_SECRET_KEY``, and ``STRIPE_API_BASE``
    when set (stripe-mock or a test server), one network retry. Every call to Stripe's API
    goes through it."""
    settings = get_settings()
    return stripe.StripeClient(
        reveal(settings.stripe_secret_key) or "",
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
        max_network_retries=1,
    )


# -- acting on events ---------------------------------------------------------------------


def _order_for(session: Session, obj: dict[str, Any]) -> Order:
    metadata = obj.get("metadata") or {}
    number = obj.get("client_reference_id") or metadata.get("order_number")
    if number:
        order = session.exec(select(Order).where(Order.number == str(number))).first()
        if order is not None:
            return order
        raise NotFound(f"no order {number}")
    reference = obj.get("payment_intent") or obj.get("id")
    order = session.exec(select(Order).where(Order.payment_reference == str(reference))).first()
    if order is None:
        raise NotFound(f"no order paid with {reference}")
    return order


def mark_paid(
    *,
    session: Session,
    order: Order,
    reference: str,
    amount_minor: int | None,
    currency: str | None,
    provider: str = "stripe",
    problem: str | None = None,
) -> str:
    """Record a confirmed payment. Idempotent: an order already past payment is left as it
    is. Queues fulfilment after the commit. Runs in the caller's transaction.

    The payment must prove what was paid: ``amount_minor`` an integer and ``currency`` a
    code, equal to the amount due (:func:`amount_due`: the order's total less what gift
    cards and store credit paid) and the order's currency. Anything else — a missing, null or
    non-numeric amount included — records the payment but sends the order to
    ``needs_attention`` with the reason, never on to fulfilment. So does a ``problem``
    the payment method found (a crypto payment that fell short, say)."""
    actor = Actor.system(provider)
    if order.status != S.PENDING_PAYMENT:
        if order.status == S.CANCELLED:
            raise_alert(
                session=session,
                kind=AlertKind.NEEDS_ATTENTION,
                subject=f"order:{order.number}",
                message=f"payment {reference} arrived for cancelled order {order.number}; refund it or reopen by hand",
                severity="error",
            )
            return f"payment for cancelled order {order.number}: alert raised"
        return f"order {order.number} already {order.status}"
    order.payment_reference = reference
    order.payment_provider = provider
    session.add(order)
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.PAID,
        actor=actor,
        reason=f"payment {reference}",
        expected_from=S.PENDING_PAYMENT,
    )
    proven = (
        isinstance(amount_minor, int)
        and not isinstance(amount_minor, bool)
        and isinstance(currency, str)
        and bool(currency)
    )
    reason = None
    due = amount_due(session, order)
    if not proven:
        reason = (
            f"the {provider} payment {reference} did not state the amount and currency paid "
            f"(amount {amount_minor!r}, currency {currency!r}); {due} {order.currency} "
            "is due: check the payment before delivering"
        )
    elif amount_minor != due or str(currency).upper() != order.currency:
        reason = (
            f"paid {amount_minor} {str(currency).upper()} but {due} {order.currency} is "
            "due; check the payment before delivering"
        )
    reason = reason or problem
    if reason is not None:
        transition_order(
            session=session,
            order_id=row_id(order.id),
            to_status=S.NEEDS_ATTENTION,
            actor=actor,
            reason=reason,
        )
        raise_alert(
            session=session,
            kind=AlertKind.NEEDS_ATTENTION,
            subject=f"order:{order.number}",
            message=reason,
        )
        what = "a mismatched amount" if problem is None or reason != problem else "a problem"
        return f"order {order.number} paid with {what}: needs attention"
    jobs.enqueue_after_commit(session, Job.FULFIL_ORDER, order.id)
    return f"order {order.number} paid"


def take_back_keys(*, session: Session, order: Order, actor: Actor, reason: str) -> dict[str, int]:
    """DESIGN §5.5 for a refund or a dispute: keys never revealed are revoked (keys from
    our own stock go back to stock), revealed keys are flagged. Runs in the caller's
    transaction."""
    counts = {"to_stock": 0, "revoked": 0, "flagged": 0}
    held = (KeyStatus.RESERVED, KeyStatus.DELIVERED)
    lines = set(session.exec(select(OrderLine.id).where(OrderLine.order_id == order.id)).all())
    ids = session.exec(
        select(Key.id).where(col(Key.order_line_id).in_(lines), col(Key.status).in_(held))
    ).all()
    # Decide on locked, fresh rows (primary-key order): a reveal committing meanwhile is
    # waited for and then seen, never half-seen (which used to roll the refund back).
    for key in locking.lock_keys(session, [k for k in ids if k is not None]):
        if key.order_line_id not in lines or key.status not in held:
            continue  # moved on while we waited for its lock
        if key.revealed_at is not None:
            key.status_note = f"revealed before {reason}"[:500]
            session.add(key)
            counts["flagged"] += 1
        elif key.provider_purchase_id is None:
            revoke_key(session=session, key_id=key.id, actor=actor, reason=reason, to_stock=True)
            counts["to_stock"] += 1
        else:
            revoke_key(session=session, key_id=key.id, actor=actor, reason=reason)
            counts["revoked"] += 1
    session.flush()
    return counts


def take_money_back(
    session: Session,
    order: Order,
    to_status: str,
    what: str,
    reference: str,
    actor: Actor = STRIPE,
) -> str:
    """The order's money went back (``refunded``) or is contested (``disputed``): keys
    taken back (:func:`take_back_keys`), the order moved, an operator alerted. Runs in
    the caller's transaction."""
    if order.status == to_status:
        return f"order {order.number} already {to_status}"
    counts = take_back_keys(session=session, order=order, actor=actor, reason=what)
    if to_status == S.REFUNDED:
        # gift cards and store credit get back what they paid (once, whatever path);
        # after the keys, so every path locks keys before ledger accounts
        credit.return_order_tenders(
            session=session, order=order, reason=credit.Reason.REFUND, actor=actor
        )
    # gift cards the order bought lose what is left on them
    giftcards.withdraw_for_order(session=session, order_id=row_id(order.id), actor=actor)
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=to_status,
        actor=actor,
        reason=f"{what} {reference}",
        data=counts,
    )
    if to_status == S.REFUNDED:
        locking.raise_refunded(session, row_id(order.id), order.total_minor)
        jobs.enqueue_after_commit(session, Job.SEND_ORDER_EMAIL, order.id, "refunded")
    raise_alert(
        session=session,
        kind=AlertKind.NEEDS_ATTENTION,
        subject=f"order:{order.number}",
        severity="error" if counts["flagged"] else "warning",
        message=(
            f"{what} on order {order.number}: {counts['to_stock']} keys back to stock, "
            f"{counts['revoked']} revoked, {counts['flagged']} already revealed (flagged)"
        ),
    )
    return f"order {order.number} {to_status}: {counts}"


def record_partial_refund(session: Session, order: Order, charge: dict[str, Any]) -> str:
    """Part of an order's charge went back (a refund made in Stripe's dashboard, say a
    goodwill refund): ``amount_refunded``, the charge's running total of refunds, is
    recorded on the order (``refunded_minor``; reports count revenue net of it), with an
    order event and an alert. The order keeps its status and its keys: which keys, if
    any, to take back is the operator's call. A late, repeated or concurrent event
    records nothing new. A refund without an amount, or in another currency than the
    order's, is not recorded; the operator is told. Runs in the caller's transaction."""
    refunded = charge.get("amount_refunded")
    currency = str(charge.get("currency") or "").upper()
    subject = f"order:{order.number}"
    if type(refunded) is not int or refunded <= 0 or currency != order.currency:
        shown = "no amount" if type(refunded) is not int else f"{refunded} (minor units)"
        raise_alert(
            session=session,
            kind=AlertKind.NEEDS_ATTENTION,
            subject=subject,
            message=(
                f"partial refund of {shown} {currency or 'without a currency'} on order "
                f"{order.number}, whose currency is {order.currency}: not recorded, check the "
                "charge in Stripe"
            ),
        )
        return f"partial refund on {order.number} ({shown} {currency}): not recorded"
    so_far = format_money(refunded, currency, style="code")
    if not locking.raise_refunded(session, row_id(order.id), refunded):
        return f"partial refund on {order.number}: {so_far} so far, already recorded"
    session.add(
        OrderEvent(
            order_id=row_id(order.id),
            from_status=order.status,
            to_status=order.status,
            reason=f"partial refund {charge.get('id')}",
            actor=str(STRIPE),
            data={"refunded_minor": refunded},
        )
    )
    raise_alert(
        session=session,
        kind=AlertKind.NEEDS_ATTENTION,
        subject=subject,
        message=(
            f"partial refund on order {order.number}: {so_far} of "
            f"{format_money(order.total_minor, currency, style='code')} refunded so far; "
            "its keys are left as they are"
        ),
    )
    return f"partial refund of {so_far} on {order.number} recorded"


def handle_stripe(session: Session, event: WebhookEvent, payload: dict[str, Any]) -> str:
    kind = payload.get("type", "")
    obj = ((payload.get("data") or {}).get("object")) or {}
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if obj.get("payment_status") not in ("paid", "no_payment_required"):
            return f"checkout session {obj.get('id')} not paid yet ({obj.get('payment_status')})"
        order = _order_for(session, obj)
        return mark_paid(
            session=session,
            order=order,
            reference=str(obj.get("payment_intent") or obj.get("id")),
            amount_minor=obj.get("amount_total"),
            currency=obj.get("currency"),
        )
    if kind == "payment_intent.succeeded":
        order = _order_for(session, obj)
        return mark_paid(
            session=session,
            order=order,
            reference=str(obj.get("id")),
            amount_minor=obj.get("amount_received"),
            currency=obj.get("currency"),
        )
    if kind == "charge.refunded":
        order = _order_for(
            session,
            {
                "payment_intent": obj.get("payment_intent") or obj.get("id"),
                "metadata": obj.get("metadata"),
            },
        )
        if not obj.get("refunded") and (obj.get("amount_refunded") or 0) < (obj.get("amount") or 0):
            return record_partial_refund(session, order, obj)
        return take_money_back(session, order, S.REFUNDED, "refund", str(obj.get("id")))
    if kind == "charge.dispute.created":
        order = _order_for(
            session, {"payment_intent": obj.get("payment_intent"), "metadata": obj.get("metadata")}
        )
        return take_money_back(session, order, S.DISPUTED, "dispute", str(obj.get("id")))
    return f"ignored {kind}"
