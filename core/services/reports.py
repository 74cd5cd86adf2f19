"""Sales reports: revenue, cost and margin of delivered keys.

Each delivered key knows its sale price and its cost (the import's cost, or the provider
purchase's unit cost, kept on the key as ``cost_minor`` in ``cost_currency``). The sale
price is what the customer paid for it: its order line's unit price, less its share of
what promo codes took off the order and of what a partial refund gave back (the
order's ``total_minor - refunded_minor`` shared between its keys in proportion to their
unit prices, to the minor unit: an order's keys add up to exactly what it kept). A
faulty key and its replacement share their line's price: the customer paid once. Keys
taken back after a partial refund (revoked) leave their share out. A sale is a key delivered (``keys.delivered_at``) within the
period, of an order not refunded or cancelled. Sales are grouped by day, week (ISO, by
its Monday), month, product, platform, provider (the supplier of the key: the provider
it was bought from, or the supplier named at import) or source (``stock`` or
``provider``), one row per group and currency: currencies are never added together. A
key whose cost is unknown, or in another currency than the sale, counts in
``cost_unknown`` and adds no cost, so its margin is the whole price: the report says so.

Rows are read in a stream (``yield_per``), ordered by order: memory holds the groups
and one order's remainder, not the sales.

:func:`discounts_given` is the discount report: what promo codes took off paid orders,
per currency, code or campaign.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, func, select
from sqlmodel import Session

from core.errors import InvalidInput
from core.models import (
    Key,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    PromoCode,
    PromoRedemption,
)

GROUPS: Final = ("day", "week", "month", "product", "platform", "provider", "source")
EXCLUDED_STATUSES: Final = (OrderStatus.REFUNDED, OrderStatus.CANCELLED)
MAX_DAYS: Final = 3660


@dataclass
class SalesRow:
    group: str
    currency: str
    count: int = 0
    revenue_minor: int = 0
    cost_minor: int = 0
    cost_unknown: int = 0

    @property
    def margin_minor(self) -> int:
        return self.revenue_minor - self.cost_minor

    @property
    def margin_percent(self) -> float | None:
        if not self.revenue_minor:
            return None
        return round(100 * self.margin_minor / self.revenue_minor, 1)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """``start`` to ``end`` inclusive as UTC instants [from, to)."""
    if end < start:
        raise InvalidInput("the period ends before it starts", field="to")
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(f"a period is at most {MAX_DAYS} days", field="to")
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def _group_key(by: str, delivered_at: datetime, slug: str, platform: str, supplier: str | None,
               bought: bool) -> str:  # fmt: skip
    day = delivered_at.astimezone(UTC).date()
    if by == "day":
        return day.isoformat()
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    if by == "product":
        return slug
    if by == "platform":
        return platform
    if by == "provider":
        return supplier or ("unknown" if bought else "own stock")
    return "provider" if bought else "stock"


class _Share:
    """A key's share of what its order kept (``kept``: the total less refunds), in
    proportion to its unit price among the order's ``subtotal`` or, when the order has
    more keys counted as sales than it sold (a faulty key and its replacement),
    among their prices (``priced``): the customer paid once. Keys come in order by
    order; the remainder of each division is carried to the order's next key, so an
    order's keys, all counted, add up to exactly what it kept."""

    def __init__(self) -> None:
        self.order_id: int | None = None
        self.carry = 0

    def of(self, order_id: int, price: int, subtotal: int, priced: int, kept: int) -> int:
        whole = max(subtotal, priced)
        if kept == whole:  # no discount, nothing refunded, no replacement: the unit price
            return price
        if whole <= 0 or kept <= 0:
            return 0
        if order_id != self.order_id:
            self.order_id, self.carry = order_id, 0
        amount, self.carry = divmod(price * kept + self.carry, whole)
        return amount


