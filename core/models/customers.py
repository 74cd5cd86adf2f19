"""Customers (accounts). Guests order with an e-mail and have no row here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
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
