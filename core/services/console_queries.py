"""Read-only queries for the operator console.

Each function runs in the caller's (read) transaction, never writes and never commits,
and returns small frozen rows rather than ORM objects, so the console can pass them
between threads and widgets. Key codes never appear here: a key is named by its id,
and searching by code goes through the keyed fingerprint.

Long lists page by keyset (``before_id`` / ``after``: the last row of the page shown),
never by OFFSET, and nothing here counts the whole keys table: stock is counted for the
products on one page, and low stock is found by counting each product's available keys
only up to its threshold (an index range of at most that many entries).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, literal_column, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core import crypto
from core.errors import DomainError
from core.models import (
    Alert,
    AlertKind,
    ImportBatch,
    Key,
    KeyReport,
    KeyReportStatus,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProviderOffer,
    ProviderPurchase,
    PurchaseStatus,
    WebhookEvent,
    row_id,
    utcnow,
)
from core.money import format_money
from core.providers.base import ProviderClient
from core.services.inventory import LowStock, stock_counts
from core.services.orders import order_events, order_lines

__all__ = [
    "BalanceRow",
    "DashboardFigures",
    "ImportRow",
    "KeyReportRow",
    "KeyRow",
    "OfferRow",
    "OrderRow",
    "ProductStockRow",
    "ProviderStatusRow",
    "StockKeyRow",
    "Timeline",
    "WebhookRow",
    "attention_orders",
    "dashboard_figures",
    "find_orders",
    "import_history",
    "low_stock",
    "mask_key_id",
    "open_key_reports",
    "order_for_key_code",
    "order_timeline",
    "product_keys",
    "product_stock",
    "provider_balances",
    "provider_offers",
    "provider_overview",
    "recent_orders",
    "webhook_page",
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


def recent_orders(
    *, session: Session, before_id: int | None = None, limit: int = 100
) -> list[OrderRow]:
    """Every order, newest first, one page at a time (``before_id``: the last id shown)."""
    query = select(Order)
    if before_id is not None:
        query = query.where(col(Order.id) < before_id)
    return [_order_row(o) for o in session.exec(query.order_by(col(Order.id).desc()).limit(limit))]


def find_orders(
    *, session: Session, text: str, limit: int = 50, before_id: int | None = None
) -> list[OrderRow]:
    """Orders whose number is ``text`` or whose e-mail is ``text`` (any case), newest
    first, a page at a time (``before_id``). An empty ``text`` finds nothing."""
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
            ),
            col(Order.id) < before_id if before_id is not None else true(),
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
                f" at {format_money(p.unit_cost_minor, p.currency or '', style='code')}"
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


def product_stock(
    *, session: Session, after: tuple[str, int] | None = None, limit: int = 100
) -> list[ProductStockRow]:
    """One page of products (by title, then id; ``after``: the (title, id) of the last
    row shown) with their key counts per status: two queries, the counts only for the
    products on the page."""
    query = select(Product)
    if after is not None:
        title, pid = after
        query = query.where(
            or_(col(Product.title) > title, (col(Product.title) == title) & (col(Product.id) > pid))
        )
    products = list(session.exec(query.order_by(col(Product.title), col(Product.id)).limit(limit)))
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
class StockKeyRow:
    """A key in stock as the inventory shows it: never its code."""

    id: uuid.UUID
    masked: str
    status: str
    import_batch_id: int | None
    supplier: str | None
    created_at: datetime


def product_keys(
    *,
    session: Session,
    product_id: int,
    status: str | None = KeyStatus.AVAILABLE,
    after_id: uuid.UUID | None = None,
    limit: int = 100,
) -> list[StockKeyRow]:
    """One page of a product's keys (oldest first; ``after_id``: the last key shown)."""
    query = sa_select(
        col(Key.id),
        col(Key.status),
        col(Key.import_batch_id),
        col(Key.supplier),
        col(Key.created_at),
    ).where(col(Key.product_id) == product_id)
    if status is not None:
        query = query.where(col(Key.status) == status)
    if after_id is not None:
        query = query.where(col(Key.id) > after_id)
    return [
        StockKeyRow(
            id=kid,
            masked=mask_key_id(kid),
            status=st,
            import_batch_id=batch,
            supplier=sup,
            created_at=at,
        )
        for kid, st, batch, sup, at in session.execute(query.order_by(col(Key.id)).limit(limit))
    ]


