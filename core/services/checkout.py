"""Checkout: price a cart, place the order, open the payment.

DESIGN §5.1: cart → order ``pending_payment`` with a price snapshot and a reservation of
what will serve it → payment session. A checkout nothing can serve is refused.

- :func:`quote_cart` prices a cart for the cart page and reports every problem (unknown
  product, sold out, too many, mixed currencies) as a sentence instead of raising.
- :func:`place_order` validates the same way, refuses with one :class:`CartRejected`
  (422, every problem listed, nothing written) when anything is wrong, writes the order
  through :func:`core.services.orders.create_order` and reserves what will serve it
  (:func:`core.services.reservations.reserve_order`: own keys for as long as the order
  may stay unpaid, the rest held against a provider offer) in the same transaction — a
  cart that stock and partners cannot serve, even because another checkout took the
  last key a moment ago, is refused in the customer's words with nothing written. Then
  it opens the payment with the method the customer chose
  (:mod:`core.services.payment_methods`: a Stripe Checkout session or the built-in test
  payment page for ``card``, a NOWPayments invoice for ``crypto``). The payment provider
  is called after the commit, never inside the transaction. All or nothing for the
  caller: if the provider refuses, or anything else fails once the order was sent to
  commit, the order is cancelled (its reservation released) and the error says so.
- :func:`pay_test_order` is the test payment page's button: it sends the signed,
  Stripe-format event through the same webhook path as Stripe's
  (:func:`core.services.test_payments.send_test_event`).

"Buyable" is the product page's rule (:mod:`core.services.storefront`): active, and own
available keys plus the providers' free units (not held by other orders) within the
margin cover the quantity.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import is_database_unavailable, session_scope
from core.errors import DomainError, InvalidInput, NotFound
from core.i18n import gettext, localised_path
from core.jobs import Job, enqueue_after_commit
from core.models import Customer, Order, OrderStatus, row_id
from core.services import credit, giftcards, promos, vat
from core.services.audit import Actor, record_audit
from core.services.cart import CartLine, Quote, QuoteLine, _is_int, quote_cart, stock_problem
from core.services.customers import normalise_email
from core.services.notifications import order_access_token
from core.services.orders import LineRequest, create_order
from core.services.orders import transition_order as _transition
from core.services.payment_methods import PaymentLine, PaymentRequest, PaymentUnavailable, method
from core.services.payments import BALANCES, mark_paid
from core.services.portal import OrderNotFound, open_order, order_page_url
from core.services.reservations import NothingToServe, reserve_order
from core.services.test_payments import NoTestPayments, send_test_event

log = logging.getLogger(__name__)

S = OrderStatus
CHECKOUT: Final = Actor.system("checkout")


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    number: str
    access_token: str
    payment_url: str
    order_url: str
    total_minor: int
    currency: str
    test_payment: bool  # the payment page is the built-in test page
    paid_from_balances_minor: int = 0  # what gift cards and store credit paid
    discount_minor: int = 0  # what promo codes took off (core.services.promos)


class CartRejected(InvalidInput):
    """The cart cannot be ordered as it is. ``problems`` lists every reason."""

    code = "cart_rejected"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems), problems=problems)
        self.problems = problems


class CheckoutFailed(DomainError):
    """Something broke while placing the order (the database went away, say). Nothing is
    charged and no order is left behind for the customer to wonder about."""

    code = "checkout_failed"
    http_status = 503


class OrderNotPayable(DomainError):
    code = "order_not_payable"
    http_status = 409


def _check_shape(lines: Any) -> None:
    """Refuse what is not a cart at all (wrong types), before any database work."""
    if not isinstance(lines, (list, tuple)) or not lines:
        raise CartRejected([gettext("Your cart is empty.")])
    if not all(isinstance(ln, CartLine) for ln in lines):
        raise InvalidInput("lines must be CartLine items", field="lines")


def _shortfall_problems(quote: Quote, exc: NothingToServe) -> list[str]:
    """NothingToServe (another checkout took the stock between quote and reservation) in
    the same words as the quote's own stock problems."""
    by_id = {ln.product_id: ln for ln in quote.lines}
    problems = []
    for short in exc.data.get("details", []):
        line = by_id.get(short["product_id"])
        if line is not None:
            problems.append(
                stock_problem(line.title, line.platform, line.region, short["available"])
            )
    return problems or [gettext("Part of your cart just sold out; please review it and try again.")]


