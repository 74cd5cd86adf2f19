"""CSV exports of orders, keys, customers, audit events and webhook events over a period.

Streamed: rows are read with ``yield_per`` (a server-side cursor on PostgreSQL) and
written as they come, so a million rows take the memory of one batch. Every cell goes
through :func:`core.csvsafe.escape_cell`, so a spreadsheet never runs one as a formula.
What is never exported: key codes (keys are exported with a fixed mask, their id and
their fingerprint, an HMAC that reveals nothing without the fingerprint key), password
hashes, two-factor secrets, webhook bodies (their size and SHA-256 only).

The file is written beside its final name and renamed when complete: an interrupted
export leaves nothing behind.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO, cast

from sqlalchemy import Select, Table, func, select

from core import money
from core.csvsafe import escape_cell
from core.db import session_scope
from core.errors import InvalidInput
from core.models import (
    AuditEvent,
    Customer,
    Key,
    Order,
    Product,
    PromoRedemption,
    WebhookEvent,
)
from core.services.reports import period

KEY_MASK: Final = "••••-••••-••••"
BATCH: Final = 2000


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _c(model: Any) -> Any:
    """The model's table columns (plain SQL columns, typed loosely for ``select``)."""
    return cast(Table, model.__table__).c


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _major(minor: int | None, currency: str | None) -> str:
    if minor is None or not currency:
        return ""
    return f"{money.to_decimal(minor, currency):.{money.exponent(currency)}f}"


@dataclass(frozen=True)
class ExportKind:
    columns: tuple[str, ...]
    query: Callable[[datetime, datetime], Select[Any]]
    cells: Callable[[Any], Iterable[Any]]


def _orders(since: datetime, until: datetime) -> Select[Any]:
    o, r = _c(Order), _c(PromoRedemption)
    # the codes the order used (a refund keeps them; a cancelled order's were released)
    codes = (
        select(func.aggregate_strings(r.code, " "))
        .where(r.order_id == o.id, r.released_at.is_(None))
        .scalar_subquery()
    )
    return (
        select(
            o.number,
            o.status,
            o.email,
            o.currency,
            o.subtotal_minor,
            o.discount_minor,
            codes,
            o.total_minor,
            o.refunded_minor,
            o.country,
            o.vat_rate_bp,
            o.vat_minor,
            o.payment_provider,
            o.created_at,
            o.paid_at,
            o.fulfilled_at,
        )
        .where(o.created_at >= since, o.created_at < until)
        .order_by(o.id)
    )


def _order_cells(r: Any) -> Iterable[Any]:
    (number, status, email, currency, subtotal, discount, codes, total, refunded, country,
     rate_bp, vat, provider, created, paid, fulfilled) = r  # fmt: skip
    return (
        number, status, email, currency, _major(subtotal, currency), _major(discount, currency),
        " ".join(sorted((codes or "").split())), _major(total, currency),
        _major(refunded, currency), country or "",
        f"{Decimal(rate_bp) / 100:.2f}", _major(vat, currency), provider or "",
        _when(created), _when(paid), _when(fulfilled),
    )  # fmt: skip


def _keys(since: datetime, until: datetime) -> Select[Any]:
    k = _c(Key)
    return (
        select(
            k.id,
            _c(Product).slug,
            k.status,
            k.kind,
            k.fingerprint,
            k.supplier,
            k.cost_minor,
            k.cost_currency,
            k.import_batch_id,
            k.provider_purchase_id,
            k.order_line_id,
            k.created_at,
            k.delivered_at,
            k.revealed_at,
            k.revoked_at,
        )
        .join(_table(Product), _c(Product).id == k.product_id)
        .where(k.created_at >= since, k.created_at < until)
        .order_by(k.created_at, k.id)
    )


def _key_cells(r: Any) -> Iterable[Any]:
    (key_id, slug, status, kind, fingerprint, supplier, cost, cost_currency, batch,
     purchase, line, created, delivered, revealed, revoked) = r  # fmt: skip
    return (
        str(key_id), slug, status, kind, KEY_MASK, bytes(fingerprint).hex(), supplier or "",
        _major(cost, cost_currency), cost_currency or "", batch or "", purchase or "",
        line or "", _when(created), _when(delivered), _when(revealed), _when(revoked),
    )  # fmt: skip


