"""Orders: creation with a price snapshot, public numbers, and the status machine.

Every status change goes through :func:`transition_order`, the one place that knows the
allowed transitions. It changes the row with a compare-and-set ``UPDATE … WHERE status =
:from``, so two workers racing to move the same order cannot both succeed, and it
writes an :class:`OrderEvent` in the same transaction. A move to ``cancelled`` also
gives back what the order reserved at checkout
(:func:`core.services.reservations.release_reservation`), what gift cards and store
credit paid of it (:func:`core.services.credit.return_order_tenders`) and the promo code
uses it took (:func:`core.services.promos.release_for_order`): whichever path cancels an
order — expiry, a refused payment session, a checkout that failed after its commit, an
operator — a cancelled order holds no key, no provider unit and no promo code use.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col, select

from core import metrics, tracing
from core.errors import ConcurrentUpdate, InvalidInput, InvalidTransition, NotFound, UnknownProduct
from core.models import Order, OrderEvent, OrderLine, OrderStatus, Product, row_id, utcnow
from core.services import credit
from core.services.alerts import resolve_alerts
from core.services.audit import Actor, record_audit
from core.services.customers import normalise_email
from core.services.promos import release_for_order
from core.services.reservations import release_reservation

S = OrderStatus

#: The status machine (DESIGN §3). Anything not listed is refused.
ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CANCELLED}),
    S.PAID: frozenset({S.FULFILLED, S.NEEDS_ATTENTION, S.REFUNDED, S.DISPUTED}),
    # An operator resolves it (fulfilled), retries it (paid), or gives the money back.
    S.NEEDS_ATTENTION: frozenset({S.PAID, S.FULFILLED, S.REFUNDED, S.CANCELLED, S.DISPUTED}),
    # A faulty-key report or a late problem reopens it; money can still go back.
    S.FULFILLED: frozenset({S.NEEDS_ATTENTION, S.REFUNDED, S.DISPUTED}),
    # A dispute is won (back to fulfilled) or lost (refunded).
    S.DISPUTED: frozenset({S.FULFILLED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.CANCELLED: frozenset(),
}

MAX_QUANTITY_PER_LINE = 10
MAX_LINES = 20

# Crockford base32 without ambiguous letters: 40 random bits → 8 characters.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_order_number() -> str:
    """``KS-XXXX-XXXX``: 40 random bits, so numbers reveal nothing about volume."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"KS-{raw[:4]}-{raw[4:]}"


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(from_status, frozenset())


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