def place_order(
    *,
    email: str,
    lines: list[CartLine],
    customer_id: int | None = None,
    ip: str | None = None,
    currency: str | None = None,
    country: str | None = None,
    payment_method: str = "card",
    language: str | None = None,
    gift_cards: Sequence[str] = (),
    use_credit: bool = False,
    promo_code: str | None = None,
) -> CheckoutResult:
    """Place an order, reserve what will serve it, and open its payment. Owns its
    transactions. All or nothing from the caller's point of view: it returns the order
    (number, access token, payment URL, order page URL), or raises and leaves no order
    the caller does not know about.

    Refuses, writing nothing: a malformed e-mail (InvalidInput), an empty cart, more than
    MAX_LINES products, a quantity outside 1..MAX_QUANTITY_PER_LINE, an unknown or
    unbuyable product, mixed currencies, a cart the shop's own keys plus free provider
    units cannot serve (CartRejected, every problem listed), an unknown ``customer_id``
    (InvalidInput), a payment method the shop does not offer (InvalidInput), a promo code
    that cannot be used on this cart (PromoRejected, saying why).

    ``promo_code`` (one code, or several separated by commas when each allows combining:
    :mod:`core.services.promos`) lowers the lines' prices before anything is paid; its
    use is taken in the order's transaction under the code's row lock.

    ``language``: the storefront language the customer ordered in (core.i18n); the
    order's e-mails and links speak it.

    The payment is opened with the method the customer chose
    (:mod:`core.services.payment_methods`: ``card`` or ``crypto``).

    ``gift_cards`` (codes) and ``use_credit`` (a signed-in customer's store credit) pay
    what they can first, in that order, in the order's own transaction
    (:func:`core.services.credit.apply_tenders`, under row locks: two checkouts never
    spend the same balance); the payment method is opened for exactly the rest. An order
    they cover wholly needs no payment page: it is paid at once and goes on to
    fulfilment, and its ``payment_url`` is the order page. Refused, writing nothing: an
    unknown, malformed, void, empty or other-currency gift card (InvalidInput naming
    it), ``use_credit`` without a signed-in customer, and a part left to pay with a
    method other than ``card``.

    The order, its reservation (``reservations.reserve_order``: own keys claimed for its
    lines, the rest held against a provider offer) and the audit event are one
    transaction. If anything fails once that transaction has been sent to commit (its
    commit, the payment session, the writes after it), the order is cancelled — which
    releases its reservation — best effort and logged (the unpaid-order expiry is the
    backstop), and the caller gets PaymentUnavailable (Stripe refused) or CheckoutFailed.
    """
    address = normalise_email(email)
    _check_shape(lines)
    codes = promos.parse_codes(promo_code)
    paying = method(payment_method)
    if not isinstance(gift_cards, (list, tuple)) or not all(isinstance(c, str) for c in gift_cards):
        raise InvalidInput("gift_cards must be a list of codes", field="gift_cards")
    if use_credit and customer_id is None:
        raise InvalidInput("sign in to pay with store credit", field="use_credit")
    actor = (
        Actor.customer(customer_id, ip=ip)
        if customer_id is not None
        else Actor(CHECKOUT.type, CHECKOUT.id, ip=ip)
    )
    order_id: int | None = None
    number = ""
    committing = False  # from here on the order may exist
    try:
        with session_scope() as session:
            if customer_id is not None and (
                not _is_int(customer_id) or session.get(Customer, customer_id) is None
            ):
                raise InvalidInput("unknown customer", field="customer_id")
            buyer = vat.country(country) if country is not None else None
            quote = quote_cart(
                session=session,
                lines=list(lines),
                currency=currency,
                vat_rate_bp=buyer.rate_bp if buyer else 0,
            )
            if not quote.ok:
                raise CartRejected(quote.problems or [gettext("Your cart is empty.")])
            order = create_order(
                session=session,
                email=address,
                lines=[LineRequest(row_id(ln.product_id), ln.quantity) for ln in quote.lines],
                customer_id=customer_id
                if customer_id is not None
                else _verified_owner(session, address),
                actor=actor,
                currency=quote.currency,
                country=buyer.code if buyer else None,
                language=language,
            )
            number, total, currency = order.number, order.total_minor, order.currency
            order_id = row_id(order.id)
            try:
                reserve_order(session=session, order_id=order_id)
            except NothingToServe as exc:
                raise CartRejected(_shortfall_problems(quote, exc)) from None
            # the codes' uses are taken before the balances pay: those pay the rest
            applied = promos.redeem_for_order(session=session, order_id=order_id, codes=codes)
            total = order.total_minor
            covered = 0
            if gift_cards or use_credit:
                covered = credit.apply_tenders(
                    session=session,
                    order=order,
                    gift_cards=giftcards.cards_for_checkout(session, list(gift_cards)),
                    use_credit=use_credit,
                    actor=actor,
                )
            due = total - covered
            if covered and due and paying.key != "card":
                raise InvalidInput(
                    "gift cards and store credit can be combined with a card payment only",
                    field="payment_method",
                )
            # the order confirmation e-mail, once the order is committed
            enqueue_after_commit(session, Job.SEND_ORDER_EMAIL, order_id, "placed")
            record_audit(
                session=session,
                actor=actor,
                action="order.place",
                object_type="order",
                object_id=number,
                data={
                    "total_minor": total,
                    "currency": currency,
                    "guest": customer_id is None,
                    **({"promo_codes": applied.by_code} if applied.codes else {}),
                },
            )
            committing = True
        token = order_access_token(number)
        settings = get_settings()
        here = partial(localised_path, language=language)
        order_url = order_page_url(number, token, language=language)
        if due == 0:
            _paid_from_balances(order_id)
            return CheckoutResult(
                number=number,
                access_token=token,
                payment_url=order_url,
                order_url=order_url,
                total_minor=total,
                currency=currency,
                test_payment=False,
                paid_from_balances_minor=covered,
                discount_minor=applied.total_minor,
            )
        payment_url = paying.open_payment(
            PaymentRequest(
                order_id=order_id,
                number=number,
                email=address,
                total_minor=due,
                currency=currency,
                lines=_payment_lines(quote, number, due, covered, applied),
                order_url=order_url,
                pay_page_url=f"{settings.public_url}{here(f'/pay/{number}')}?token={token}",
                cancel_url=f"{settings.public_url}{here('/cart')}",
            )
        )
    except DomainError as exc:
        if committing and order_id is not None:
            _call_off(order_id, number, str(exc.data.get("reason") or exc.code))
        raise
    except Exception as exc:
        if not committing and is_database_unavailable(exc):
            raise  # nothing was written: the edge answers "try again" (503, Retry-After)
        log.exception("checkout failed%s", f" after writing order {number}" if committing else "")
        if committing and order_id is not None:
            _call_off(order_id, number, "the checkout failed after the order was written")
        raise CheckoutFailed(
            "We could not place your order; nothing was charged. Please try again in a moment."
        ) from None
    return CheckoutResult(
        number=number,
        access_token=token,
        payment_url=payment_url,
        order_url=order_url,
        total_minor=total,
        currency=currency,
        test_payment=paying.is_test(settings),
        paid_from_balances_minor=covered,
        discount_minor=applied.total_minor,
    )


