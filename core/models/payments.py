"""Crypto payments as NOWPayments reports them, one row per payment (an invoice may see
several, when a customer starts over with another coin). The order's own status stays
the source of truth for the shop; this row is what the customer's order page and the
operators' console show of the payment on the blockchain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class CryptoPayment(SQLModel, table=True):
    __tablename__ = "crypto_payments"
    __table_args__ = (
        UniqueConstraint("provider", "payment_id", name="uq_crypto_payments_provider_payment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, nullable=False)
    provider: str = Field(default="nowpayments", sa_column=Column(String(20), nullable=False))
    payment_id: str = Field(sa_column=Column(String(64), nullable=False))
    invoice_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    #: waiting, confirming, confirmed, sending, partially_paid, finished, failed,
    #: refunded, expired (NOWPayments' own words).
    status: str = Field(sa_column=Column(String(20), nullable=False))
    #: Amounts are exact decimal text as NOWPayments sent them (never floats).
    price_amount: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    price_currency: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    pay_amount: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    actually_paid: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    pay_currency: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    #: How much more than ``pay_amount`` arrived (in ``pay_currency``), when it did.
    overpaid: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
