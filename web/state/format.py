"""Turning core results into the small, pre-formatted dicts the pages render.

Reflex renders state on the client, so every value a page shows is formatted here, on
the server, once: money as text, dates as text, flags as "1"/"" strings are avoided in
favour of real booleans where a dict holds mixed types.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£"}


def money(minor: int | None, currency: str) -> str:
    """``1999, "EUR"`` → ``€19.99``; unknown currencies get their code after the amount."""
    if minor is None:
        return ""
    sign = "-" if minor < 0 else ""
    amount = f"{abs(minor) / 100:,.2f}"
    symbol = CURRENCY_SIGNS.get(currency.upper())
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency.upper()}"


def day(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d %b %Y, %H:%M UTC")
    return value.strftime("%d %b %Y")


def product_card(hit: Any) -> dict[str, Any]:
    """A catalogue card from a ``core.services.catalogue.ProductHit`` (or anything with
    the same attributes)."""
    list_price = getattr(hit, "list_price_minor", None)
    on_sale = bool(list_price and list_price > hit.price_minor)
    in_stock = bool(getattr(hit, "in_stock", False))
    if hit.is_preorder:
        badge = f"Pre-order · {day(hit.release_date)}" if hit.release_date else "Pre-order"
    elif in_stock:
        badge = "In stock"
    else:
        badge = "Out of stock"
    return {
        "slug": hit.slug,
        "title": hit.title,
        "platform": hit.platform,
        "region": hit.region,
        "genre": getattr(hit, "genre", "") or "",
        "price": money(hit.price_minor, hit.currency),
        "list_price": money(list_price, hit.currency) if on_sale else "",
        "discount": f"-{round(100 * (list_price - hit.price_minor) / list_price)}%"
        if on_sale
        else "",
        "cover_url": hit.cover_url or "",
        "badge": badge,
        "buyable": in_stock or bool(hit.is_preorder),
        "href": f"/games/{hit.slug}",
    }