def _payment_lines(
    quote: Quote, number: str, due: int, covered: int, applied: promos.Applied
) -> tuple[PaymentLine, ...]:
    """What the payment page lists, adding up to ``due``: the order's lines, or — when
    gift cards or credit paid part of it — one line for exactly the rest. A line a promo
    code lowered is one item at its discounted total ("2 x Starfall (Steam, GLOBAL), code
    SUMMER10"), since a discount need not divide evenly by the quantity."""
    if covered:
        return (
            PaymentLine(
                title=f"Order {number} (the rest after gift cards and store credit)",
                quantity=1,
                unit_price_minor=due,
                currency=quote.currency,
            ),
        )
    out = []
    for ln in quote.lines:
        name = f"{ln.title} ({ln.platform}, {ln.region})"
        off = applied.by_line.get(row_id(ln.product_id), 0)
        if off:
            out.append(
                PaymentLine(
                    title=f"{ln.quantity} x {name}, code {', '.join(applied.codes)}",
                    quantity=1,
                    unit_price_minor=ln.line_total_minor - off,
                    currency=ln.currency,
                )
            )
        else:
            out.append(PaymentLine(name, ln.quantity, ln.unit_price_minor, ln.currency))
    return tuple(out)


def _paid_from_balances(order_id: int) -> None:
    """An order gift cards and credit paid wholly: paid now, through the same
    :func:`core.services.payments.mark_paid` as a card payment (fulfilment queued after
    the commit). Its own transaction, after the order's."""
    with session_scope() as session:
        order = session.get(Order, order_id)
        assert order is not None
        mark_paid(
            session=session,
            order=order,
            reference=f"{BALANCES}:{order.number}",
            amount_minor=0,
            currency=order.currency,
            provider=BALANCES,
        )


