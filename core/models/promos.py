"""Promo codes, each use of one (a redemption), and the discount an order line got.

A :class:`PromoCode` takes a percent (``percent_bp``, basis points: 1000 = 10 %) or a
fixed amount per currency (``amounts``: ``{"EUR": 500}``) off the lines it applies to
(``scope``: the whole shop, or the products, platforms or genres in ``scope_values``).
``uses`` counts its live redemptions and is only ever changed by the conditional
``UPDATE`` in :mod:`core.services.locking`, inside the checkout's transaction. Read and
applied by :mod:`core.services.promos`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, String, Text, false
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class PromoKind(StrEnum):
    PERCENT = "percent"
    FIXED = "fixed"


class PromoScope(StrEnum):
    SHOP = "shop"
    PRODUCTS = "products"
    PLATFORMS = "platforms"
    GENRES = "genres"


class PromoCode(SQLModel, table=True):
    __tablename__ = "promo_codes"
    __table_args__ = (Index("ix_promo_codes_campaign", "campaign"),)

    id: int | None = Field(default=None, primary_key=True)
    # upper case, letters, digits and hyphens (core.services.promos.normalise_code)
    code: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(10), nullable=False))
    percent_bp: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # fixed amounts off per currency, minor units: {"EUR": 500, "USD": 500}
    amounts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # the smallest order (before discounts) per currency the code needs: {"EUR": 2000}
    minimums: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    scope: str = Field(default=PromoScope.SHOP, sa_column=Column(String(10), nullable=False))
    # product ids, or platform / genre names (lower case)
    scope_values: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    max_uses: int | None = Field(default=None, nullable=True)
    per_customer: int | None = Field(default=None, nullable=True)
    uses: int = Field(default=0, nullable=False)
    stackable: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    below_cost: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    paused: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    campaign: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str = Field(default="", sa_column=Column(String(160), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PromoRedemption(SQLModel, table=True):
    """One code used by one order: the order's snapshot of the code and the discount it
    gave. ``released_at`` is set when the order was cancelled or expired unpaid (the use
    went back to the code); a refund keeps the redemption."""

    __tablename__ = "promo_redemptions"
    __table_args__ = (
        Index("ix_promo_redemptions_promo_email", "promo_id", "email"),
        Index("ix_promo_redemptions_order", "order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    promo_id: int = Field(foreign_key="promo_codes.id", nullable=False)
    order_id: int = Field(foreign_key="orders.id", nullable=False)
    code: str = Field(sa_column=Column(String(40), nullable=False))
    email: str = Field(sa_column=Column(String(320), nullable=False))
    customer_id: int | None = Field(default=None, foreign_key="customers.id", nullable=True)
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    discount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