def sales(*, session: Session, start: date, end: date, by: str = "day") -> list[SalesRow]:
    """The sales report (see the module docstring), sorted by group then currency."""
    if by not in GROUPS:
        raise InvalidInput(f"--by must be one of {', '.join(GROUPS)}", field="by")
    since, until = period(start, end)
    kt, lt, ot, pt = (_table(m) for m in (Key, OrderLine, Order, Product))
    k, line, o, p = kt.c, lt.c, ot.c, pt.c
    sold = [KeyStatus.DELIVERED, KeyStatus.FAULTY]
    # per order with a sale in the period: the prices of all its keys counted as sales
    k2, l2 = kt.alias("k2"), lt.alias("l2")
    priced = (
        select(l2.c.order_id, func.sum(l2.c.unit_price_minor).label("priced"))
        .select_from(k2.join(l2, l2.c.id == k2.c.order_line_id))
        .where(
            k2.c.status.in_(sold),
            l2.c.order_id.in_(
                select(line.order_id)
                .select_from(kt.join(lt, line.id == k.order_line_id))
                .where(k.delivered_at >= since, k.delivered_at < until)
            ),
        )
        .group_by(l2.c.order_id)
        .subquery()
    )
    stmt = (
        select(
            k.delivered_at,
            k.cost_minor,
            k.cost_currency,
            k.supplier,
            k.provider_purchase_id,
            line.unit_price_minor,
            line.currency,
            p.slug,
            line.platform,
            o.id,
            o.subtotal_minor,
            priced.c.priced,
            o.total_minor - o.refunded_minor,
        )
        .join(lt, line.id == k.order_line_id)
        .join(ot, o.id == line.order_id)
        .join(pt, p.id == line.product_id)
        .join(priced, priced.c.order_id == o.id)
        .where(
            k.delivered_at >= since,
            k.delivered_at < until,
            k.status.in_(sold),
            o.status.not_in(EXCLUDED_STATUSES),
        )
        .order_by(o.id, k.id)
        .execution_options(yield_per=2000)
    )
    groups: dict[tuple[str, str], SalesRow] = {}
    share = _Share()
    for (
        delivered_at,
        cost,
        cost_cur,
        supplier,
        purchase,
        price,
        currency,
        slug,
        platform,
        order_id,
        subtotal,
        counted,
        kept,
    ) in session.execute(stmt):
        bought = purchase is not None
        key = (_group_key(by, delivered_at, slug, platform, supplier, bought), currency)
        row = groups.get(key)
        if row is None:
            row = groups[key] = SalesRow(group=key[0], currency=currency)
        row.count += 1
        row.revenue_minor += share.of(order_id, price, subtotal, int(counted), kept)
        if cost is None or (cost_cur or currency) != currency:
            row.cost_unknown += 1
        else:
            row.cost_minor += cost
    return [groups[k] for k in sorted(groups)]


def daily_revenue(
    *, session: Session, start: date, end: date, currency: str
) -> Iterator[tuple[date, int]]:
    """Revenue per day in ``currency`` over the period, days without sales as 0 (the
    console's chart)."""
    by_day = {
        r.group: r.revenue_minor
        for r in sales(session=session, start=start, end=end, by="day")
        if r.currency == currency
    }
    day = start
    while day <= end:
        yield day, by_day.get(day.isoformat(), 0)
        day += timedelta(days=1)


# -- discounts -----------------------------------------------------------------------------

DISCOUNT_GROUPS: Final = ("currency", "code", "campaign")


@dataclass
class DiscountRow:
    group: str
    currency: str
    orders: int = 0
    discount_minor: int = 0
    paid_minor: int = 0  # what those orders cost the customers, after the discount


def discounts_given(
    *, session: Session, start: date, end: date, by: str = "currency"
) -> list[DiscountRow]:
    """What promo codes took off orders paid within the period, one row per group
    (``currency``, ``code`` or ``campaign``) and currency: currencies are never added
    together. Like the sales report, refunded and cancelled orders are left out (a
    cancelled order gave its use back; a refunded one gave its money back). Sorted by
    group then currency."""
    if by not in DISCOUNT_GROUPS:
        raise InvalidInput(f"--by must be one of {', '.join(DISCOUNT_GROUPS)}", field="by")
    since, until = period(start, end)
    rt, ot, ct = (_table(m) for m in (PromoRedemption, Order, PromoCode))
    r, o, c = rt.c, ot.c, ct.c
    stmt = (
        select(o.id, r.code, c.campaign, r.currency, r.discount_minor, o.total_minor)
        .join(ot, o.id == r.order_id)
        .join(ct, c.id == r.promo_id)
        .where(
            o.paid_at >= since,
            o.paid_at < until,
            o.status.not_in(EXCLUDED_STATUSES),
            r.released_at.is_(None),
        )
        .execution_options(yield_per=2000)
    )
    groups: dict[tuple[str, str], DiscountRow] = {}
    counted: set[tuple[str, str, int]] = set()
    for order_id, code, campaign, currency, discount, paid in session.execute(stmt):
        name = currency if by == "currency" else code if by == "code" else campaign or "-"
        row = groups.get((name, currency))
        if row is None:
            row = groups[(name, currency)] = DiscountRow(group=name, currency=currency)
        row.discount_minor += discount
        if (name, currency, order_id) not in counted:  # an order with two stacked codes
            counted.add((name, currency, order_id))
            row.orders += 1
            row.paid_minor += paid
    return [groups[k] for k in sorted(groups)]
