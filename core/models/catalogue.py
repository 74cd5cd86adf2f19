"""Catalogue: products and the providers' offers mapped to them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow

PLATFORMS = (
    "Steam",
    "Xbox",
    "PlayStation",
    "Nintendo",
    "EA app",
    "Ubisoft Connect",
    "GOG",
    "Battle.net",
    "Epic Games",
    "Rockstar",
)
REGIONS = ("GLOBAL", "EU", "US", "UK", "LATAM", "ASIA", "RU")


class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        # sort=title walks this instead of sorting the catalogue (migration 0005).
        Index("ix_products_title", text("lower(title)"), "id").ddl_if(dialect="postgresql"),
        # platform and region together (the facet filters), counted from the index.
        Index(
            "ix_products_platform_region",
            "platform",
            "region",
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
        # genre (matched case-insensitively) with a price range, by price (PostgreSQL).
        Index(
            "ix_products_genre_price",
            text("lower(genre)"),
            "price_minor",
            "id",
            postgresql_where=text("active"),
        ).ddl_if(dialect="postgresql"),
        # The in-stock filter and its count: only active products with stock.
        Index(
            "ix_products_in_stock",
            "platform",
            "id",
            postgresql_where=text("in_stock AND active"),
            sqlite_where=text("in_stock AND active"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    slug: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    title: str = Field(sa_column=Column(String(200), nullable=False))
    platform: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    region: str = Field(default="GLOBAL", sa_column=Column(String(20), nullable=False, index=True))
    genre: str = Field(default="", sa_column=Column(String(40), nullable=False, index=True))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    publisher: str = Field(default="", sa_column=Column(String(120), nullable=False))
    price_minor: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    currency: str = Field(default="EUR", sa_column=Column(String(3), nullable=False))
    list_price_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    is_preorder: bool = False
    release_date: date | None = None
    activation_instructions: str = Field(default="", sa_column=Column(Text, nullable=False))
    low_stock_threshold: int = 5
    featured: bool = False
    active: bool = True
    cover_url: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True)
    )  # URL or data: URI
    # An uploaded cover: its name in the blob store (core.services.catalogue.covers keeps
    # one WebP per storefront size under it); shown before cover_url. Its alt text.
    cover_image: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    cover_alt: str = Field(
        default="", sa_column=Column(String(300), nullable=False, server_default="")
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # Stock summary the listings filter on: an own key with status ``available`` or a
    # mapped offer with stock > 0. Kept by core.services.catalogue (refresh_stock_flags,
    # run in the transaction that changes keys or offers); never set it by hand.
    in_stock: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # When core.services.pricing last computed this product's price from its rule (None:
    # never; the price is set by hand). Older than the last provider sync: an alert.
    priced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ProductPrice(SQLModel, table=True):
    """A product's price in a currency other than its own (``Product.currency``, whose
    price stays on the product row). A product is sold in its own currency and in each
    currency listed here, never in any other: there is no exchange rate in keyshop.
    Read through ``core.services.catalogue.prices``."""

    __tablename__ = "product_prices"

    product_id: int = Field(
        foreign_key="products.id",
        primary_key=True,
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    currency: str = Field(sa_column=Column(String(3), primary_key=True))
    price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    list_price_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ProviderOffer(SQLModel, table=True):
    """A wholesale provider's product, mapped to ours when ``product_id`` is set."""

    __tablename__ = "provider_offers"
    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_provider_offers_provider_external"),
        Index("ix_provider_offers_product", "product_id", "provider"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(sa_column=Column(String(30), nullable=False))
    external_id: str = Field(sa_column=Column(String(100), nullable=False))
    product_id: int | None = Field(default=None, foreign_key="products.id", ondelete="SET NULL")
    name: str = Field(default="", sa_column=Column(String(300), nullable=False))
    # What the offer was mapped on (or failed to map on): the provider's base title
    # (Kinguin originalName), platform and region as the provider states them.
    title: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    platform: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    region: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    cost_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str = Field(default="EUR", sa_column=Column(String(3), nullable=False))
    stock: int = 0
    is_preorder: bool = False
    release_date: date | None = None
    provider_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The provider's cover picture (https URL) when it has one.
    cover_url: str | None = Field(default=None, sa_column=Column(String(1000), nullable=True))
    last_synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What the offer said when it was mapped (by hand or by the sync): a later change of
    # title, platform or region at the provider raises a catalogue alert.
    mapped_title: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    mapped_platform: str | None = Field(default=None, sa_column=Column(String(80), nullable=True))
    mapped_region: str | None = Field(default=None, sa_column=Column(String(120), nullable=True))
    mapped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
