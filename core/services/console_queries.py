"""Read-only queries for the operator console.

Each function runs in the caller's (read) transaction, never writes and never commits,
and returns small frozen rows rather than ORM objects, so the console can pass them
between threads and widgets. Key codes never appear here: a key is named by its id,
and searching by code goes through the keyed fingerprint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core import crypto
from core.models import (
    Alert,
    ImportBatch,
    Key,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProviderPurchase,
    row_id,
    utcnow,
)
from core.services.inventory import LowStock, low_stock_products, stock_counts
from core.services.orders import order_events, order_lines

__all__ = [
    "DashboardFigures",
    "ImportRow",
    "KeyRow",
    "OrderRow",
    "ProductStockRow",
    "Timeline",
    "attention_orders",
    "dashboard_figures",
    "find_orders",
    "import_history",
    "mask_key_id",
    "order_for_key_code",
    "order_timeline",
    "product_stock",
]

# Orders whose money counts as revenue.
_REVENUE = (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.NEEDS_ATTENTION)


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    number: str
    email: str
    status: str
    total_minor: int
    currency: str
    created_at: datetime
    attention_reason: str | None


def _order_row(order: Order) -> OrderRow:
    return OrderRow(
        id=row_id(order.id),
        number=order.number,
        email=order.email,
        status=order.status,
        total_minor=order.total_minor,
        currency=order.currency,
        created_at=order.created_at,
        attention_reason=order.attention_reason,
    )


def attention_orders(*, session: Session, limit: int = 200) -> list[OrderRow]:
    """Orders in ``needs_attention``, oldest first (the longest wait on top)."""
    query = (
        select(Order)
        .where(Order.status == OrderStatus.NEEDS_ATTENTION)
        .order_by(col(Order.updated_at), col(Order.id))
        .limit(limit)
    )
    return [_order_row(o) for o in session.exec(query)]


def find_orders(*, session: Session, text: str, limit: int = 50) -> list[OrderRow]:
    """Orders whose number is ``text`` or whose e-mail is ``text`` (any case), newest
    first. An empty ``text`` finds nothing."""
    text = text.strip()
    if not text:
        return []
    query = (
        select(Order)
        .where(
            or_(
                col(Order.number) == text.upper(),
                col(Order.email) == text,
                func.lower(col(Order.email)) == text.lower(),
            )
        )
        .order_by(col(Order.id).desc())
        .limit(limit)
    )
    return [_order_row(o) for o in session.exec(query)]


def order_for_key_code(*, session: Session, code: str) -> OrderRow | None:
    """The order a key code was delivered to, found by the code's keyed fingerprint
    (the code itself is never stored or compared). None when the code is unknown or the
    key is not on any order."""
    if not crypto.normalise_code(code.strip()):
        return None
    fingerprint = crypto.get_vault().fingerprint(code.strip())
    query = (
        select(Order)
        .join(OrderLine, col(OrderLine.order_id) == col(Order.id))
        .join(Key, col(Key.order_line_id) == col(OrderLine.id))
        .where(col(Key.fingerprint) == fingerprint)
    )
    order = session.exec(query).first()
    return None if order is None else _order_row(order)


def mask_key_id(key_id: uuid.UUID) -> str:
    """A short, non-secret handle for a key (its id's first and last characters)."""
    text = str(key_id)
    return f"{text[:4]}…{text[-4:]}"


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: uuid.UUID
    masked: str
    title: str
    status: str
    delivered_at: datetime | None
    revealed_at: datetime | None
    from_provider: bool


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # "event", "purchase", "payment"
    text: str


@dataclass(frozen=True)
class Timeline:
    order: OrderRow
    payment_provider: str | None
    payment_reference: str | None
    lines: list[tuple[str, int, int]]  # (title, quantity, unit price in minor units)
    entries: list[TimelineEntry] = field(default_factory=list)
    keys: list[KeyRow] = field(default_factory=list)


def order_timeline(*, session: Session, order_id: int) -> Timeline | None:
    """An order's full story, oldest first: status changes, payment, provider purchases,
    and its keys (masked: ids only, never codes)."""
    order = session.get(Order, order_id)
    if order is None:
        return None
    lines = order_lines(session=session, order_id=order_id)
    line_ids = [row_id(ln.id) for ln in lines]
    titles = {row_id(ln.id): ln.title for ln in lines}
    entries: list[TimelineEntry] = [
        TimelineEntry(order.created_at, "event", f"created ({order.email})")
    ]
    if order.paid_at is not None:
        entries.append(
            TimelineEntry(
                order.paid_at,
                "payment",
                f"paid via {order.payment_provider or '?'} ({order.payment_reference or '-'})",
            )
        )
    for ev in order_events(session=session, order_id=order_id):
        reason = f": {ev.reason}" if ev.reason else ""
        entries.append(
            TimelineEntry(
                ev.created_at,
                "event",
                f"{ev.from_status or '-'} → {ev.to_status} by {ev.actor}{reason}",
            )
        )
    keys: list[KeyRow] = []
    if line_ids:
        for p in session.exec(
            select(ProviderPurchase)
            .where(col(ProviderPurchase.order_line_id).in_(line_ids))
            .order_by(col(ProviderPurchase.id))
        ):
            cost = (
                f" at {p.unit_cost_minor / 100:.2f} {p.currency}"
                if p.unit_cost_minor is not None
                else ""
            )
            error = f" ({p.error})" if p.error else ""
            entries.append(
                TimelineEntry(
                    p.created_at,
                    "purchase",
                    f"{p.provider}: {p.quantity} x {titles.get(p.order_line_id, '?')}"
                    f"{cost}, {p.status}{error}",
                )
            )
        for k in session.exec(
            select(Key)
            .where(col(Key.order_line_id).in_(line_ids))
            .order_by(col(Key.order_line_id), col(Key.id))
        ):
            keys.append(
                KeyRow(
                    id=k.id,
                    masked=mask_key_id(k.id),
                    title=titles.get(row_id(k.order_line_id), "?"),
                    status=k.status,
                    delivered_at=k.delivered_at,
                    revealed_at=k.revealed_at,
                    from_provider=k.provider_purchase_id is not None,
                )
            )
    entries.sort(key=lambda e: e.at)
    return Timeline(
        order=_order_row(order),
        payment_provider=order.payment_provider,
        payment_reference=order.payment_reference,
        lines=[(ln.title, ln.quantity, ln.unit_price_minor) for ln in lines],
        entries=entries,
        keys=keys,
    )


@dataclass(frozen=True, slots=True)
class ProductStockRow:
    id: int
    slug: str
    title: str
    available: int
    reserved: int
    delivered: int
    threshold: int
    active: bool

    @property
    def low(self) -> bool:
        return self.active and self.available < self.threshold


def product_stock(*, session: Session, limit: int = 500) -> list[ProductStockRow]:
    """Products (by title) with their key counts per status: two queries."""
    products = list(
        session.exec(select(Product).order_by(col(Product.title), col(Product.id)).limit(limit))
    )
    counts = stock_counts(session=session, product_ids=[row_id(p.id) for p in products])
    rows = []
    for p in products:
        c = counts[row_id(p.id)]
        rows.append(
            ProductStockRow(
                id=row_id(p.id),
                slug=p.slug,
                title=p.title,
                available=c.available,
                reserved=c.reserved,
                delivered=c.delivered,
                threshold=p.low_stock_threshold,
                active=p.active,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class ImportRow:
    id: int
    file_name: str
    operator: str
    status: str
    imported: int
    rejected: int
    started_at: datetime


def import_history(*, session: Session, limit: int = 50) -> list[ImportRow]:
    query = select(ImportBatch).order_by(col(ImportBatch.id).desc()).limit(limit)
    return [
        ImportRow(
            id=row_id(b.id),
            file_name=b.file_name,
            operator=b.operator,
            status=b.status,
            imported=b.imported,
            rejected=b.rejected,
            started_at=b.started_at,
        )
        for b in session.exec(query)
    ]


@dataclass(frozen=True)
class DashboardFigures:
    orders_last_hour: int
    orders_last_day: int
    revenue_last_hour: dict[str, int]  # currency → minor units
    revenue_last_day: dict[str, int]
    awaiting_fulfilment: int  # paid, not yet fulfilled: the fulfilment backlog
    needs_attention: int
    low_stock: list[LowStock]
    open_alerts: int


def _orders_since(session: Session, since: datetime) -> tuple[int, dict[str, int]]:
    query = (
        select(col(Order.currency), func.count(), func.coalesce(func.sum(Order.total_minor), 0))
        .where(col(Order.paid_at) >= since, col(Order.status).in_(_REVENUE))
        .group_by(col(Order.currency))
    )
    count, revenue = 0, {}
    for currency, n, total in session.exec(query):
        count += int(n)
        revenue[currency] = int(total)
    return count, revenue


def dashboard_figures(*, session: Session, now: datetime | None = None) -> DashboardFigures:
    """The dashboard's figures: paid orders and revenue in the last hour and day (by
    payment time), the fulfilment backlog, attention count, low stock, open alerts."""
    now = now or utcnow()
    hour_n, hour_rev = _orders_since(session, now - timedelta(hours=1))
    day_n, day_rev = _orders_since(session, now - timedelta(days=1))
    by_status = dict(
        session.exec(
            select(col(Order.status), func.count())
            .where(col(Order.status).in_([OrderStatus.PAID, OrderStatus.NEEDS_ATTENTION]))
            .group_by(col(Order.status))
        ).all()
    )
    alerts = session.exec(
        select(func.count()).select_from(Alert).where(col(Alert.acknowledged_at).is_(None))
    ).one()
    return DashboardFigures(
        orders_last_hour=hour_n,
        orders_last_day=day_n,
        revenue_last_hour=hour_rev,
        revenue_last_day=day_rev,
        awaiting_fulfilment=int(by_status.get(OrderStatus.PAID, 0)),
        needs_attention=int(by_status.get(OrderStatus.NEEDS_ATTENTION, 0)),
        low_stock=low_stock_products(session=session),
        open_alerts=int(alerts),
    )