def _customers(since: datetime, until: datetime) -> Select[Any]:
    c = _c(Customer)
    return (
        select(c.id, c.email, c.display_name, c.created_at, c.verified_at, c.totp_enabled_at)
        .where(c.created_at >= since, c.created_at < until)
        .order_by(c.id)
    )


def _customer_cells(r: Any) -> Iterable[Any]:
    cid, email, name, created, verified, totp = r
    return (cid, email, name, _when(created), _when(verified), "yes" if totp else "no")


def _audit(since: datetime, until: datetime) -> Select[Any]:
    a = _c(AuditEvent)
    return (
        select(
            a.id,
            a.created_at,
            a.actor_type,
            a.actor_id,
            a.action,
            a.object_type,
            a.object_id,
            a.ip,
            a.data,
        )
        .where(a.created_at >= since, a.created_at < until)
        .order_by(a.id)
    )


def _audit_cells(r: Any) -> Iterable[Any]:
    aid, created, actor_type, actor_id, action, object_type, object_id, ip, data = r
    return (
        aid, _when(created), actor_type, actor_id, action, object_type, object_id, ip or "",
        json.dumps(data, sort_keys=True, default=str, ensure_ascii=False),
    )  # fmt: skip


def _webhooks(since: datetime, until: datetime) -> Select[Any]:
    w = _c(WebhookEvent)
    return (
        select(
            w.id,
            w.source,
            w.event_id,
            w.event_type,
            w.authenticated,
            w.received_at,
            w.processed_at,
            w.outcome,
            w.subject,
            w.body_size,
            w.body_sha256,
        )
        .where(w.received_at >= since, w.received_at < until)
        .order_by(w.id)
    )


def _webhook_cells(r: Any) -> Iterable[Any]:
    wid, source, event_id, event_type, auth, received, processed, outcome, subject, size, sha = r
    return (
        wid, source, event_id, event_type, "yes" if auth else "no", _when(received),
        _when(processed), outcome or "", subject or "", size if size is not None else "",
        sha or "",
    )  # fmt: skip


KINDS: Final[dict[str, ExportKind]] = {
    "orders": ExportKind(
        ("number", "status", "email", "currency", "subtotal", "discount", "promo_codes",
         "total", "refunded", "country", "vat_rate_percent", "vat", "payment_provider", "created_at",
         "paid_at", "fulfilled_at"),
        _orders, _order_cells,
    ),
    "keys": ExportKind(
        ("key_id", "product", "status", "kind", "code", "fingerprint", "supplier", "cost",
         "cost_currency", "import_batch_id", "provider_purchase_id", "order_line_id",
         "created_at", "delivered_at", "revealed_at", "revoked_at"),
        _keys, _key_cells,
    ),
    "customers": ExportKind(
        ("id", "email", "name", "created_at", "verified_at", "two_factor"),
        _customers, _customer_cells,
    ),
    "audit": ExportKind(
        ("id", "created_at", "actor_type", "actor_id", "action", "object_type", "object_id",
         "ip", "data"),
        _audit, _audit_cells,
    ),
    "webhooks": ExportKind(
        ("id", "source", "event_id", "event_type", "authenticated", "received_at",
         "processed_at", "outcome", "subject", "body_size", "body_sha256"),
        _webhooks, _webhook_cells,
    ),
}  # fmt: skip


def write_export(kind: str, *, start: date, end: date, out: TextIO) -> int:
    """Write the ``kind`` rows of the period (inclusive days, UTC) to ``out`` as CSV;
    returns how many rows."""
    spec = KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"export one of {', '.join(KINDS)}", field="kind")
    since, until = period(start, end)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(spec.columns)
    count = 0
    with session_scope(write=False) as session:
        result = session.execute(
            spec.query(since, until).execution_options(yield_per=BATCH, stream_results=True)
        )
        for partition in result.partitions():
            writer.writerows(
                [escape_cell(str(cell)) for cell in spec.cells(row)] for row in partition
            )
            count += len(partition)
    return count


def export_to_file(kind: str, *, start: date, end: date, path: Path) -> int:
    """:func:`write_export` into ``path`` (complete or not at all)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = write_export(kind, start=start, end=end, out=out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count
