"""Shared column types and helpers for the models."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

# Deterministic constraint names, so migrations are the same on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def row_id(value: int | None) -> int:
    """The id of a row that has been flushed (for the type checker: never None then)."""
    if value is None:
        raise ValueError("the row has no id yet; flush it first")
    return value


def new_uuid() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout): rows inserted together sit together in
    the primary-key index, and claiming 'oldest first' follows import order."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | rand & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


_UUID_COUNTER_BITS = 26  # 12 bits of rand_a and the top 14 of rand_b


def new_uuids(n: int) -> list[bytes]:
    """``n`` time-ordered UUIDs (the version 7 layout of ``new_uuid``) as 16-byte values
    (``uuid.UUID(bytes=b)`` gives the object), built for a whole batch at once.

    They share one millisecond timestamp; a counter in the 26 bits after the version
    (RFC 9562, method 1) keeps them in the order returned, and the last 48 bits are
    random from one ``os.urandom`` call. ``n`` is at most 2**26.
    """
    if n < 0 or n > 1 << _UUID_COUNTER_BITS:
        raise ValueError(f"new_uuids: n must be between 0 and {1 << _UUID_COUNTER_BITS}")
    if n == 0:
        return []
    ms = (time.time_ns() // 1_000_000) & ((1 << 48) - 1)
    out = bytearray(16 * n)
    for i, byte in enumerate(ms.to_bytes(6, "big")):  # bytes 0-5: the timestamp
        out[i::16] = bytes((byte,)) * n

    def counter_column(shift: int, mask: int, flags: int) -> bytes:
        """Byte ``flags | (i >> shift) & mask`` for i in range(n)."""
        run = 1 << shift
        return b"".join(
            bytes((flags | (k & mask),)) * min(run, n - (k << shift))
            for k in range((n + run - 1) // run)
        )

    out[6::16] = counter_column(22, 0x0F, 0x70)  # version 7 | counter bits 25-22
    out[7::16] = counter_column(14, 0xFF, 0x00)  # counter bits 21-14
    out[8::16] = counter_column(8, 0x3F, 0x80)  # RFC 4122 variant | counter bits 13-8
    out[9::16] = counter_column(0, 0xFF, 0x00)  # counter bits 7-0
    rand = os.urandom(6 * n)
    for i in range(6):  # bytes 10-15: random
        out[10 + i :: 16] = rand[i * n : (i + 1) * n]
    raw = bytes(out)
    return [raw[i : i + 16] for i in range(0, 16 * n, 16)]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike (SQLite stores naive
    values; they are read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use core.models.base.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