def create_order(
    *,
    session: Session,
    email: str,
    lines: Sequence[LineRequest],
    customer_id: int | None = None,
    actor: Actor | None = None,
    currency: str | None = None,
    country: str | None = None,
    language: str | None = None,
) -> Order:
    """A new order ``pending_payment`` with a price snapshot per line, in ``currency``
    (None: the products' own, which must agree). Every product must have a price in it
    (core.services.catalogue.prices). With ``country`` the order stores the buyer's
    country and the VAT its total contains (core.services.vat). ``language`` (the
    storefront's, core.i18n; anything else is English) is the language of its e-mails.
    Runs in the caller's transaction (flushes, never commits)."""
    from core.i18n import normalise_language
    from core.services.catalogue.prices import prices_in
    from core.services.storefront import is_upcoming
    from core.services.vat import country as vat_country
    from core.services.vat import vat_included

    address = normalise_email(email)
    if not lines:
        raise InvalidInput("an order needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"an order has at most {MAX_LINES} lines", field="lines")
    merged: dict[int, int] = {}
    for line in lines:
        if not isinstance(line.quantity, int) or line.quantity < 1:
            raise InvalidInput("quantity must be a whole number of at least 1", field="quantity")
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    products = {
        p.id: p for p in session.exec(select(Product).where(col(Product.id).in_(list(merged))))
    }
    for product_id, qty in merged.items():
        product = products.get(product_id)
        if product is None or not product.active:
            raise UnknownProduct(f"product {product_id} is not for sale", product_id=product_id)
        if qty > MAX_QUANTITY_PER_LINE:
            raise InvalidInput(
                f"at most {MAX_QUANTITY_PER_LINE} of {product.title} per order", field="quantity"
            )
    if currency is None:
        currencies = {products[pid].currency for pid in merged}
        if len(currencies) != 1:
            raise InvalidInput(
                "all products in one order must be priced in the same currency", field="lines"
            )
        currency = currencies.pop()
    prices = prices_in(session=session, products=list(products.values()), currency=currency)
    for pid in merged:
        if pid not in prices:
            raise InvalidInput(f"{products[pid].title} is not sold in {currency}", field="currency")
    currency = currency.upper()
    subtotal = sum(prices[pid].minor * qty for pid, qty in merged.items())
    buyer = vat_country(country) if country is not None else None
    rate = buyer.rate_bp if buyer else 0

    order = _insert_with_unique_number(
        session,
        lambda number: Order(
            number=number,
            email=address,
            customer_id=customer_id,
            status=S.PENDING_PAYMENT,
            currency=currency,
            subtotal_minor=subtotal,
            total_minor=subtotal,
            country=buyer.code if buyer else None,
            vat_rate_bp=rate,
            vat_minor=vat_included(subtotal, rate),
            language=normalise_language(language),
        ),
    )
    for pid, qty in merged.items():
        p = products[pid]
        session.add(
            OrderLine(
                order_id=row_id(order.id),
                product_id=pid,
                title=p.title,
                platform=p.platform,
                region=p.region,
                unit_price_minor=prices[pid].minor,
                currency=currency,
                quantity=qty,
                is_preorder=is_upcoming(p),
            )
        )
    session.add(
        OrderEvent(
            order_id=row_id(order.id),
            from_status=None,
            to_status=S.PENDING_PAYMENT,
            reason="order placed",
            actor=str(actor or Actor.system("checkout")),
        )
    )
    session.flush()
    return order


def _insert_with_unique_number(
    session: Session, build: Callable[[str], Order], attempts: int = 5
) -> Order:
    for _ in range(attempts):
        order = build(new_order_number())
        try:
            with session.begin_nested():
                session.add(order)
                session.flush()
            return order
        except IntegrityError:
            continue  # a 1-in-10^12 collision of random numbers: draw again
    raise RuntimeError("could not draw a unique order number")


_O = Order.__table__  # type: ignore[attr-defined]
_E = OrderEvent.__table__  # type: ignore[attr-defined]
# Built once: the order's status read and its event; only bound values change per call.
_STATUS_READ = sa_select(_O.c.number, _O.c.status, _O.c.paid_at).where(
    _O.c.id == bindparam("order_id")
)
_EVENT = insert(_E)


def transition_order(
    *,
    session: Session,
    order_id: int,
    to_status: str,
    actor: Actor,
    reason: str = "",
    expected_from: str | None = None,
    data: dict[str, Any] | None = None,
) -> Order:
    """Move an order to ``to_status`` if the status machine allows it, and log it.

    Raises :class:`InvalidTransition` for a forbidden change and
    :class:`ConcurrentUpdate` when the status changed under us (compare-and-set lost).
    ``expected_from`` makes the change conditional on a known current status.
    ``needs_attention`` requires a reason an operator can act on. Operator-made changes
    are also audited. Moving to ``paid`` the first time issues the order's invoice with
    the next number of the year (core.services.invoices). Moving to ``cancelled``
    releases the order's reservation. Runs in
    the caller's transaction (flushes, never commits). Returns the order as it is now
    (:func:`record_transition` does the same without it).
    """
    values = record_transition(
        session=session,
        order_id=order_id,
        to_status=to_status,
        actor=actor,
        reason=reason,
        expected_from=expected_from,
        data=data,
    )
    loaded = session.identity_map.get(identity_key(Order, order_id))
    if loaded is None:
        found = session.get(Order, order_id)
        assert found is not None
        return found
    # The row in memory gets what the UPDATE wrote, without reading it back.
    for name, value in values.items():
        set_committed_value(loaded, name, value)
    return loaded


def record_transition(
    *,
    session: Session,
    order_id: int,
    to_status: str,
    actor: Actor,
    reason: str = "",
    expected_from: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`transition_order` without loading the order: the rules, the update and the
    event, as Core statements built once (fulfilment's hot path). Returns the columns
    written. Runs in the caller's transaction (flushes, never commits)."""
    session.flush()  # the caller's pending changes first
    conn = session.connection()  # Core statements: no ORM execution layer on the hot path
    row = conn.execute(_STATUS_READ, {"order_id": order_id}).first()
    if row is None:
        raise NotFound(f"order {order_id} does not exist", order_id=order_id)
    number, current, paid_at = row
    tracing.annotate(order=number)
    if expected_from is not None and current != expected_from:
        raise ConcurrentUpdate(f"order {number} is {current}, not {expected_from}", order=number)
    if not can_transition(current, to_status):
        raise InvalidTransition(number, current, to_status)
    if to_status == S.NEEDS_ATTENTION and not reason.strip():
        raise InvalidInput("an order needing attention needs a reason", field="reason")

    now = utcnow()
    values: dict[str, Any] = {"status": to_status, "updated_at": now}
    if to_status == S.PAID and paid_at is None:
        values["paid_at"] = now
    if to_status == S.FULFILLED:
        values["fulfilled_at"] = now
    values["attention_reason"] = reason.strip() if to_status == S.NEEDS_ATTENTION else None
    result = conn.execute(
        _update_status(tuple(values)),
        {**{f"new_{k}": v for k, v in values.items()}, "order_id": order_id, "current": current},
    )
    if result.rowcount != 1:
        raise ConcurrentUpdate(
            f"order {number} changed while moving it to {to_status}", order=number
        )
    if to_status == S.PAID and paid_at is None:
        from core.services.invoices import issue_invoice

        issue_invoice(session=session, order_id=order_id, issued_at=now)  # gap-free number
    metrics.order_transition(session, to_status=str(to_status), paid_at=paid_at, now=now)
    if current == S.NEEDS_ATTENTION and to_status != S.NEEDS_ATTENTION:
        resolve_alerts(
            session=session,
            subject=f"order:{number}",
            kinds=("needs_attention",),
            resolution=f"order {number} {to_status} ({actor}{': ' + reason if reason else ''})",
        )
    if to_status == S.CANCELLED:
        released = release_reservation(session=session, order_id=order_id)
        if released:
            data = {**(data or {}), "keys_released": released}
        codes = release_for_order(session=session, order_id=order_id)
        if codes:
            data = {**(data or {}), "promo_codes_released": codes}
        cancelled = session.get(Order, order_id)
        assert cancelled is not None
        given_back = credit.return_order_tenders(
            session=session, order=cancelled, reason=credit.Reason.ORDER_RELEASE, actor=actor
        )
        if given_back:
            data = {**(data or {}), "balances_given_back_minor": given_back}
    session.flush()  # what the steps above changed through the ORM, before the event
    conn.execute(
        _EVENT,
        {
            "order_id": order_id,
            "from_status": current,
            "to_status": to_status,
            "reason": reason,
            "actor": str(actor),
            "data": data or {},
            "created_at": now,
        },
    )
    if actor.type == "operator":
        record_audit(
            session=session,
            actor=actor,
            action="order.transition",
            object_type="order",
            object_id=number,
            data={"from": current, "to": to_status, "reason": reason},
        )
        session.flush()
    return values


@functools.cache
def _update_status(columns: tuple[str, ...]) -> Any:
    """The compare-and-set UPDATE writing ``columns`` (one per shape of transition)."""
    return (
        update(_O)
        .where(_O.c.id == bindparam("order_id"), _O.c.status == bindparam("current"))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def get_order_by_number(*, session: Session, number: str) -> Order:
    order = session.exec(select(Order).where(Order.number == number.strip().upper())).first()
    if order is None:
        raise NotFound(f"no order {number}", order=number)
    return order


def order_lines(*, session: Session, order_id: int) -> list[OrderLine]:
    return list(
        session.exec(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id))
        )
    )


def order_events(*, session: Session, order_id: int) -> list[OrderEvent]:
    return list(
        session.exec(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(col(OrderEvent.id))
        )
    )