def _verified_owner(session: Session, email: str) -> int | None:
    """The verified account using ``email``: a guest order placed with it belongs to
    that account at once (its owner sees it in their account and "My keys"), as guest
    orders placed before are attached at verification and sign-in
    (core.services.accounts)."""
    found = session.exec(
        select(Customer.id).where(
            col(Customer.email) == email, col(Customer.verified_at).is_not(None)
        )
    ).first()
    return int(found) if found is not None else None


def _call_off(order_id: int, number: str, reason: str) -> None:
    """Cancel an order whose checkout failed after it was written (its reservation goes
    back with it). Best effort: if the database cannot be reached either, it is logged and
    the unpaid-order expiry cancels the order later. An order that was never committed is
    simply not there."""
    try:
        with session_scope() as session:
            _transition(
                session=session,
                order_id=order_id,
                to_status=S.CANCELLED,
                actor=CHECKOUT,
                reason=f"checkout did not complete: {reason}",
                expected_from=S.PENDING_PAYMENT,
            )
    except NotFound:
        pass  # the commit never happened
    except Exception:
        log.exception(
            "could not cancel order %s after its checkout failed; the unpaid-order expiry "
            "will cancel it and release its reservation",
            number,
        )


def pay_test_order(*, number: str, access_token: str) -> None:
    """The built-in test payment page's "Pay" button. Only in test-payment mode
    (NoTestPayments, 403, when Stripe is configured). The access token must open the
    order (OrderNotFound otherwise). A pending order gets a signed Stripe-format
    ``checkout.session.completed`` event through the webhook path; an order already
    paid is left alone (paying twice is harmless); a cancelled one is refused."""
    if not get_settings().test_payments:
        raise NoTestPayments("test payments are off: this shop takes real payments through Stripe")
    with session_scope(write=False) as session:
        order = open_order(session=session, number=number, access_token=access_token)
        status, order_number = order.status, order.number
    if status == S.CANCELLED:
        raise OrderNotPayable(
            f"Order {order_number} was cancelled (it was not paid in time); please order again.",
            order=order_number,
        )
    if status != S.PENDING_PAYMENT:
        return
    send_test_event(order_number=order_number)


__all__ = [
    "CartLine",
    "CartRejected",
    "CheckoutFailed",
    "CheckoutResult",
    "OrderNotFound",
    "PaymentUnavailable",
    "Quote",
    "QuoteLine",
    "pay_test_order",
    "place_order",
    "quote_cart",
]