@dataclass(frozen=True, slots=True)
class ImportRow:
    id: int
    file_name: str
    operator: str
    status: str
    read: int
    imported: int
    duplicate_in_file: int
    duplicate_in_stock: int
    rejected: int
    rejections: tuple[tuple[int, str], ...]  # (line number, reason), never the line's text
    error: str | None
    started_at: datetime
    finished_at: datetime | None


def import_history(
    *, session: Session, limit: int = 50, before_id: int | None = None
) -> list[ImportRow]:
    """Import batches, newest first, a page at a time (``before_id``)."""
    query = select(ImportBatch)
    if before_id is not None:
        query = query.where(col(ImportBatch.id) < before_id)
    return [
        ImportRow(
            id=row_id(b.id),
            file_name=b.file_name,
            operator=b.operator,
            status=b.status,
            read=b.lines_read,
            imported=b.imported,
            duplicate_in_file=b.duplicate_in_file,
            duplicate_in_stock=b.duplicate_in_stock,
            rejected=b.rejected,
            rejections=tuple(
                (int(r.get("line", 0)), str(r.get("reason", ""))) for r in (b.rejections or [])
            ),
            error=b.error,
            started_at=b.started_at,
            finished_at=b.finished_at,
        )
        for b in session.exec(query.order_by(col(ImportBatch.id).desc()).limit(limit))
    ]


# -- faulty-key reports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyReportRow:
    id: int
    order_id: int
    order_number: str
    product: str
    email: str
    message: str
    key_id: uuid.UUID
    key_masked: str
    key_status: str
    created_at: datetime


def open_key_reports(*, session: Session, limit: int = 200) -> list[KeyReportRow]:
    """Customers' faulty-key reports still open, oldest first (the longest wait on top)."""
    query = (
        select(KeyReport, Order.number, Product.title, Key.status)
        .join(Order, col(Order.id) == col(KeyReport.order_id))
        .join(Key, col(Key.id) == col(KeyReport.key_id))
        .join(Product, col(Product.id) == col(Key.product_id))
        .where(KeyReport.status == KeyReportStatus.OPEN)
        .order_by(col(KeyReport.created_at), col(KeyReport.id))
        .limit(limit)
    )
    return [
        KeyReportRow(
            id=row_id(r.id),
            order_id=r.order_id,
            order_number=number,
            product=title,
            email=r.email,
            message=r.message,
            key_id=r.key_id,
            key_masked=mask_key_id(r.key_id),
            key_status=key_status,
            created_at=r.created_at,
        )
        for r, number, title, key_status in session.exec(query)
    ]


# -- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: int
    received_at: datetime
    source: str
    event_type: str
    authenticated: bool
    processed_at: datetime | None
    outcome: str | None


def webhook_page(
    *, session: Session, source: str | None = None, before_id: int | None = None, limit: int = 100
) -> list[WebhookRow]:
    """The webhook log, newest first, a page at a time; without the raw bodies (fetch
    one with :func:`webhook_body`)."""
    query = sa_select(
        col(WebhookEvent.id),
        col(WebhookEvent.received_at),
        col(WebhookEvent.source),
        col(WebhookEvent.event_type),
        col(WebhookEvent.authenticated),
        col(WebhookEvent.processed_at),
        col(WebhookEvent.outcome),
    )
    if source:
        query = query.where(col(WebhookEvent.source) == source)
    if before_id is not None:
        query = query.where(col(WebhookEvent.id) < before_id)
    return [
        WebhookRow(*row)
        for row in session.execute(query.order_by(col(WebhookEvent.id).desc()).limit(limit))
    ]


def webhook_body(*, session: Session, webhook_id: int, limit: int = 4000) -> str | None:
    """The start of one webhook's raw body, as text (None: no such webhook)."""
    body = session.exec(select(WebhookEvent.raw_body).where(WebhookEvent.id == webhook_id)).first()
    return None if body is None else bytes(body[:limit]).decode("utf-8", errors="replace")


# -- providers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderStatusRow:
    provider: str
    health: str  # "ok", "down", "unknown"
    last_success: datetime | None  # last completed purchase or sync
    last_error_at: datetime | None
    last_error: str | None
    last_sync: datetime | None
    offers: int
    mapped: int
    in_stock: int  # mapped offers with stock

    @property
    def unmapped(self) -> int:
        return self.offers - self.mapped


