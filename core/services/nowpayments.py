"""Crypto payments through NOWPayments: the credentials in force, the IPN webhook
(authenticate, act), and the crypto payment rows shown to customers and operators.

What the shop guarantees (the client and the documentation it follows are in
:mod:`core.providers.nowpayments`):

- an IPN is believed only with a valid ``x-nowpayments-sig`` (constant-time compare);
  anything else is 401 and changes nothing. Stored raw, de-duplicated and acted on once
  through the same inbox as every webhook (:mod:`core.services.webhooks`);
- the order is named by ``order_id`` (our order number, sent when the invoice was made);
- an order is paid only on ``finished`` (or from ``confirmed`` on, with
  ``NOWPAYMENTS_PAID_STATUS=confirmed``), and only when ``price_amount`` and
  ``price_currency`` equal the order's total and currency and ``actually_paid`` covers
  ``pay_amount``. Any doubt sends the paid order to ``needs_attention`` with the amounts
  (:func:`core.services.payments.mark_paid`), never on to delivery;
- ``partially_paid`` → ``needs_attention`` with what arrived and what was asked
  (NOWPayments keeps partial payments: they are not refunded automatically);
- more than asked → paid, the excess recorded on the payment row and shown to operators
  in an alert;
- ``expired`` or ``failed`` → the unpaid order is cancelled (its reservation released),
  unless another payment of the same order is still under way; ``refunded`` → keys taken
  back as for a card refund;
- while a payment is under way (``waiting`` up to its 24-hour window, money on the way
  for up to 7 days) the unpaid-order expiry leaves the order alone
  (:func:`orders_with_live_crypto_payments`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.config import Settings, get_settings, reveal
from core.errors import InvalidInput, NotFound
from core.models import AlertKind, CryptoPayment, Order, OrderStatus, WebhookEvent, row_id, utcnow
from core.money import to_minor
from core.providers.nowpayments import (
    PRODUCTION_BASE_URL,
    SIGNATURE_HEADER,
    NowPaymentsClient,
    canonical_ipn,
    decimal_amount,
    ipn_signature,
    verify_ipn_signature,
)
from core.services import locking
from core.services.alerts import raise_alert
from core.services.audit import Actor
from core.services.orders import transition_order
from core.services.payments import mark_paid, take_money_back
from core.services.webhook_types import Verified, WebhookRejected, parse_json_object

S = OrderStatus
SOURCE: Final = "nowpayments"
NOWPAYMENTS: Final = Actor.system(SOURCE)

#: The simulator's well-known credentials (``keyshop simulate-providers``); they protect
#: nothing, like the test payments they stand beside, and are used only when the shop
#: runs its built-in test payments.
SIMULATOR_API_KEY: Final = "keyshop-simulator-nowpayments-api-key"
SIMULATOR_IPN_SECRET: Final = "keyshop-simulator-nowpayments-ipn-secret"  # noqa: S105 (simulator)
SIMULATOR_PATH: Final = "/nowpayments"

#: NOWPayments' statuses (API documentation, "Get payment status"), in the order a
#: payment moves through them; a late IPN never moves the recorded status back.
STATUS_RANK: Final = {
    "waiting": 0,
    "confirming": 1,
    "confirmed": 2,
    "sending": 3,
    "partially_paid": 4,
    "finished": 5,
    "failed": 5,
    "expired": 5,
    "refunded": 6,
}
#: How long a payment in each status keeps its unpaid order from expiring: ``waiting``
#: for the 24-hour window the API documentation gives; money on the way for the 7 days
#: after which NOWPayments' help centre says a payment expires.
LIVE_WINDOW: Final = {
    "waiting": timedelta(hours=24),
    "confirming": timedelta(days=7),
    "confirmed": timedelta(days=7),
    "sending": timedelta(days=7),
}


# -- credentials -------------------------------------------------------------------------------


def credentials(settings: Settings | None = None) -> tuple[str, str, str] | None:
    """(base URL, API key, IPN secret) in force: NOWPayments' when ``NOWPAYMENTS_API_KEY``
    is set, the simulator's while the shop runs its built-in test payments, else None
    (crypto is not offered and every IPN is refused)."""
    settings = settings or get_settings()
    if settings.nowpayments_api_key:
        return (
            settings.nowpayments_base_url or PRODUCTION_BASE_URL,
            reveal(settings.nowpayments_api_key) or "",
            reveal(settings.nowpayments_ipn_secret) or "",
        )
    if settings.test_payments:
        return (
            settings.nowpayments_base_url or settings.simulator_url + SIMULATOR_PATH,
            SIMULATOR_API_KEY,
            SIMULATOR_IPN_SECRET,
        )
    return None


def client(settings: Settings | None = None) -> NowPaymentsClient:
    settings = settings or get_settings()
    found = credentials(settings)
    if found is None:
        raise InvalidInput("crypto payments are not configured (NOWPAYMENTS_API_KEY)")
    base_url, api_key, _ = found
    return NowPaymentsClient(base_url, api_key, timeout=settings.provider_timeout_seconds)


def ipn_callback_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"{settings.public_url.rstrip('/')}/api/webhooks/{SOURCE}"


# -- the IPN webhook ---------------------------------------------------------------------------


def authenticate_nowpayments(headers: Mapping[str, str], body: bytes) -> Verified:
    payload = parse_json_object(body)
    found = credentials()
    if found is None:
        raise WebhookRejected("crypto payments are not configured", 401)
    signature = headers.get(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected("missing x-nowpayments-sig header", 401)
    if not verify_ipn_signature(payload, signature, found[2]):
        raise WebhookRejected("NOWPayments signature does not verify", 401)
    payment_id = payload.get("payment_id")
    status = payload.get("payment_status")
    if (
        not isinstance(payment_id, (int, str))
        or isinstance(payment_id, bool)
        or not str(payment_id)
        or status not in STATUS_RANK
    ):
        raise WebhookRejected("body is not a NOWPayments payment notification", 400)
    number = payload.get("order_id")
    # A retried IPN is the same body: one event. A later change of the same payment
    # (another status, more coins arrived) is a new one.
    digest = hashlib.sha256(canonical_ipn(payload)).hexdigest()[:32]
    return Verified(
        event_id=f"{payment_id}:{status}:{digest}",
        event_type=f"payment.{status}",
        payload=payload,
        subject=number if isinstance(number, str) and number else None,
    )


def handle_nowpayments(session: Session, event: WebhookEvent, payload: dict[str, Any]) -> str:
    """Act on one authenticated IPN (in the inbox's claim transaction)."""
    status = str(payload["payment_status"])
    payment_id = str(payload["payment_id"])
    number = payload.get("order_id")
    order = session.exec(select(Order).where(Order.number == str(number or ""))).first()
    if order is None:
        raise NotFound(f"no order {number} for NOWPayments payment {payment_id}")
    payment = _record(session, order, payload)
    reference = f"nowpayments:{payment_id}"
    if status in _paid_statuses():
        return _settle(session, order, payment, payload, reference)
    if status == "partially_paid":
        coin = str(payload.get("pay_currency") or "?").upper()
        return mark_paid(
            session=session,
            order=order,
            reference=reference,
            amount_minor=_price_minor(payload, order),
            currency=str(payload.get("price_currency") or ""),
            provider=SOURCE,
            problem=(
                f"crypto payment {payment_id} fell short: "
                f"{_text(decimal_amount(payload.get('actually_paid'))) or 0} {coin} arrived of "
                f"{_text(decimal_amount(payload.get('pay_amount')))} {coin} asked for "
                f"{_text(decimal_amount(payload.get('price_amount')))} "
                f"{str(payload.get('price_currency') or '').upper()}; NOWPayments keeps "
                "partial payments: refund the customer or deliver by hand"
            ),
        )
    if status in ("expired", "failed"):
        return _call_off(session, order, payment)
    if status == "refunded":
        return take_money_back(session, order, S.REFUNDED, "crypto refund", reference, NOWPAYMENTS)
    return f"crypto payment {payment_id} for {order.number}: {status}"


def _paid_statuses() -> frozenset[str]:
    if get_settings().nowpayments_paid_status == "confirmed":
        return frozenset({"confirmed", "sending", "finished"})
    return frozenset({"finished"})


def _coin(payment: CryptoPayment) -> str:
    return (payment.pay_currency or "?").upper()


def _price_minor(payload: dict[str, Any], order: Order) -> int | None:
    """``price_amount`` in the order's minor units; None when it is missing, unreadable,
    or has more decimals than the currency (never rounded into a match)."""
    amount = decimal_amount(payload.get("price_amount"))
    if amount is None:
        return None
    try:
        return to_minor(amount, order.currency)
    except InvalidInput:
        return None


def _settle(
    session: Session,
    order: Order,
    payment: CryptoPayment,
    payload: dict[str, Any],
    reference: str,
) -> str:
    # This IPN's own amounts (the row holds the newest of all IPNs seen so far).
    status = payload["payment_status"]
    asked = decimal_amount(payload.get("pay_amount"))
    paid = decimal_amount(payload.get("actually_paid"))
    problem = None
    if asked is None or paid is None:
        problem = (
            f"crypto payment {payment.payment_id} is {status} but does not state what arrived "
            f"(pay_amount {payload.get('pay_amount')!r}, "
            f"actually_paid {payload.get('actually_paid')!r})"
        )
    elif paid < asked:
        problem = (
            f"crypto payment {payment.payment_id} is {status} but only {_text(paid)} "
            f"{_coin(payment)} arrived of {_text(asked)} {_coin(payment)} asked"
        )
    outcome = mark_paid(
        session=session,
        order=order,
        reference=reference,
        amount_minor=_price_minor(payload, order),
        currency=payload.get("price_currency")
        if isinstance(payload.get("price_currency"), str)
        else None,
        provider=SOURCE,
        problem=problem,
    )
    if problem is None and asked is not None and paid is not None and paid > asked:
        payment.overpaid = _text(paid - asked)
        session.add(payment)
        raise_alert(
            session=session,
            kind=AlertKind.NEEDS_ATTENTION,
            subject=f"crypto:{payment.payment_id}",
            severity="info",
            message=(
                f"order {order.number} was overpaid: {paid} {_coin(payment)} arrived of "
                f"{asked} {_coin(payment)} asked ({payment.overpaid} {_coin(payment)} more); "
                "refund the excess from the NOWPayments dashboard if the customer asks"
            ),
        )
        outcome += f"; overpaid by {payment.overpaid} {_coin(payment)}"
    return outcome


def _call_off(session: Session, order: Order, payment: CryptoPayment) -> str:
    if order.status != S.PENDING_PAYMENT:
        return f"crypto payment {payment.payment_id} {payment.status}; order {order.number} is {order.status}"
    others = session.exec(
        select(CryptoPayment.payment_id).where(
            CryptoPayment.order_id == order.id,
            CryptoPayment.payment_id != payment.payment_id,
            col(CryptoPayment.status).in_(list(LIVE_WINDOW)),
        )
    ).all()
    if others:
        return (
            f"crypto payment {payment.payment_id} {payment.status}; order {order.number} "
            f"waits for payment {others[0]}"
        )
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.CANCELLED,
        actor=NOWPAYMENTS,
        reason=f"crypto payment {payment.payment_id} {payment.status}",
        expected_from=S.PENDING_PAYMENT,
    )
    return f"order {order.number} cancelled: crypto payment {payment.status}"


