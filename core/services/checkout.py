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
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlmodel import Session

from core.config import get_settings
from core.db import is_database_unavailable, session_scope
from core.errors import DomainError, InvalidInput, NotFound
from core.models import Customer, OrderStatus, Product, row_id
from core.services.audit import Actor, record_audit
from core.services.catalogue import SLUG_RE, products
from core.services.customers import normalise_email
from core.services.notifications import order_access_token
from core.services.orders import MAX_LINES, MAX_QUANTITY_PER_LINE, LineRequest, create_order
from core.services.orders import transition_order as _transition
from core.services.payment_methods import PaymentLine, PaymentRequest, PaymentUnavailable, method
from core.services.portal import OrderNotFound, open_order, order_page_url
from core.services.reservations import NothingToServe, reserve_order
from core.services.storefront import availability
from core.services.test_payments import NoTestPayments, send_test_event

log = logging.getLogger(__name__)

S = OrderStatus
CHECKOUT: Final = Actor.system("checkout")


@dataclass(frozen=True, slots=True)
class CartLine:
    slug: str
    quantity: int


@dataclass(frozen=True, slots=True)
class QuoteLine:
    slug: str
    title: str
    platform: str
    region: str
    cover_url: str | None
    unit_price_minor: int
    currency: str
    quantity: int
    line_total_minor: int
    can_buy: bool
    problem: str | None
    max_quantity: int = 0  # how many one order may take now
    product_id: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    lines: list[QuoteLine]
    total_minor: int
    currency: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The cart can be checked out as it is."""
        return bool(self.lines) and not self.problems


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    number: str
    access_token: str
    payment_url: str
    order_url: str
    total_minor: int
    currency: str
    test_payment: bool  # the payment page is the built-in test page


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _merged(lines: Sequence[CartLine]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Cart lines with the same product added together (first position kept), and the
    problems of the cart's shape."""
    problems: list[str] = []
    if len(lines) > MAX_LINES:
        problems.append(f"An order holds at most {MAX_LINES} different products.")
    merged: dict[str, Any] = {}
    for line in lines:
        slug = line.slug if isinstance(line.slug, str) else ""
        qty = line.quantity
        if slug in merged and _is_int(merged[slug]) and _is_int(qty):
            merged[slug] += qty
        elif slug not in merged:
            merged[slug] = qty
    return list(merged.items()), problems


def quote_cart(*, session: Session, lines: list[CartLine]) -> Quote:
    """Price a cart with today's prices and stock. Never raises for the cart's content:
    each line says whether it can be bought and, if not, why (``problem``); ``problems``
    collects every problem of the cart, including mixed currencies and too many lines.
    ``total_minor`` sums the lines that can be bought."""
    entries, problems = _merged(lines)
    slugs = [s for s, _ in entries if s and SLUG_RE.fullmatch(s)]
    found = {
        p.slug: p
        for p in session.execute(select(Product).where(products.c.slug.in_(slugs))).scalars()
    }
    out: list[QuoteLine] = []
    currencies: list[str] = []
    for slug, qty in entries:
        product = found.get(slug)
        problem: str | None
        if product is None or not product.active:
            problem = f"We could not find the product {slug!r}; it may no longer be for sale."
            problems.append(problem)
            out.append(
                QuoteLine(slug=slug, title=slug, platform="", region="", cover_url=None,
                          unit_price_minor=0, currency="", quantity=qty if _is_int(qty) else 0,
                          line_total_minor=0, can_buy=False, problem=problem)
            )  # fmt: skip
            continue
        stock = availability(session=session, product=product)
        most = min(MAX_QUANTITY_PER_LINE, stock.total)
        problem = None
        if not _is_int(qty) or qty < 1:
            problem = f"Choose a quantity of at least 1 for {product.title}."
        elif qty > MAX_QUANTITY_PER_LINE:
            problem = f"At most {MAX_QUANTITY_PER_LINE} of {product.title} per order."
        elif not stock.can_buy or qty > stock.total:
            problem = _stock_problem(product.title, product.platform, product.region, stock.total)
        if problem:
            problems.append(problem)
        else:
            currencies.append(product.currency)
        quantity = qty if _is_int(qty) else 0
        out.append(
            QuoteLine(
                slug=product.slug,
                title=product.title,
                platform=product.platform,
                region=product.region,
                cover_url=product.cover_url,
                unit_price_minor=product.price_minor,
                currency=product.currency,
                quantity=quantity,
                line_total_minor=product.price_minor * max(quantity, 0),
                can_buy=problem is None,
                problem=problem,
                max_quantity=most,
                product_id=product.id,
            )
        )
    if len(set(currencies)) > 1:
        problems.append(
            "Products priced in different currencies cannot be bought in one order; "
            "please order them separately."
        )
    currency = currencies[0] if currencies else next((ln.currency for ln in out if ln.currency), "")
    total = sum(ln.line_total_minor for ln in out if ln.can_buy and ln.currency == currency)
    return Quote(lines=out, total_minor=total, currency=currency, problems=problems)


