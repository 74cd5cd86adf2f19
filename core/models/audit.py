"""The audit trail (append-only: the database refuses UPDATE on it) and alerts."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class ActorType(StrEnum):
    CUSTOMER = "customer"
    OPERATOR = "operator"
    SYSTEM = "system"


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_created", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    actor_type: str = Field(sa_column=Column(String(10), nullable=False))
    actor_id: str = Field(sa_column=Column(String(160), nullable=False, index=True))
    action: str = Field(sa_column=Column(String(60), nullable=False, index=True))
    object_type: str = Field(sa_column=Column(String(40), nullable=False))
    object_id: str = Field(sa_column=Column(String(80), nullable=False))
    ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(String(400), nullable=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class AlertKind(StrEnum):
    LOW_STOCK = "low_stock"
    LOW_BALANCE = "low_balance"
    PROVIDER_DOWN = "provider_down"
    NEEDS_ATTENTION = "needs_attention"
    MARGIN = "margin"  # an offer's cost leaves less than the minimum margin on a price
    CATALOGUE = "catalogue"  # catalogue alerts: core.services.catalogue_alerts


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_open", "kind", "subject", "acknowledged_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    severity: str = Field(default="warning", sa_column=Column(String(10), nullable=False))
    subject: str = Field(sa_column=Column(String(120), nullable=False))  # e.g. "product:12"
    message: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    #: Closed by the shop itself once its cause was gone (core.services.alerts).
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None and self.resolved_at is None


class KeyReportStatus(StrEnum):
    OPEN = "open"
    REPLACED = "replaced"  # the key was marked faulty and a new one delivered
    REVOKED = "revoked"  # the key was revoked (refund or no replacement)
    REJECTED = "rejected"  # the operator found the key good


class KeyReport(SQLModel, table=True):
    """A customer's "this key does not work": a case in the operators' queue."""

    __tablename__ = "key_reports"
    __table_args__ = (Index("ix_key_reports_status_created", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key_id: uuid.UUID = Field(foreign_key="keys.id", index=True, nullable=False)
    order_id: int = Field(foreign_key="orders.id", index=True, nullable=False)
    customer_id: int | None = Field(default=None, foreign_key="customers.id")
    email: str = Field(sa_column=Column(String(320), nullable=False))
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(default=KeyReportStatus.OPEN, sa_column=Column(String(10), nullable=False))
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, sa_column=Column(String(160), nullable=True))