# -- the crypto payment rows -------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _record(session: Session, order: Order, payload: dict[str, Any]) -> CryptoPayment:
    """Create or update the payment's row from an IPN (or a status lookup). A status
    never moves back (IPNs may arrive out of order); amounts take the newest values."""
    payment_id = str(payload["payment_id"])
    status = str(payload["payment_status"])

    def find() -> CryptoPayment | None:
        return locking.lock_crypto_payment(session, provider=SOURCE, payment_id=payment_id)

    payment = find()
    if payment is None:
        try:
            with session.begin_nested():
                payment = CryptoPayment(
                    order_id=row_id(order.id), payment_id=payment_id, status=status
                )
                session.add(payment)
                session.flush()
        except IntegrityError:  # another IPN of this payment was first
            payment = find()
            assert payment is not None
    if STATUS_RANK.get(status, 0) < STATUS_RANK.get(payment.status, 0):
        return payment  # an older IPN processed late: the row already knows better
    payment.status = status
    for name in ("price_amount", "pay_amount", "actually_paid"):
        amount = decimal_amount(payload.get(name))
        if amount is not None:
            setattr(payment, name, _text(amount))
    for name, size in (("price_currency", 10), ("pay_currency", 20)):
        value = payload.get(name)
        if isinstance(value, str) and value:
            setattr(payment, name, value.lower()[:size])
    invoice = payload.get("invoice_id")
    if invoice not in (None, ""):
        payment.invoice_id = str(invoice)[:64]
    payment.updated_at = utcnow()
    session.add(payment)
    session.flush()
    return payment


