"""Console reads for orders: the attention queue, order lists and search (by number,
e-mail or a key code's keyed fingerprint), and an order's timeline with its keys masked."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, or_, true
from sqlmodel import Session, col, select

from core import crypto
from core.errors import InvalidInput
from core.models import (
    AuditEvent,
    Customer,
    Key,
    KeyReport,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProviderPurchase,
    row_id,
)
from core.money import format_money
from core.services import nowpayments
from core.services.console_reads.inventory import mask_key_id
from core.services.orders import order_events, order_lines


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
    paid_at: datetime | None = None  # money was taken (and not given back by a cancel)
    refunded_minor: int = 0  # given back so far (a partial refund, or all of it)


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
        paid_at=order.paid_at,
        refunded_minor=order.refunded_minor,
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


SEARCH_FILTERS = ("status", "product", "provider", "since", "until")
_KEY_FRAGMENT = re.compile(r"[0-9a-f]{4,32}")


@dataclass(frozen=True)
class OrderQuery:
    """An operator's order search: free words (each must match the order number, the
    e-mail, the customer's name or a key of the order) and ``name:value`` filters."""

    words: tuple[str, ...] = ()
    status: str | None = None
    product: str | None = None
    provider: str | None = None
    since: date | None = None
    until: date | None = None


def parse_order_query(text: str) -> OrderQuery:
    """``status:paid product:star provider:kinguin since:2026-12-01 alice`` → an
    :class:`OrderQuery`. An unknown filter, status or date is InvalidInput (nothing is
    ignored silently)."""
    words: list[str] = []
    filters: dict[str, Any] = {}
    for term in text.split():
        name, sep, value = term.partition(":")
        if not sep or "@" in term:
            words.append(term)
            continue
        name = name.lower()
        if name not in SEARCH_FILTERS:
            raise InvalidInput(
                f"unknown filter {name!r}: use {', '.join(f + ':' for f in SEARCH_FILTERS)}"
            )
        if not value:
            raise InvalidInput(f"the filter {name}: needs a value")
        if name == "status":
            if value.lower() not in {s.value for s in OrderStatus}:
                raise InvalidInput(
                    f"unknown status {value!r}: one of {', '.join(s.value for s in OrderStatus)}"
                )
            value = value.lower()
        elif name in ("since", "until"):
            try:
                filters[name] = date.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"{name}: a date as YYYY-MM-DD (got {value!r})") from None
            continue
        filters[name] = value
    return OrderQuery(words=tuple(words), **filters)


def search_orders(
    *, session: Session, text: str, limit: int = 50, before_id: int | None = None
) -> list[OrderRow]:
    """Orders matching an operator's search (:func:`parse_order_query`), newest first,
    a page at a time. A word matches part of the order number, the e-mail or the
    customer's name (any case), the end or start of a key id as the console masks it
    (``1a2b…9f8e``), or a whole key code by its keyed fingerprint."""
    q = parse_order_query(text)
    query = select(Order).outerjoin(Customer, col(Customer.id) == col(Order.customer_id))
    lines = col(OrderLine.order_id) == col(Order.id)  # joined inside each EXISTS
    if q.words:
        every_word = and_(*[or_(*_word_matches(word, lines)) for word in q.words])
        whole = " ".join(q.words)  # a key code typed with spaces is one code
        if len(q.words) > 1 and crypto.normalise_code(whole):
            every_word = or_(every_word, _key_code_matches(whole, lines))
        query = query.where(every_word)
    if q.status:
        query = query.where(col(Order.status) == q.status)
    if q.product:
        query = query.where(
            exists(
                select(OrderLine.id)
                .join(Product, col(Product.id) == col(OrderLine.product_id))
                .where(
                    col(OrderLine.order_id) == col(Order.id),
                    or_(
                        func.lower(col(Product.slug)).contains(q.product.lower(), autoescape=True),
                        func.lower(col(OrderLine.title)).contains(
                            q.product.lower(), autoescape=True
                        ),
                    ),
                )
            )
        )
    if q.provider:
        query = query.where(
            exists(
                select(ProviderPurchase.id)
                .join(OrderLine, col(OrderLine.id) == col(ProviderPurchase.order_line_id))
                .where(lines, col(ProviderPurchase.provider) == q.provider.lower())
            )
        )
    if q.since:
        query = query.where(col(Order.created_at) >= datetime.combine(q.since, time(), UTC))
    if q.until:
        end = datetime.combine(q.until, time(), UTC) + timedelta(days=1)
        query = query.where(col(Order.created_at) < end)
    if before_id is not None:
        query = query.where(col(Order.id) < before_id)
    return [_order_row(o) for o in session.exec(query.order_by(col(Order.id).desc()).limit(limit))]


