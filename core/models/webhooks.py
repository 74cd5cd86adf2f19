"""Every inbound webhook, stored raw before anything acts on it.

An authenticated row is the source of truth for what the sender told us (an outbox):
``processed_at`` stays NULL until a worker has acted on it in the same transaction as
the effect, and reconciliation picks up rows left unprocessed. A rejected delivery
(failed authentication) keeps only a bounded prefix of its body, its size and its
SHA-256, and is purged after ``KEYSHOP_REJECTED_WEBHOOK_DAYS``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow

UNPROCESSED = text("processed_at IS NULL")
REJECTED = text("NOT authenticated")


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_webhook_events_source_event"),
        # Reconciliation and the expiry guard read only the rows still to be acted on.
        Index(
            "ix_webhook_events_unprocessed",
            "received_at",
            postgresql_where=UNPROCESSED,
            sqlite_where=UNPROCESSED,
        ),
        # Rejections counted per source for the console, and purged by age.
        Index(
            "ix_webhook_events_rejected",
            "received_at",
            "source",
            postgresql_where=REJECTED,
            sqlite_where=REJECTED,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_column=Column(String(20), nullable=False))
    event_id: str = Field(sa_column=Column(String(255), nullable=False))
    event_type: str = Field(default="", sa_column=Column(String(80), nullable=False))
    raw_body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    authenticated: bool = False
    remote_addr: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: The order a payment event names (our order number), so expiry can see that a
    #: payment for it is stored but not yet acted on.
    subject: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    #: How often reconciliation queued the row again because it was left unprocessed.
    redeliveries: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    #: The whole body's size and SHA-256 (a rejected row keeps only a prefix of it).
    body_size: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    body_sha256: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class WebhookAttempt(SQLModel, table=True):
    """One processing of a stored webhook and what came of it. Append-only: a replay
    adds an attempt and never overwrites an earlier outcome (``WebhookEvent.outcome``
    is the latest)."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhook_events.id", index=True, nullable=False)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    outcome: str = Field(sa_column=Column(Text, nullable=False))
