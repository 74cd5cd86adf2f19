"""The built-in test payments: Stripe-format events, signed with the local secret
(:func:`core.services.payments.webhook_secret`), passed through the same webhook path as
Stripe's own (:func:`core.services.webhooks.receive_webhook`). Refused when real Stripe
is configured."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from sqlmodel import select

from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, InvalidInput, NotFound
from core.models import Order
from core.services.payments import amount_due, webhook_secret
from core.services.webhooks import Receipt, receive_webhook


def sign_stripe_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value, computed exactly as Stripe does."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def build_test_event(
    order: Order, *, kind: str = "checkout.session.completed", amount_minor: int | None = None
) -> bytes:
    """A Stripe-format event body for the test payment of ``order``, for
    ``amount_minor`` (default the order's total; what the card pays when gift cards or
    store credit paid part of it)."""
    amount = order.total_minor if amount_minor is None else amount_minor
    reference = f"pi_test_{secrets.token_hex(12)}"
    if kind == "checkout.session.completed":
        obj: dict[str, Any] = {
            "id": f"cs_test_{secrets.token_hex(12)}",
            "object": "checkout.session",
            "client_reference_id": order.number,
            "metadata": {"order_number": order.number},
            "payment_status": "paid",
            "status": "complete",
            "payment_intent": reference,
            "amount_total": amount,
            "currency": order.currency.lower(),
            "customer_email": order.email,
            "livemode": False,
        }
    elif kind == "charge.refunded":
        obj = {
            "id": f"ch_test_{secrets.token_hex(12)}",
            "object": "charge",
            "payment_intent": order.payment_reference,
            "amount": amount,
            "amount_refunded": amount,
            "refunded": True,
            "currency": order.currency.lower(),
            "metadata": {"order_number": order.number},
        }
    elif kind == "charge.dispute.created":
        obj = {
            "id": f"dp_test_{secrets.token_hex(12)}",
            "object": "dispute",
            "payment_intent": order.payment_reference,
            "amount": amount,
            "currency": order.currency.lower(),
            "reason": "fraudulent",
            "metadata": {"order_number": order.number},
        }
    else:
        raise InvalidInput(f"no test event of type {kind}")
    event = {
        "id": f"evt_test_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": kind,
        "data": {"object": obj},
    }
    return json.dumps(event, separators=(",", ":")).encode()


class NoTestPayments(DomainError):
    code = "test_payments_disabled"
    http_status = 403


def send_test_event(*, order_number: str, kind: str = "checkout.session.completed") -> Receipt:
    """Complete (or refund, or dispute) an order with the built-in test payments: build the
    Stripe-format event, sign it with the local secret and pass it through the same
    webhook path as Stripe's. Refused when real Stripe is configured."""
    if not get_settings().test_payments:
        raise NoTestPayments("test payments are off: this shop takes real payments through Stripe")
    with session_scope(write=False) as session:
        order = session.exec(select(Order).where(Order.number == order_number)).first()
        if order is None:
            raise NotFound(f"no order {order_number}")
        body = build_test_event(order, kind=kind, amount_minor=amount_due(session, order))
    return receive_webhook(
        source="stripe",
        headers={"Stripe-Signature": sign_stripe_payload(body, webhook_secret())},
        body=body,
        remote_addr="test-payments",
    )