def _word_matches(word: str, lines: Any) -> list[Any]:
    lowered = word.lower()
    matches: list[Any] = [
        func.upper(col(Order.number)).contains(word.upper(), autoescape=True),
        func.lower(col(Order.email)).contains(lowered, autoescape=True),
        func.lower(col(Customer.display_name)).contains(lowered, autoescape=True),
    ]
    fragment = lowered.replace("…", "").replace("...", "").replace("-", "")
    if _KEY_FRAGMENT.fullmatch(fragment):
        key_hex = func.replace(func.lower(cast(col(Key.id), String)), "-", "")
        matches.append(
            exists(
                select(Key.id)
                .join(OrderLine, col(OrderLine.id) == col(Key.order_line_id))
                .where(lines, or_(key_hex.startswith(fragment), key_hex.endswith(fragment)))
            )
        )
    if crypto.normalise_code(word):
        matches.append(_key_code_matches(word, lines))
    return matches


def _key_code_matches(code: str, lines: Any) -> Any:
    fingerprint = crypto.get_vault().fingerprint(code)
    return exists(
        select(Key.id)
        .join(OrderLine, col(OrderLine.id) == col(Key.order_line_id))
        .where(lines, col(Key.fingerprint) == fingerprint)
    )


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
    kind: str  # "event", "purchase", "payment", "key", "report", "e-mail", "refund"
    text: str


@dataclass(frozen=True)
class Timeline:
    order: OrderRow
    payment_provider: str | None
    payment_reference: str | None
    lines: list[tuple[str, int, int]]  # (title, quantity, unit price in minor units)
    entries: list[TimelineEntry] = field(default_factory=list)
    keys: list[KeyRow] = field(default_factory=list)


_KEY_ACTIONS = {
    "key.reveal": "revealed",
    "key.operator_reveal": "shown to an operator",
    "key.revoke": "revoked",
    "key.faulty": "marked faulty",
    "key.assign": "assigned",
}
_ORDER_ACTIONS = {"order.refund": "refund"}


def _audit_entries(session: Session, number: str, key_ids: list[uuid.UUID]) -> list[TimelineEntry]:
    """The audit trail of the order and its keys, as timeline entries."""
    keys = [str(k) for k in key_ids]
    where = (
        (col(AuditEvent.object_type) == "order")
        & (col(AuditEvent.object_id) == number)
        & (col(AuditEvent.action).in_(list(_ORDER_ACTIONS)))
    )
    if keys:
        where = where | (
            (col(AuditEvent.object_type) == "key")
            & col(AuditEvent.object_id).in_(keys)
            & col(AuditEvent.action).in_(list(_KEY_ACTIONS))
        )
    entries = []
    for e in session.exec(select(AuditEvent).where(where).order_by(col(AuditEvent.id))):
        who = f"{e.actor_type}:{e.actor_id}"
        data = e.data or {}
        if e.action in _KEY_ACTIONS:
            text = f"key {mask_key_id(uuid.UUID(e.object_id))} {_KEY_ACTIONS[e.action]} by {who}"
            if e.action == "key.reveal":
                text += " (first time)" if data.get("first") else " (again)"
                text += f" from {e.ip or 'unknown address'}"
                if e.user_agent:
                    text += f", {e.user_agent[:60]}"
            if data.get("reason"):
                text += f": {data['reason']}"
            if data.get("replaces"):
                text += f", replacing {mask_key_id(uuid.UUID(str(data['replaces'])))}"
            entries.append(TimelineEntry(e.created_at, "key", text))
        else:
            entries.append(
                TimelineEntry(
                    e.created_at, "refund", f"refund asked by {who}: {data.get('reason', '')}"
                )
            )
    return entries


def order_timeline(*, session: Session, order_id: int) -> Timeline | None:
    """An order's full story, oldest first: status changes, payment, provider purchases,
    what happened to its keys (reveals with the address and browser, operator reveals,
    revokes, faulty marks, assignments), faulty-key reports and how they were closed,
    e-mails sent, refunds asked with the operator and their reason; and its keys
    (masked: ids only, never codes)."""
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
    for coins in nowpayments.crypto_payments(session=session, order_id=order_id):
        entries.append(TimelineEntry(coins.updated_at, "payment", nowpayments.operator_line(coins)))
    for ev in order_events(session=session, order_id=order_id):
        if (ev.reason or "").startswith("e-mail sent"):  # core.services.notifications
            to = (ev.data or {}).get("to")
            entries.append(
                TimelineEntry(
                    ev.created_at,
                    "e-mail",
                    f"{ev.reason.removeprefix('e-mail ')}"
                    + (f" to {to}" if to else "")
                    + f" (by {ev.actor})",
                )
            )
            continue
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
    entries.extend(_audit_entries(session, order.number, [k.id for k in keys]))
    for report in session.exec(
        select(KeyReport).where(KeyReport.order_id == order_id).order_by(col(KeyReport.id))
    ):
        entries.append(
            TimelineEntry(
                report.created_at,
                "report",
                f"#{report.id} key {mask_key_id(report.key_id)} reported faulty: "
                f"{report.message or '(no message)'}",
            )
        )
        if report.resolved_at is not None:
            entries.append(
                TimelineEntry(
                    report.resolved_at,
                    "report",
                    f"#{report.id} {report.status} by {report.resolved_by}: {report.resolution}",
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
