"""Orders, their lines (with a price snapshot) and the order event log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
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


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLED = "fulfilled"
    NEEDS_ATTENTION = "needs_attention"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_updated", "status", "updated_at"),)

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(sa_column=Column(String(24), nullable=False, unique=True))
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    email: str = Field(sa_column=Column(String(320), nullable=False, index=True))
    status: str = Field(
        default=OrderStatus.PENDING_PAYMENT, sa_column=Column(String(20), nullable=False)
    )
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    subtotal_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    payment_provider: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    payment_reference: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, index=True)
    )
    attention_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fulfilled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set while one worker fulfils the order (compare-and-set); a dead worker's lease
    # expires and reconciliation hands the order to another.
    fulfilment_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fulfilment_attempts: int = Field(default=0, nullable=False)
    # The buyer's country (ISO 3166 alpha-2), chosen at checkout, and the VAT it set:
    # prices are VAT-inclusive, ``vat_minor`` is the VAT contained in ``total_minor`` at
    # ``vat_rate_bp`` basis points (1900 = 19 %). core.services.vat computes both.
    country: str | None = Field(default=None, sa_column=Column(String(2), nullable=True))
    vat_rate_bp: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    vat_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    # When the customer agreed to immediate delivery and so to losing the right of
    # withdrawal (core.services.consent; the audit trail has address and browser).
    delivery_consent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The language the customer ordered in (core.i18n.LANGUAGES): its e-mails speak it.
    language: str = Field(
        default="en", sa_column=Column(String(5), nullable=False, server_default=text("'en'"))
    )
    # What promo codes took off ``subtotal_minor`` (core.services.promos): ``total_minor``
    # is ``subtotal_minor - discount_minor``; the codes are the order's promo_redemptions.
    discount_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    # What went back to the customer: a partial refund's amount so far (Stripe's
    # ``amount_refunded``; the order keeps its status and keys), or the whole total once
    # the order is ``refunded``. Sales reports count revenue net of it.
    refunded_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, nullable=False)
    product_id: int = Field(foreign_key="products.id", index=True, nullable=False)
    # Snapshot at checkout: later catalogue edits never change what was sold.
    title: str = Field(sa_column=Column(String(200), nullable=False))
    platform: str = Field(sa_column=Column(String(40), nullable=False))
    region: str = Field(sa_column=Column(String(20), nullable=False))
    unit_price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    quantity: int = Field(nullable=False)
    # A pre-order at checkout: delivered on the release date.
    is_preorder: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    # What promo codes took off this line in all (not per unit): the line costs
    # ``unit_price_minor * quantity - discount_minor``.
    discount_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class Invoice(SQLModel, table=True):
    """The receipt of a paid order: numbered ``YYYY-NNNNNN`` without gaps per year
    (core.services.invoices allocates ``seq`` from :class:`InvoiceCounter` in the
    transaction that writes the invoice)."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("year", "seq", name="uq_invoices_year_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", unique=True, nullable=False)
    year: int = Field(nullable=False)
    seq: int = Field(nullable=False)
    number: str = Field(sa_column=Column(String(20), nullable=False, unique=True))
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class InvoiceCounter(SQLModel, table=True):
    """The last invoice number handed out in a year (one row per year)."""

    __tablename__ = "invoice_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_seq: int = Field(default=0, nullable=False)


class OfferHold(SQLModel, table=True):
    """Units of a provider offer counted for one order line at checkout, because our own
    stock could not cover the line (core.services.reservations). While the order is
    ``pending_payment`` or ``paid`` no other checkout counts these units; the row goes
    when the order is cancelled or when fulfilment opens the purchase it stood for."""

    __tablename__ = "offer_holds"

    order_line_id: int = Field(
        foreign_key="order_lines.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    order_id: int = Field(foreign_key="orders.id", index=True, nullable=False)
    offer_id: int = Field(
        foreign_key="provider_offers.id", ondelete="CASCADE", index=True, nullable=False
    )
    quantity: int = Field(nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OrderEvent(SQLModel, table=True):
    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, nullable=False)
    from_status: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    to_status: str = Field(sa_column=Column(String(20), nullable=False))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    actor: str = Field(default="system", sa_column=Column(String(160), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class MailOutbox(SQLModel, table=True):
    """An order e-mail that is due: written in the transaction that makes it due (the
    order fulfilled, waiting, needing attention) and removed in the one that records it
    sent, so a worker that dies in between leaves it here for the next batch
    (core/services/notifications.py, ``send_due_order_emails``). ``due_at`` is when a
    batch may take it: set ahead while one holds it, and after a failed attempt."""

    __tablename__ = "mail_outbox"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", nullable=False, ondelete="CASCADE")
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    ref: str = Field(default="", sa_column=Column(String(60), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    due_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True
    )
