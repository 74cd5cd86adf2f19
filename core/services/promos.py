"""Promo codes: the one home of what a code takes off a cart and when it may be used.

- :func:`discounts` prices codes against cart lines (read-only): which lines a code
  applies to (its scope: the shop, products, platforms or genres), the minimum order,
  start and end, pause, total and per-customer limits, stacking (one code per order
  unless every code given allows combining) and the cost floor
  (:func:`core.services.pricing.cost_floors`; a code never takes a line below it unless
  the code says it may). Percent codes round each line's discount down; a fixed amount
  is shared between the lines it applies to in proportion to their price. Anything
  wrong raises :class:`PromoRejected` with one sentence for the customer.
- :func:`redeem_for_order` runs inside the checkout's transaction, after the order was
  written: it prices the codes against the order's lines, takes one use of each code
  (:func:`core.services.locking.take_promo_use`, a conditional UPDATE holding the
  code's row lock), re-counts the customer's uses under that lock, and writes the
  redemptions and each line's discount; the order's total becomes subtotal - discount.
- :func:`release_for_order` gives the uses back when an order is cancelled or expires
  unpaid (called by :func:`core.services.orders.transition_order`); a refund keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core.errors import InvalidInput
from core.i18n import gettext
from core.models import (
    Order,
    OrderLine,
    Product,
    PromoCode,
    PromoKind,
    PromoRedemption,
    PromoScope,
    row_id,
    utcnow,
)
from core.money import format_money
from core.services import locking
from core.services.customers import normalise_email
from core.services.pricing import cost_floors

CODE_RE: Final = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}")
MAX_CODES_PER_ORDER: Final = 5


class PromoRejected(InvalidInput):
    """A promo code cannot be used on this cart; the message says why, for the customer."""

    code = "promo_rejected"


def normalise_code(text: str) -> str:
    """``" summer-10 "`` → ``"SUMMER-10"``; anything else than 3 to 40 letters, digits
    and hyphens is refused."""
    code = (text or "").strip().upper() if isinstance(text, str) else ""
    if not CODE_RE.fullmatch(code):
        raise PromoRejected(
            gettext("%(text)s is not a promo code.") % {"text": repr(text)}, field="promo_code"
        )
    return code


def parse_codes(text: str | None) -> list[str]:
    """The codes a customer typed, separated by commas or spaces, each once, in order."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise PromoRejected(gettext("The promo code must be text."), field="promo_code")
    out: list[str] = []
    for part in re.split(r"[\s,;]+", text.strip()):
        if part and (code := normalise_code(part)) not in out:
            out.append(code)
    if len(out) > MAX_CODES_PER_ORDER:
        raise PromoRejected(
            gettext("At most %(count)s promo codes per order.") % {"count": MAX_CODES_PER_ORDER},
            field="promo_code",
        )
    return out


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A cart or order line as a code sees it."""

    product_id: int
    unit_price_minor: int
    quantity: int

    @property
    def total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(slots=True)
class Applied:
    """What the codes take off: per product id (the whole line), per code, in all."""

    currency: str
    codes: list[str] = field(default_factory=list)
    by_line: dict[int, int] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    promo_ids: dict[str, int] = field(default_factory=dict)

    @property
    def total_minor(self) -> int:
        return sum(self.by_line.values())


# -- rules --------------------------------------------------------------------------------


def _money(minor: int, currency: str) -> str:
    return format_money(minor, currency)


def _applies(promo: PromoCode, product: Product) -> bool:
    values = promo.scope_values or []
    if promo.scope == PromoScope.SHOP:
        return True
    if promo.scope == PromoScope.PRODUCTS:
        return product.id in values
    if promo.scope == PromoScope.PLATFORMS:
        return product.platform.lower() in values
    if promo.scope == PromoScope.GENRES:
        return (product.genre or "").lower() in values
    return False


def uses_by(*, session: Session, promo_id: int, email: str, customer_id: int | None) -> int:
    """Live (not released) uses of a code by this buyer: by the account, or by the
    e-mail address (a guest, or the account's address used as a guest). Read-only."""
    who = [col(PromoRedemption.email) == email]
    if customer_id is not None:
        who.append(col(PromoRedemption.customer_id) == customer_id)
    return int(
        session.exec(
            select(func.count())
            .select_from(PromoRedemption)
            .where(
                col(PromoRedemption.promo_id) == promo_id,
                col(PromoRedemption.released_at).is_(None),
                or_(*who),
            )
        ).one()
    )


def check_usable(promo: PromoCode, *, now: datetime, currency: str, subtotal_minor: int) -> None:
    """PromoRejected unless ``promo`` may be used now on an order of ``subtotal_minor``
    in ``currency`` (pause, start, end, uses left, minimum, currency of a fixed code)."""
    code = promo.code
    if promo.paused:
        raise PromoRejected(
            gettext("Promo code %(code)s is paused.") % {"code": code}, field="promo_code"
        )
    if promo.starts_at is not None and now < promo.starts_at:
        raise PromoRejected(
            gettext("Promo code %(code)s is not valid yet: it starts on %(start)s UTC.")
            % {"code": code, "start": f"{promo.starts_at:%Y-%m-%d %H:%M}"},
            field="promo_code",
        )
    if promo.ends_at is not None and now >= promo.ends_at:
        raise PromoRejected(
            gettext("Promo code %(code)s has expired.") % {"code": code}, field="promo_code"
        )
    if promo.max_uses is not None and promo.uses >= promo.max_uses:
        raise PromoRejected(
            gettext("Promo code %(code)s has been used up.") % {"code": code}, field="promo_code"
        )
    if promo.kind == PromoKind.FIXED and currency not in (promo.amounts or {}):
        raise PromoRejected(
            gettext("Promo code %(code)s cannot be used in %(currency)s.")
            % {"code": code, "currency": currency},
            field="promo_code",
        )
    minimum = (promo.minimums or {}).get(currency)
    if minimum is not None and subtotal_minor < minimum:
        raise PromoRejected(
            gettext("Promo code %(code)s needs an order of at least %(amount)s.")
            % {"code": code, "amount": _money(minimum, currency)},
            field="promo_code",
        )


def _share(amount: int, room: dict[int, int], weights: dict[int, int]) -> dict[int, int]:
    """``amount`` spread over the lines in proportion to ``weights``, no line getting
    more than its ``room``; what a full line cannot take goes to the others, the last
    minor units one by one. Never more than the rooms add up to."""
    out = dict.fromkeys(room, 0)
    left = min(amount, sum(room.values()))
    while left > 0:
        open_lines = [pid for pid in room if room[pid] > out[pid]]
        weight = {pid: max(weights.get(pid, 0), 0) for pid in open_lines}
        if sum(weight.values()) <= 0:
            weight = dict.fromkeys(open_lines, 1)
        whole = sum(weight.values())
        given = 0
        for pid in open_lines:
            take = min(left * weight[pid] // whole, room[pid] - out[pid])
            out[pid] += take
            given += take
        if given == 0:
            for pid in open_lines:
                if given >= left:
                    break
                out[pid] += 1
                given += 1
        left -= given
    return out


def discounts(
    *,
    session: Session,
    lines: Sequence[PricedLine],
    currency: str,
    codes: Sequence[str],
    email: str,
    customer_id: int | None = None,
    now: datetime | None = None,
) -> Applied:
    """What ``codes`` take off ``lines`` in ``currency`` for this buyer (see the module
    docstring). Read-only. Raises PromoRejected with the customer's sentence: unknown,
    paused, not yet valid, expired, used up (in all or by this buyer), minimum not
    reached, not in this currency, not combinable, or applying to none of the lines
    (or to none that the cost floor leaves room on)."""
    now = now or utcnow()
    applied = Applied(currency=currency)
    if not codes:
        return applied
    promos = {
        p.code: p for p in session.exec(select(PromoCode).where(col(PromoCode.code).in_(codes)))
    }
    for code in codes:
        if code not in promos:
            raise PromoRejected(
                gettext("Promo code %(code)s does not exist.") % {"code": code}, field="promo_code"
            )
    if len(codes) > 1:
        for code in codes:
            if not promos[code].stackable:
                raise PromoRejected(
                    gettext("Promo code %(code)s cannot be combined with other codes.")
                    % {"code": code},
                    field="promo_code",
                )
    products = {
        p.id: p
        for p in session.exec(
            select(Product).where(col(Product.id).in_([ln.product_id for ln in lines]))
        )
    }
    subtotal = sum(ln.total_minor for ln in lines)
    floors = cost_floors(session=session, products=list(products.values()), currency=currency)
    taken = dict.fromkeys((ln.product_id for ln in lines), 0)
    for code in codes:
        promo = promos[code]
        check_usable(promo, now=now, currency=currency, subtotal_minor=subtotal)
        if promo.per_customer is not None and (
            uses_by(session=session, promo_id=row_id(promo.id), email=email,
                    customer_id=customer_id) >= promo.per_customer
        ):  # fmt: skip
            raise PromoRejected(
                gettext("You have already used promo code %(code)s as often as it allows.")
                % {"code": code},
                field="promo_code",
            )
        eligible = [
            ln
            for ln in lines
            if ln.product_id in products and _applies(promo, products[ln.product_id])
        ]
        if not eligible:
            raise PromoRejected(
                gettext("Promo code %(code)s does not apply to the products in your cart.")
                % {"code": code},
                field="promo_code",
            )
        room: dict[int, int] = {}
        for ln in eligible:
            left = ln.total_minor - taken[ln.product_id]
            floor = floors.get(ln.product_id)
            if floor is not None and not promo.below_cost:
                left = min(left, ln.total_minor - floor * ln.quantity - taken[ln.product_id])
            room[ln.product_id] = max(left, 0)
        if promo.kind == PromoKind.PERCENT:
            wanted = {
                ln.product_id: (ln.total_minor - taken[ln.product_id])
                * (promo.percent_bp or 0)
                // 10_000
                for ln in eligible
            }
            got = {pid: min(wanted[pid], room[pid]) for pid in room}
        else:
            amount = int((promo.amounts or {})[currency])
            got = _share(amount, room, {ln.product_id: ln.total_minor for ln in eligible})
        off = sum(got.values())
        if off <= 0:
            raise PromoRejected(
                gettext(
                    "Promo code %(code)s cannot lower the prices of these products any further."
                )
                % {"code": code},
                field="promo_code",
            )
        for pid, minor in got.items():
            taken[pid] += minor
        applied.codes.append(code)
        applied.by_code[code] = off
        applied.promo_ids[code] = row_id(promo.id)
    applied.by_line = {pid: minor for pid, minor in taken.items() if minor}
    return applied


@dataclass(frozen=True, slots=True)
class CartDiscount:
    """What a code typed in the cart takes off its quote, or why it cannot."""

    applied: Applied
    error: str = ""


def quote_discounts(
    *,
    session: Session,
    lines: Sequence[Any],
    currency: str,
    promo_code: str,
    email: str,
    customer_id: int | None = None,
) -> CartDiscount:
    """The cart page's preview of ``promo_code`` on a quote's lines (anything with
    ``product_id``, ``unit_price_minor``, ``quantity`` and ``can_buy``: a
    :class:`core.services.cart.QuoteLine`): the same :func:`discounts` checkout applies,
    its refusal as ``error`` instead of raised. Read-only; nothing is reserved."""
    priced = [
        PricedLine(int(ln.product_id), ln.unit_price_minor, ln.quantity)
        for ln in lines
        if ln.product_id is not None and ln.can_buy
    ]
    try:
        address = normalise_email(email)
    except InvalidInput:
        address = ""  # not typed yet: the per-customer limit is checked at checkout
    try:
        applied = discounts(
            session=session,
            lines=priced,
            currency=currency,
            codes=parse_codes(promo_code),
            email=address,
            customer_id=customer_id,
        )
    except PromoRejected as exc:
        return CartDiscount(Applied(currency=currency), exc.message)
    return CartDiscount(applied)


# -- checkout and cancel (the caller's transaction) ---------------------------------------


def redeem_for_order(
    *, session: Session, order_id: int, codes: Sequence[str], now: datetime | None = None
) -> Applied:
    """Apply ``codes`` to a just-written order: price them against its lines, take one
    use of each code under its row lock, re-check the buyer's uses under that lock,
    record the redemptions and each line's discount, and lower the order's total (VAT
    recomputed on what is paid). Runs inside the checkout's transaction (flushes, never
    commits); PromoRejected rolls the whole checkout back."""
    from core.services.vat import vat_included

    order = session.get(Order, order_id)
    if order is None or not codes:
        return Applied(currency=order.currency if order else "")
    lines = list(
        session.exec(
            select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id))
        )
    )
    priced = [PricedLine(ln.product_id, ln.unit_price_minor, ln.quantity) for ln in lines]
    applied = discounts(
        session=session,
        lines=priced,
        currency=order.currency,
        codes=codes,
        email=order.email,
        customer_id=order.customer_id,
        now=now,
    )
    # Lock the codes in id order (locking.py's rule), then re-check what the lock guards.
    for code, promo_id in sorted(applied.promo_ids.items(), key=lambda item: item[1]):
        if not locking.take_promo_use(session, promo_id):
            raise PromoRejected(
                gettext("Promo code %(code)s has been used up.") % {"code": code},
                field="promo_code",
            )
        promo = session.get(PromoCode, promo_id)
        assert promo is not None
        if promo.per_customer is not None and (
            uses_by(session=session, promo_id=promo_id, email=order.email,
                    customer_id=order.customer_id) >= promo.per_customer
        ):  # fmt: skip
            raise PromoRejected(
                gettext("You have already used promo code %(code)s as often as it allows.")
                % {"code": code},
                field="promo_code",
            )
    for code in applied.codes:
        session.add(
            PromoRedemption(
                promo_id=applied.promo_ids[code],
                order_id=order_id,
                code=code,
                email=order.email,
                customer_id=order.customer_id,
                currency=order.currency,
                discount_minor=applied.by_code[code],
            )
        )
    for line in lines:
        line.discount_minor = applied.by_line.get(line.product_id, 0)
        session.add(line)
    order.discount_minor = applied.total_minor
    order.total_minor = order.subtotal_minor - applied.total_minor
    order.vat_minor = vat_included(order.total_minor, order.vat_rate_bp)
    session.add(order)
    session.flush()
    return applied


def release_for_order(*, session: Session, order_id: int) -> list[str]:
    """Give back the uses an order took (it was cancelled or expired unpaid): each live
    redemption is marked released and its code's counter goes down by one. Idempotent.
    Returns the codes released. Caller's transaction (flushes, never commits)."""
    live = list(
        session.exec(
            select(PromoRedemption)
            .where(PromoRedemption.order_id == order_id, col(PromoRedemption.released_at).is_(None))
            .order_by(col(PromoRedemption.promo_id))
        )
    )
    now = utcnow()
    for redemption in live:
        locking.give_back_promo_use(session, redemption.promo_id)
        redemption.released_at = now
        session.add(redemption)
    if live:
        session.flush()
    return [r.code for r in live]


def order_codes(*, session: Session, order_id: int) -> list[PromoRedemption]:
    """The codes an order used (its snapshot), released or not. Read-only."""
    return list(
        session.exec(
            select(PromoRedemption)
            .where(PromoRedemption.order_id == order_id)
            .order_by(col(PromoRedemption.id))
        )
    )
