"""Console reads for customers' faulty-key reports still open."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.models import (
    Key,
    KeyReport,
    KeyReportStatus,
    Order,
    Product,
    row_id,
)
from core.services.console_reads.inventory import mask_key_id


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
