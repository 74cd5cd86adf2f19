"""Pages the operator writes: terms, privacy, imprint, the right of withdrawal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class LegalPage(SQLModel, table=True):
    """A legal page in Markdown, shown at ``/legal/<slug>`` (core.services.legal)."""

    __tablename__ = "legal_pages"

    slug: str = Field(sa_column=Column(String(40), primary_key=True))
    title: str = Field(sa_column=Column(String(200), nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_by: str = Field(default="", sa_column=Column(String(160), nullable=False))