def crypto_payments(*, session: Session, order_id: int) -> list[CryptoPayment]:
    """The order's crypto payments, newest first."""
    return list(
        session.exec(
            select(CryptoPayment)
            .where(CryptoPayment.order_id == order_id)
            .order_by(col(CryptoPayment.id).desc())
        )
    )


#: A crypto payment's status in the customer's words.
CUSTOMER_WORDS: Final = {
    "waiting": "waiting for your coins",
    "confirming": "seen on the blockchain, waiting for confirmations",
    "confirmed": "confirmed on the blockchain",
    "sending": "confirmed, being settled",
    "partially_paid": "less than the amount asked arrived; we will contact you",
    "finished": "received in full",
    "failed": "failed",
    "refunded": "refunded",
    "expired": "expired: no coins arrived in time",
}


def payment_note(*, session: Session, order_id: int) -> str | None:
    """The order's newest crypto payment in one sentence for the customer ("Crypto
    payment: seen on the blockchain, waiting for confirmations (0.0004 of 0.0004 BTC)"),
    or None when it has none."""
    payments = crypto_payments(session=session, order_id=order_id)
    if not payments:
        return None
    p = payments[0]
    words = CUSTOMER_WORDS.get(p.status, p.status)
    amounts = f" ({p.actually_paid or 0} of {p.pay_amount} {_coin(p)})" if p.pay_amount else ""
    return f"Crypto payment: {words}{amounts}."