def _check_shape(lines: Any) -> None:
    """Refuse what is not a cart at all (wrong types), before any database work."""
    if not isinstance(lines, (list, tuple)) or not lines:
        raise CartRejected(["Your cart is empty."])
    if not all(isinstance(ln, CartLine) for ln in lines):
        raise InvalidInput("lines must be CartLine items", field="lines")


def _stock_problem(title: str, platform: str, region: str, available: int) -> str:
    """The customer's sentence for a product the shop cannot serve in that quantity."""
    if available <= 0:
        return f"{title} ({platform}, {region}) is out of stock."
    return f"Only {available} of {title} available right now."


def _shortfall_problems(quote: Quote, exc: NothingToServe) -> list[str]:
    """NothingToServe (another checkout took the stock between quote and reservation) in
    the same words as the quote's own stock problems."""
    by_id = {ln.product_id: ln for ln in quote.lines}
    problems = []
    for short in exc.data.get("details", []):
        line = by_id.get(short["product_id"])
        if line is not None:
            problems.append(
                _stock_problem(line.title, line.platform, line.region, short["available"])
            )
    return problems or ["Part of your cart just sold out; please review it and try again."]


def place_order(
    *,
    email: str,
    lines: list[CartLine],
    customer_id: int | None = None,
    ip: str | None = None,
    payment_method: str = "card",
) -> CheckoutResult:
    """Place an order, reserve what will serve it, and open its payment. Owns its
    transactions. All or nothing from the caller's point of view: it returns the order
    (number, access token, payment URL, order page URL), or raises and leaves no order
    the caller does not know about.

    Refuses, writing nothing: a malformed e-mail (InvalidInput), an empty cart, more than
    MAX_LINES products, a quantity outside 1..MAX_QUANTITY_PER_LINE, an unknown or
    unbuyable product, mixed currencies, a cart the shop's own keys plus free provider
    units cannot serve (CartRejected, every problem listed), an unknown ``customer_id``
    (InvalidInput), a payment method the shop does not offer (InvalidInput).

    The payment is opened with the method the customer chose
    (:mod:`core.services.payment_methods`: ``card`` or ``crypto``).

    The order, its reservation (``reservations.reserve_order``: own keys claimed for its
    lines, the rest held against a provider offer) and the audit event are one
    transaction. If anything fails once that transaction has been sent to commit (its
    commit, the payment session, the writes after it), the order is cancelled — which
    releases its reservation — best effort and logged (the unpaid-order expiry is the
    backstop), and the caller gets PaymentUnavailable (Stripe refused) or CheckoutFailed.
    """
    address = normalise_email(email)
    _check_shape(lines)
    paying = method(payment_method)
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
            quote = quote_cart(session=session, lines=list(lines))
            if not quote.ok:
                raise CartRejected(quote.problems or ["Your cart is empty."])
            order = create_order(
                session=session,
                email=address,
                lines=[LineRequest(row_id(ln.product_id), ln.quantity) for ln in quote.lines],
                customer_id=customer_id,
                actor=actor,
            )
            number, total, currency = order.number, order.total_minor, order.currency
            order_id = row_id(order.id)
            try:
                reserve_order(session=session, order_id=order_id)
            except NothingToServe as exc:
                raise CartRejected(_shortfall_problems(quote, exc)) from None
            record_audit(
                session=session,
                actor=actor,
                action="order.place",
                object_type="order",
                object_id=number,
                data={"total_minor": total, "currency": currency, "guest": customer_id is None},
            )
            committing = True
        token = order_access_token(number)
        settings = get_settings()
        order_url = order_page_url(number, token)
        payment_url = paying.open_payment(
            PaymentRequest(
                order_id=order_id,
                number=number,
                email=address,
                total_minor=total,
                currency=currency,
                lines=tuple(
                    PaymentLine(
                        title=f"{ln.title} ({ln.platform}, {ln.region})",
                        quantity=ln.quantity,
                        unit_price_minor=ln.unit_price_minor,
                        currency=ln.currency,
                    )
                    for ln in quote.lines
                ),
                order_url=order_url,
                pay_page_url=f"{settings.public_url}/pay/{number}?token={token}",
                cancel_url=f"{settings.public_url}/cart",
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
    )


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
