"""Purchases from wholesale providers: the intent, committed before the call."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, String, Text
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class PurchaseStatus(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"


class ProviderPurchase(SQLModel, table=True):
    __tablename__ = "provider_purchases"

    id: int | None = Field(default=None, primary_key=True)
    order_line_id: int = Field(foreign_key="order_lines.id", index=True, nullable=False)
    provider: str = Field(sa_column=Column(String(30), nullable=False))
    # Our idempotency reference: Kinguin orderExternalId / CodesWholesale client order id.
    reference: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    provider_order_id: str | None = Field(
        default=None, sa_column=Column(String(100), nullable=True, index=True)
    )
    offer_id: int | None = Field(default=None, foreign_key="provider_offers.id")
    quantity: int = Field(nullable=False)
    unit_cost_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str = Field(default="EUR", sa_column=Column(String(3), nullable=False))
    status: str = Field(
        default=PurchaseStatus.REQUESTED, sa_column=Column(String(12), nullable=False, index=True)
    )
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Keys given back to the provider for a refund (Kinguin key returns, faulty-key flow)
    returned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    refund_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
