"""Console reads for alerts: open ones or the history of closed ones, each naming what
it is about (the product by title and slug, the order by number), never a bare id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.models import Product, row_id
from core.services.alerts import closed_alerts, open_alerts


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    created_at: datetime
    severity: str
    kind: str
    about: str  # what the alert is about, by name
    message: str
    closed_at: datetime | None  # acknowledged or resolved
    closed_by: str | None  # the operator who acknowledged it, or "resolved"
    resolution: str | None


def alert_rows(*, session: Session, closed: bool = False, limit: int = 200) -> list[AlertRow]:
    """Open alerts (or, with ``closed``, the acknowledged and resolved ones), newest
    first, each with what it is about by name."""
    alerts = (closed_alerts if closed else open_alerts)(session=session, limit=limit)
    product_ids = {
        int(a.subject.removeprefix("product:"))
        for a in alerts
        if a.subject.startswith("product:") and a.subject.removeprefix("product:").isdigit()
    }
    products = (
        {
            row_id(p.id): f"{p.title} ({p.slug})"
            for p in session.exec(select(Product).where(col(Product.id).in_(product_ids)))
        }
        if product_ids
        else {}
    )
    return [
        AlertRow(
            id=row_id(a.id),
            created_at=a.created_at,
            severity=a.severity,
            kind=a.kind,
            about=_about(a.subject, products),
            message=a.message,
            closed_at=a.acknowledged_at or a.resolved_at,
            closed_by=a.acknowledged_by
            if a.acknowledged_at
            else ("resolved" if a.resolved_at else None),
            resolution=a.resolution,
        )
        for a in alerts
    ]


def _about(subject: str, products: dict[int, str]) -> str:
    kind, _, ref = subject.partition(":")
    if kind == "product":
        return products.get(int(ref), "a deleted product") if ref.isdigit() else subject
    if kind == "order":
        return f"order {ref}"
    if kind == "provider":
        return f"provider {ref}"
    if kind == "webhook":
        return f"webhook #{ref}"
    return subject
