"""Console reads for the webhook log: pages without bodies, and one body on demand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.models import (
    WebhookEvent,
)


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
