"""The ways a customer can pay, behind one small protocol.

Checkout opens a payment with the method the customer chose (:func:`method`), and a
refund goes back through the method that took the money (:func:`method_for_provider`,
by ``Order.payment_provider``); neither knows which method it is talking to. The
webhooks of each method's provider are in the static table
:data:`core.services.webhook_sources.SOURCES`.

- ``card``: Stripe Checkout when Stripe is configured, else the built-in test payment
  page (Stripe-format events through the same webhook path);
- ``crypto``: a NOWPayments invoice (:mod:`core.services.nowpayments`), offered when
  ``NOWPAYMENTS_API_KEY`` is set, or against the NOWPayments simulator while the shop
  runs its built-in test payments.

Adding a method is a class here and a line in :data:`METHODS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Protocol

import stripe
from sqlmodel import select

from core.config import Settings, get_settings
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.models import Order, OrderEvent, OrderStatus
from core.money import to_decimal
from core.providers.nowpayments import NowPaymentsError
from core.services import nowpayments
from core.services.audit import Actor
from core.services.payments import stripe_client, take_money_back

log = logging.getLogger(__name__)

S = OrderStatus
CHECKOUT: Final = Actor.system("checkout")


class PaymentUnavailable(DomainError):
    code = "payment_unavailable"
    http_status = 502


@dataclass(frozen=True, slots=True)
class PaymentLine:
    title: str
    quantity: int
    unit_price_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A committed, unpaid order as a payment method needs it."""

    order_id: int
    number: str
    email: str
    total_minor: int
    currency: str
    lines: tuple[PaymentLine, ...]
    order_url: str  # where the customer lands after paying (the order page)
    pay_page_url: str  # the built-in test payment page for this order
    cancel_url: str  # where the customer goes back to when they give up


class PaymentMethod(Protocol):
    #: What the customer chooses at checkout (``card``, ``crypto``).
    key: str
    #: Who takes the money: ``Order.payment_provider`` and the webhook source.
    provider: str
    #: How the storefront names it.
    label: str

    def offered(self, settings: Settings) -> bool:
        """The shop takes payments this way with these settings."""
        ...

    def is_test(self, settings: Settings) -> bool:
        """The payment page is a built-in or simulated one: no money moves."""
        ...

    def open_payment(self, request: PaymentRequest) -> str:
        """Open the payment for a committed order; return the URL to send the customer
        to. Raises PaymentUnavailable when the provider refuses (the caller cancels)."""
        ...

    def refund(self, *, number: str, reference: str, actor: Actor) -> str:
        """Give the money of a paid order back (or record that it went back); the keys
        follow (DESIGN §5.5). Returns what happened, for the operator."""
        ...


def _opened(order_id: int, data: dict[str, str]) -> None:
    with session_scope() as session:
        session.add(
            OrderEvent(
                order_id=order_id,
                from_status=S.PENDING_PAYMENT,
                to_status=S.PENDING_PAYMENT,
                reason="payment page opened",
                actor=str(CHECKOUT),
                data=data,
            )
        )


class StripeCard:
    key = "card"
    provider = "stripe"
    label = "Card"

    def offered(self, settings: Settings) -> bool:
        return True

    def is_test(self, settings: Settings) -> bool:
        return settings.test_payments

    def open_payment(self, request: PaymentRequest) -> str:
        """A Stripe Checkout session (the order number as ``client_reference_id`` and in
        the metadata, which the Stripe webhook uses to find the order); with the built-in
        test payments, the test payment page."""
        settings = get_settings()
        if settings.test_payments:
            return request.pay_page_url
        try:
            checkout = stripe_client().v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "client_reference_id": request.number,
                    "metadata": {"order_number": request.number},
                    "payment_intent_data": {"metadata": {"order_number": request.number}},
                    "customer_email": request.email,
                    "line_items": [
                        {
                            "quantity": ln.quantity,
                            "price_data": {
                                "currency": ln.currency.lower(),
                                "unit_amount": ln.unit_price_minor,
                                "product_data": {"name": ln.title},
                            },
                        }
                        for ln in request.lines
                    ],
                    "success_url": request.order_url,
                    "cancel_url": request.cancel_url,
                },
                options={"idempotency_key": f"keyshop-checkout-{request.number}"},
            )
        except stripe.StripeError as exc:
            log.warning("Stripe refused a checkout session for %s: %s", request.number, exc.code)
            raise PaymentUnavailable(
                "Payments are unavailable right now; nothing was charged. Please try again "
                "in a few minutes.",
                reason=f"Stripe refused the checkout session ({exc.code or 'error'})",
            ) from None
        _opened(request.order_id, {"stripe_checkout_session": str(checkout.id)})
        return str(checkout.url)

    def refund(self, *, number: str, reference: str, actor: Actor) -> str:
        """A Stripe refund; Stripe's ``charge.refunded`` webhook does the rest. With the
        built-in test payments the same Stripe-format event goes through the same
        webhook path."""
        if get_settings().test_payments:
            from core.services.test_payments import send_test_event

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


