"""Small formatting helpers shared by the screens."""

from __future__ import annotations

from datetime import datetime


def money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M")


def short(text: str | None, width: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
