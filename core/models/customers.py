"""Customers (accounts). Guests order with an e-mail and have no row here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, LargeBinary, String
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))  # normalised
    password_hash: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    display_name: str = Field(default="", sa_column=Column(String(120), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # two-factor sign-in (core.services.twofactor): the TOTP secret, encrypted; set while
    # enrolling, in force once enabled; the last time step accepted (no code twice)
    totp_secret: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary(128), nullable=True)
    )
    totp_enabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class RecoveryCode(SQLModel, table=True):
    """A one-use recovery code for two-factor sign-in; only its keyed hash is stored."""

    __tablename__ = "customer_recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True, nullable=False)
    code_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CustomerSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the bearer token is stored, so a copy of
    the database signs nobody in."""

    __tablename__ = "customer_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    customer_id: int = Field(foreign_key="customers.id", index=True, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ip: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(String(400), nullable=True))


class RateLimitCounter(SQLModel, table=True):
    """Fixed-window counters shared by every web worker (the database is the one store
    every deployment has): ``scope`` names the limit (``sign-in``), ``subject`` who is
    counted (an address, an e-mail, an order), ``window_start`` the window's first second."""

    __tablename__ = "rate_limit_counters"

    scope: str = Field(sa_column=Column(String(40), primary_key=True))
    subject: str = Field(sa_column=Column(String(320), primary_key=True))
    window_start: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    count: int = Field(default=0, nullable=False)