class NowPaymentsCrypto:
    key = "crypto"
    provider = nowpayments.SOURCE
    label = "Crypto"

    def offered(self, settings: Settings) -> bool:
        return settings.crypto_payments

    def is_test(self, settings: Settings) -> bool:
        return not settings.nowpayments_api_key

    def open_payment(self, request: PaymentRequest) -> str:
        """A NOWPayments invoice for the order's total in the order's currency, with the
        order number as ``order_id`` and our IPN endpoint as ``ipn_callback_url``; the
        customer picks the coin on the invoice page and comes back to the order page."""
        try:
            with nowpayments.client() as np:
                invoice = np.create_invoice(
                    price_amount=to_decimal(request.total_minor, request.currency),
                    price_currency=request.currency,
                    order_id=request.number,
                    order_description=f"keyshop order {request.number}",
                    ipn_callback_url=nowpayments.ipn_callback_url(),
                    success_url=request.order_url,
                    cancel_url=request.cancel_url,
                )
        except NowPaymentsError as exc:
            log.warning("NOWPayments refused an invoice for %s: %s", request.number, exc)
            raise PaymentUnavailable(
                "Crypto payments are unavailable right now; nothing was charged. Please try "
                "again in a few minutes or pay by card.",
                reason=f"NOWPayments refused the invoice ({exc.status or 'unreachable'})",
            ) from None
        _opened(request.order_id, {"nowpayments_invoice": invoice.id})
        return invoice.invoice_url

    def refund(self, *, number: str, reference: str, actor: Actor) -> str:
        """NOWPayments' API has no refund of a customer payment: the operator sends the
        coins back from the NOWPayments dashboard; this records it (keys taken back,
        order ``refunded``)."""
        with session_scope() as session:
            order = session.exec(select(Order).where(Order.number == number)).one()
            outcome = take_money_back(
                session, order, S.REFUNDED, "crypto refund (by hand)", reference, actor
            )
        return (
            f"{outcome}; send the coins back from the NOWPayments dashboard "
            "(its API cannot refund a payment)"
        )


#: Every payment method, by what the customer chooses.
METHODS: Final[dict[str, PaymentMethod]] = {"card": StripeCard(), "crypto": NowPaymentsCrypto()}


def method(key: str, settings: Settings | None = None) -> PaymentMethod:
    """The method the customer chose; InvalidInput when it is unknown or not offered."""
    settings = settings or get_settings()
    found = METHODS.get(key)
    if found is None or not found.offered(settings):
        raise InvalidInput(
            f"payment method {key!r} is not offered here "
            f"(choose {', '.join(offered_methods(settings))})",
            field="payment_method",
        )
    return found


def offered_methods(settings: Settings | None = None) -> list[str]:
    settings = settings or get_settings()
    return [key for key, m in METHODS.items() if m.offered(settings)]


def method_for_provider(provider: str | None) -> PaymentMethod:
    """The method that took an order's money (``Order.payment_provider``); orders paid
    before the column was filled were paid by card."""
    for m in METHODS.values():
        if m.provider == (provider or "stripe"):
            return m
    raise InvalidInput(f"no payment method for provider {provider!r}")


__all__ = [
    "METHODS",
    "PaymentLine",
    "PaymentMethod",
    "PaymentRequest",
    "PaymentUnavailable",
    "method",
    "method_for_provider",
    "offered_methods",
]
