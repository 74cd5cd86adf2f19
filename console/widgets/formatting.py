"""Small formatting helpers shared by the screens."""

from __future__ import annotations

from datetime import datetime

from core.money import format_money


def money(minor: int, currency: str) -> str:
    """``1999, "EUR"`` → ``19.99 EUR`` (operator screens always show the code)."""
    return format_money(minor, currency, style="code")


def when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M")


def age(at: datetime, now: datetime) -> str:
    """How long ago ``at`` was, compactly: ``45s``, ``12m``, ``5h 02m``, ``3d 04h``."""
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def short(text: str | None, width: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
