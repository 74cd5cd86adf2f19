"""Console reads for the inventory: products with their key counts, a product's keys
(masked: ids only, never codes) and import history. Low stock is
:func:`core.services.inventory.low_stock_products`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from core.models import (
    ImportBatch,
    Product,
    row_id,
)
from core.services.inventory import stock_counts
from core.services.low_stock import is_low_stock


def mask_key_id(key_id: uuid.UUID) -> str:
    """A short, non-secret handle for a key (its id's first and last characters)."""
    text = str(key_id)
    return f"{text[:4]}…{text[-4:]}"


@dataclass(frozen=True, slots=True)
class ProductStockRow:
    id: int
    slug: str
    title: str
    platform: str
    available: int
    reserved: int
    delivered: int
    threshold: int
    active: bool

    @property
    def low(self) -> bool:
        return self.active and is_low_stock(available=self.available, threshold=self.threshold)


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
                platform=p.platform,
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
    product: str  # the slug of the product imported into; "per line" for a product column
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
    """Import batches, newest first, a page at a time (``before_id``), with the slug of
    the product each went into."""
    query = select(ImportBatch, Product.slug).join(
        Product, col(Product.id) == col(ImportBatch.product_id), isouter=True
    )
    if before_id is not None:
        query = query.where(col(ImportBatch.id) < before_id)
    return [
        ImportRow(
            id=row_id(b.id),
            file_name=b.file_name,
            product=slug or "per line",
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
        for b, slug in session.exec(query.order_by(col(ImportBatch.id).desc()).limit(limit))
    ]
