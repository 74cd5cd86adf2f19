"""Pricing: the owner's rules and every price change with its reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Text, true
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class PricingRule(SQLModel, table=True):
    """How a product's price in ``currency`` is set. A rule for one product
    (``product_id``) wins; otherwise the rule whose ``platform``/``region``/``genre``
    all match and name the most of them (none: the shop's default), the oldest first.

    ``mode`` ``fixed``: ``fixed_price_minor``; ``cost_plus``: the cheapest usable offer's
    cost (mapped, in stock, in ``currency``) plus ``margin_bp`` (basis points: 2000 =
    20 %), kept between ``floor_minor`` and ``ceiling_minor``, with charm rounding
    (``charm``: up to the next …99 not above the ceiling and never below the floor).
    ``min_margin_bp`` is the margin a fixed price must keep over an offer's cost before
    an alert is raised. Read and applied by ``core.services.pricing``."""

    __tablename__ = "pricing_rules"
    __table_args__ = (Index("ix_pricing_rules_product", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: int | None = Field(default=None, foreign_key="products.id", ondelete="CASCADE")
    platform: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    region: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    genre: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    mode: str = Field(sa_column=Column(String(10), nullable=False))
    fixed_price_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    margin_bp: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    floor_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    ceiling_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    charm: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    min_margin_bp: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_by: str = Field(default="", sa_column=Column(String(160), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PriceChange(SQLModel, table=True):
    """One change of a product's price, with why ("codeswholesale cost 12.40 → 13.10")."""

    __tablename__ = "price_changes"
    __table_args__ = (Index("ix_price_changes_product", "product_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="products.id", nullable=False, ondelete="CASCADE")
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    old_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    new_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    rule_id: int | None = Field(default=None, foreign_key="pricing_rules.id", ondelete="SET NULL")
    # the offer cost the price was computed from (cost-plus), for the next change's reason
    cost_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    actor: str = Field(default="system", sa_column=Column(String(160), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