def operator_line(payment: CryptoPayment) -> str:
    """A crypto payment for operators: id, status and the amounts on the blockchain."""
    coin = _coin(payment)
    over = f", overpaid by {payment.overpaid} {coin}" if payment.overpaid else ""
    price = f" for {payment.price_amount} {str(payment.price_currency or '').upper()}"
    return (
        f"crypto payment {payment.provider} {payment.payment_id}: {payment.status}, "
        f"{payment.actually_paid or 0} of {payment.pay_amount or '?'} {coin} arrived"
        f"{price if payment.price_amount else ''}{over}"
    )


#: A payment under way that no IPN has changed for this long is looked up at NOWPayments
#: (an IPN may have been lost: the documentation does not say that IPNs are retried).
LOOKUP_AFTER: Final = timedelta(minutes=10)


def signed_lookup(payment_id: str) -> tuple[bytes, dict[str, str]] | None:
    """NOWPayments' own answer for a payment (``GET /v1/payment/{id}``, over HTTPS with
    our API key) as an IPN body signed with our IPN secret, for the webhook inbox; None
    when crypto is off. Raises NowPaymentsError when NOWPayments cannot answer."""
    found = credentials()
    if found is None:
        return None
    with client() as np:
        answer = np.payment_status(payment_id)
    return canonical_ipn(answer), {SIGNATURE_HEADER: ipn_signature(answer, found[2])}


def payments_to_look_up(*, session: Session, now: datetime, limit: int = 100) -> list[str]:
    """Payments under way that nothing has changed for :data:`LOOKUP_AFTER`, oldest first;
    each is marked as looked at now (so one is asked at most every ten minutes). Runs in
    the caller's transaction."""
    rows = session.exec(
        select(CryptoPayment)
        .where(
            col(CryptoPayment.status).in_(list(LIVE_WINDOW)),
            col(CryptoPayment.updated_at) < now - LOOKUP_AFTER,
        )
        .order_by(col(CryptoPayment.updated_at))
        .limit(limit)
    ).all()
    for row in rows:
        row.updated_at = now
        session.add(row)
    return [row.payment_id for row in rows]


def orders_with_live_crypto_payments(*, session: Session, now: datetime) -> set[int]:
    """Orders a crypto payment is still under way for (within its window): the
    unpaid-order expiry must leave them alone."""
    rows = session.exec(
        select(CryptoPayment.order_id, CryptoPayment.status, CryptoPayment.created_at).where(
            col(CryptoPayment.status).in_(list(LIVE_WINDOW))
        )
    ).all()
    return {order_id for order_id, status, created in rows if created > now - LIVE_WINDOW[status]}
