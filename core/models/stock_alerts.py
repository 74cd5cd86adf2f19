"""Back-in-stock requests: a shopper asks to be told when an out-of-stock product can be
bought again (core/services/stock_alerts.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class StockAlert(SQLModel, table=True):
    """One address waiting for one product. ``confirmed_at`` is set by the link in the
    confirmation e-mail (double opt-in: nothing else is ever sent before it);
    ``notified_at`` once the back-in-stock e-mail is on its way. Unsubscribing deletes
    the row."""

    __tablename__ = "stock_alerts"
    __table_args__ = (
        UniqueConstraint("product_id", "email", name="uq_stock_alerts_product_email"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    product_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    email: str = Field(sa_column=Column(String(320), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    notified_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # the language of the page the request came from (core.i18n): its e-mails speak it
    language: str = Field(
        default="en", sa_column=Column(String(5), nullable=False, server_default=text("'en'"))
    )
