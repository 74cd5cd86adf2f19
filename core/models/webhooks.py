"""Every inbound webhook, stored raw before anything acts on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_webhook_events_source_event"),
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