def provider_overview(*, session: Session, providers: list[str]) -> list[ProviderStatusRow]:
    """Per provider: health from what the shop already records (the last completed
    purchase or sync, the last provider_down alert or failed purchase), the last sync,
    and its offers mapped, unmapped and in stock."""
    offers = {
        name: (int(n), int(mapped or 0), int(stocked or 0), last)
        for name, n, mapped, stocked, last in session.execute(
            sa_select(
                col(ProviderOffer.provider),
                func.count(),
                func.count(col(ProviderOffer.product_id)),
                func.sum(
                    case(
                        (
                            (col(ProviderOffer.product_id).is_not(None))
                            & (col(ProviderOffer.stock) > 0),
                            1,
                        ),
                        else_=0,
                    )
                ),
                func.max(ProviderOffer.last_synced_at),
            )
            .where(col(ProviderOffer.provider).in_(providers))
            .group_by(ProviderOffer.provider)
        )
    }
    rows = []
    for name in providers:
        n, mapped, stocked, last_sync = offers.get(name, (0, 0, 0, None))
        bought = session.exec(
            select(func.max(ProviderPurchase.updated_at)).where(
                ProviderPurchase.provider == name,
                ProviderPurchase.status == PurchaseStatus.COMPLETED,
            )
        ).one()
        failed = session.exec(
            select(ProviderPurchase.updated_at, ProviderPurchase.error)
            .where(
                ProviderPurchase.provider == name,
                ProviderPurchase.status == PurchaseStatus.FAILED,
            )
            .order_by(col(ProviderPurchase.updated_at).desc())
            .limit(1)
        ).first()
        alert = session.exec(
            select(Alert)
            .where(Alert.kind == AlertKind.PROVIDER_DOWN, Alert.subject == f"provider:{name}")
            .order_by(col(Alert.id).desc())
            .limit(1)
        ).first()
        errors: list[tuple[datetime, str, bool]] = []
        if failed is not None:
            errors.append((failed[0], failed[1] or "purchase failed", False))
        if alert is not None:
            errors.append((alert.created_at, alert.message, alert.acknowledged_at is None))
        last_error = max(errors, key=lambda e: e[0]) if errors else None
        successes = [t for t in (bought, last_sync) if t is not None]
        last_success = max(successes) if successes else None
        if alert is not None and alert.acknowledged_at is None:
            health = "down"
        elif last_error and (last_success is None or last_error[0] > last_success):
            health = "failing"
        elif last_success is not None:
            health = "ok"
        else:
            health = "unknown"
        rows.append(
            ProviderStatusRow(
                provider=name,
                health=health,
                last_success=last_success,
                last_error_at=last_error[0] if last_error else None,
                last_error=last_error[1] if last_error else None,
                last_sync=last_sync,
                offers=n,
                mapped=mapped,
                in_stock=stocked,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: int
    external_id: str
    name: str
    product: str | None
    cost_minor: int | None
    currency: str
    stock: int
    last_synced_at: datetime | None


def provider_offers(
    *, session: Session, provider: str, after_id: int | None = None, limit: int = 100
) -> list[OfferRow]:
    """One page of a provider's offers (by id) with the product each is mapped to."""
    query = (
        select(ProviderOffer, Product.title)
        .join(Product, col(Product.id) == col(ProviderOffer.product_id), isouter=True)
        .where(ProviderOffer.provider == provider)
    )
    if after_id is not None:
        query = query.where(col(ProviderOffer.id) > after_id)
    return [
        OfferRow(
            id=row_id(o.id),
            external_id=o.external_id,
            name=o.name,
            product=title,
            cost_minor=o.cost_minor,
            currency=o.currency,
            stock=o.stock,
            last_synced_at=o.last_synced_at,
        )
        for o, title in session.exec(query.order_by(col(ProviderOffer.id)).limit(limit))
    ]


@dataclass(frozen=True, slots=True)
class BalanceRow:
    provider: str
    amount_minor: int | None
    currency: str | None
    error: str | None  # why there is no balance: the provider's error or the timeout


def provider_balances(
    clients: Mapping[str, ProviderClient], *, timeout: float = 5.0
) -> list[BalanceRow]:
    """Ask every provider for its balance at once and wait at most ``timeout`` seconds
    in all. Never raises: a failure or a provider that did not answer in time is a row
    with ``error``. Calls the providers; touches no database."""
    if not clients:
        return []
    pool = ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="balance")
    futures = {name: pool.submit(client.balance) for name, client in clients.items()}
    wait_futures(list(futures.values()), timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    rows = []
    for name, future in futures.items():
        if not future.done():
            rows.append(BalanceRow(name, None, None, f"no answer in {timeout:g} s"))
            continue
        exc = future.exception()
        if exc is None:
            balance = future.result()
            rows.append(BalanceRow(name, balance.amount_minor, balance.currency, None))
        elif isinstance(exc, DomainError):
            rows.append(BalanceRow(name, None, None, exc.message))
        else:
            rows.append(BalanceRow(name, None, None, f"{type(exc).__name__}"))
    return rows


def provider_balances_from(
    get_clients: Callable[[], Mapping[str, ProviderClient]],
    *,
    providers: Sequence[str],
    timeout: float = 5.0,
) -> list[BalanceRow]:
    """:func:`provider_balances` for clients that still have to be built: when building
    them fails (missing credentials, say), every provider gets a row with that error."""
    try:
        clients = get_clients()
    except DomainError as exc:
        return [BalanceRow(p, None, None, exc.message) for p in providers]
    return provider_balances(clients, timeout=timeout)


# -- dashboard ------------------------------------------------------------------------------


def low_stock(*, session: Session) -> list[LowStock]:
    """Active products whose available keys are below their threshold, fewest first.

    Same answer as :func:`core.services.inventory.low_stock_products`, but bounded: each
    product's available keys are counted only up to the highest threshold (a range of
    the partial index ``ix_keys_available``), so the cost follows the number of products,
    never the number of keys in stock."""
    products = Product.__table__  # type: ignore[attr-defined]
    cap = session.exec(
        select(func.max(col(Product.low_stock_threshold))).where(col(Product.active))
    ).one()
    if not cap:
        return []
    keys = Key.__table__  # type: ignore[attr-defined]
    inner = (
        select(literal_column("1"))
        .where(keys.c.product_id == products.c.id, keys.c.status == KeyStatus.AVAILABLE.value)
        .limit(int(cap))
        .correlate(products)
        .subquery()
    )
    n = select(func.count()).select_from(inner).scalar_subquery()
    query = sa_select(
        products.c.id,
        products.c.slug,
        products.c.title,
        n.label("n"),
        products.c.low_stock_threshold,
    ).where(products.c.active.is_(True), products.c.low_stock_threshold > 0)
    rows = [
        LowStock(product_id=r[0], slug=r[1], title=r[2], available=int(r[3]), threshold=r[4])
        for r in session.connection().execute(query)
        if int(r[3]) < r[4]
    ]
    rows.sort(key=lambda s: (s.available, s.product_id))
    return rows


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    provider: str
    problem: str | None  # the open provider_down or low_balance alert's message


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
    open_key_reports: int = 0
    providers: list[ProviderHealth] = field(default_factory=list)


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


def dashboard_figures(
    *, session: Session, now: datetime | None = None, providers: list[str] | None = None
) -> DashboardFigures:
    """The dashboard's figures: paid orders and revenue in the last hour and day (by
    payment time), the fulfilment backlog, attention count, low stock, open alerts and
    faulty-key reports, and each of ``providers`` with its open provider alert."""
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
    reports = session.exec(
        select(func.count()).select_from(KeyReport).where(KeyReport.status == KeyReportStatus.OPEN)
    ).one()
    problems: dict[str, str] = {}
    if providers:
        for subject, message in session.exec(
            select(Alert.subject, Alert.message)
            .where(
                col(Alert.kind).in_([AlertKind.PROVIDER_DOWN, AlertKind.LOW_BALANCE]),
                col(Alert.subject).in_([f"provider:{p}" for p in providers]),
                col(Alert.acknowledged_at).is_(None),
            )
            .order_by(col(Alert.id))
        ):
            problems[subject.removeprefix("provider:")] = message
    return DashboardFigures(
        orders_last_hour=hour_n,
        orders_last_day=day_n,
        revenue_last_hour=hour_rev,
        revenue_last_day=day_rev,
        awaiting_fulfilment=int(by_status.get(OrderStatus.PAID, 0)),
        needs_attention=int(by_status.get(OrderStatus.NEEDS_ATTENTION, 0)),
        low_stock=low_stock(session=session),
        open_alerts=int(alerts),
        open_key_reports=int(reports),
        providers=[ProviderHealth(p, problems.get(p)) for p in providers or []],
    )
