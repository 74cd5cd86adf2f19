"""Turning core results into the small, pre-formatted dicts the pages render.

Reflex renders state on the client, so every value a page shows is formatted here, on
the server, once: money as text, dates as text, flags as "1"/"" strings are avoided in
favour of real booleans where a dict holds mixed types.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from core import i18n
from core.i18n import gettext as _
from core.money import format_money
from core.services.catalogue import ProductHit
from core.services.catalogue.covers import Cover, cover_of

__all__ = ["day", "money", "product_card", "product_page_title"]


def product_page_title(title: str, platform: str) -> str:
    """A product page's ``<title>``, the same whether the server or the app sets it."""
    return f"{title} ({platform}) · keyshop"


def money(minor: int | None, currency: str) -> str:
    """``1999, "EUR"`` → ``€19.99`` on an English page, ``19,99 €`` on a German one
    (core.money, in the language in force)."""
    return format_money(minor, currency, language=i18n.current_language())


def day(value: date | datetime | None) -> str:
    """A date (or a moment, in UTC) for the page's language (core.i18n)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return i18n.format_datetime(value)
    return i18n.format_date(value)


def product_card(hit: ProductHit) -> dict[str, Any]:
    """A catalogue card from a ``core.services.catalogue.ProductHit`` (the deal and stock
    rules are the hit's own: ``discount_percent``, ``in_stock``)."""
    on_sale = hit.discount_percent > 0
    in_stock = hit.in_stock
    if hit.is_preorder:
        badge = _("Pre-order") + (f" · {day(hit.release_date)}" if hit.release_date else "")
    elif in_stock:
        badge = _("In stock")
    else:
        badge = _("Out of stock")
    return {
        "slug": hit.slug,
        "title": hit.title,
        "platform": hit.platform,
        "region": hit.region,
        "genre": hit.genre or "",
        "price": money(hit.price_minor, hit.currency),
        "list_price": money(hit.list_price_minor, hit.currency) if on_sale else "",
        "discount": f"-{hit.discount_percent}%" if on_sale else "",
        **cover_fields(cover_of(hit, "card")),
        "badge": badge,
        "buyable": in_stock or bool(hit.is_preorder),
        "href": i18n.localised_path(f"/games/{hit.slug}"),
    }


def cover_fields(cover: Cover | None) -> dict[str, str]:
    """A cover as the page's ``cover_url``, ``cover_width``, ``cover_height`` and
    ``cover_alt`` (all empty: no cover)."""
    if cover is None:
        return {"cover_url": "", "cover_width": "", "cover_height": "", "cover_alt": ""}
    return {
        "cover_url": cover.src,
        "cover_width": str(cover.width),
        "cover_height": str(cover.height),
        "cover_alt": cover.alt,
    }
