"""Inventory: keys (encrypted) and import batches."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, new_uuid, utcnow


class KeyStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    DELIVERED = "delivered"
    REVOKED = "revoked"
    FAULTY = "faulty"


class Key(SQLModel, table=True):
    """One code. Only ``ciphertext`` holds it, encrypted under keyring entry
    ``key_version`` with this row's ``id`` bound as associated data."""

    __tablename__ = "keys"
    __table_args__ = (
        # The claim query walks this: available keys of one product, oldest first.
        Index(
            "ix_keys_available",
            "product_id",
            "id",
            postgresql_where=text("status = 'available'"),
            sqlite_where=text("status = 'available'"),
        ),
        Index("ix_keys_product_status", "product_id", "status"),
        # Only ever searched for one order line / provider purchase: imported keys (no
        # line, no purchase yet) are left out, so a bulk import writes no entry for them.
        Index(
            "ix_keys_order_line_id",
            "order_line_id",
            postgresql_where=text("order_line_id IS NOT NULL"),
            sqlite_where=text("order_line_id IS NOT NULL"),
        ),
        Index(
            "ix_keys_provider_purchase_id",
            "provider_purchase_id",
            postgresql_where=text("provider_purchase_id IS NOT NULL"),
            sqlite_where=text("provider_purchase_id IS NOT NULL"),
        ),
        # No index on key_version: rotation (key_version != active) scans the table.
    )

    id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    # product_id and import_batch_id: foreign keys on SQLite; on PostgreSQL triggers check
    # them once per statement instead of once per row (the bulk import's main cost), with
    # the same guarantee (migration 0006).
    product_id: int = Field(foreign_key="products.id", nullable=False)
    status: str = Field(default=KeyStatus.AVAILABLE, sa_column=Column(String(12), nullable=False))
    kind: str = Field(default="text", sa_column=Column(String(10), nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(sa_column=Column(SmallInteger, nullable=False))
    fingerprint: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    import_batch_id: int | None = Field(default=None, foreign_key="import_batches.id", index=True)
    provider_purchase_id: int | None = Field(default=None, foreign_key="provider_purchases.id")
    supplier: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    cost_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    cost_currency: str | None = Field(default=None, sa_column=Column(String(3), nullable=True))
    order_line_id: int | None = Field(default=None, foreign_key="order_lines.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    reserved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revealed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_note: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))

    def __repr__(self) -> str:  # never show the ciphertext or fingerprint
        return f"Key(id={self.id}, product_id={self.product_id}, status={self.status})"


class ImportStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ImportBatch(SQLModel, table=True):
    __tablename__ = "import_batches"

    id: int | None = Field(default=None, primary_key=True)
    product_id: int | None = Field(default=None, foreign_key="products.id", index=True)
    file_name: str = Field(sa_column=Column(String(500), nullable=False))
    file_format: str = Field(default="txt", sa_column=Column(String(5), nullable=False))
    operator: str = Field(default="", sa_column=Column(String(120), nullable=False))
    status: str = Field(default=ImportStatus.RUNNING, sa_column=Column(String(12), nullable=False))
    lines_read: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    imported: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    duplicate_in_file: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    duplicate_in_stock: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    rejected: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # The first rejected lines: [{"line": n, "reason": "..."}] (never the line's text).
    rejections: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
