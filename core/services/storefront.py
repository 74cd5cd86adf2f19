"""The read side of the shop: the home page's sections and the product page.

Everything here reads inside the caller's session and never writes. Stock figures come
from the same places the rest of the shop uses: own keys are counted by
``catalogue.available_counts`` (status ``available``), and what the wholesale providers
can deliver is decided by the fulfilment rule itself (``fulfilment.choose_offers``: per
provider in the chain, its cheapest mapped offer with stock whose cost keeps the
configured minimum margin), so the product page never promises a key fulfilment would
refuse to buy.

The platform → key-redemption page table (:data:`ACTIVATION_URLS`) lives here and is
used by the product page and the key portal alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, select, true
from sqlmodel import Session

from core.config import Settings, get_settings
from core.errors import UnknownProduct
from core.i18n import N_, format_date
from core.i18n import gettext as _
from core.models import Product, utcnow
from core.services.catalogue import (
    ProductHit,
    available_counts,
    get_product_by_slug,
    products,
    provider_stock_counts,
)
from core.services.catalogue.covers import Cover, cover_of
from core.services.catalogue.prices import Price, prices_in
from core.services.low_stock import is_low_stock
from core.services.reservations import offer_choices

# Where a customer redeems a key, per platform. Only pages that exist and accept a code
# in a browser; platforms redeemed only inside their own app have none (their
# activation instructions explain the steps).
ACTIVATION_URLS: Final[dict[str, str]] = {
    "Steam": "https://store.steampowered.com/account/registerkey",
    "GOG": "https://www.gog.com/redeem",
    "Xbox": "https://redeem.microsoft.com",
    "Nintendo": "https://ec.nintendo.com/redeem",
    "Epic Games": "https://store.epicgames.com/redeem",
}

# Region codes in customer words, for the region-lock warning.
REGION_NAMES: Final[dict[str, str]] = {
    "EU": N_("the EU (European Union and EEA)"),
    "US": N_("the United States"),
    "UK": N_("the United Kingdom"),
    "LATAM": N_("Latin America"),
    "ASIA": N_("Asia"),
    "RU": N_("Russia and the CIS"),
}

GLOBAL_REGION: Final = "GLOBAL"
MAX_PER_SECTION: Final = 48

# Customer words, translated where they are shown (core.i18n)
IN_STOCK: Final = N_("In stock")
FROM_PARTNER: Final = N_("Available from partner stock")
PREORDER: Final = N_("Pre-order")
OUT_OF_STOCK: Final = N_("Out of stock")


def activation_url(platform: str) -> str | None:
    """The platform's key-redemption page, or None when it has no web page for it."""
    return ACTIVATION_URLS.get(platform)


def region_warning(region: str) -> str | None:
    """A sentence warning that a key is region-locked; None for GLOBAL keys."""
    if region.upper() == GLOBAL_REGION:
        return None
    name = REGION_NAMES.get(region.upper())
    where = _(name) if name else _("region %(code)s") % {"code": region}
    return _(
        "This key only activates in %(where)s. Make sure your account is registered "
        "there before you buy: a region-locked key cannot be used elsewhere and is not "
        "refunded once revealed."
    ) % {"where": where}


# -- home page ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomeSections:
    """The home page: each list holds at most ``per_section`` products (ProductHit, with
    stock figures and ``in_stock``)."""

    featured: list[ProductHit]
    new_releases: list[ProductHit]
    preorders: list[ProductHit]
    deals: list[ProductHit]


_HIT_COLUMNS: Final = (
    products.c.id, products.c.slug, products.c.title, products.c.platform, products.c.region,
    products.c.genre, products.c.publisher, products.c.price_minor, products.c.currency,
    products.c.list_price_minor, products.c.is_preorder, products.c.release_date,
    products.c.featured, products.c.cover_url, products.c.cover_image, products.c.cover_alt,
    products.c.low_stock_threshold,
    products.c.created_at,
)  # fmt: skip


def _section(where: list[ColumnElement[bool]], order: list[Any], limit: int) -> Select[Any]:
    return (
        select(*_HIT_COLUMNS)
        .where(products.c.active == true(), *where)
        .order_by(*order)
        .limit(limit)
    )


def _hits(
    session: Session, statements: list[Select[Any]], currency: str | None = None
) -> list[list[ProductHit]]:
    """Run each statement and turn its rows into ProductHits; stock is counted once for
    every product of every section (two grouped queries). With ``currency`` each hit is
    priced in it and products not sold in it are left out."""
    results = [session.execute(stmt).mappings().all() for stmt in statements]
    ids = sorted({row["id"] for rows in results for row in rows})
    own = available_counts(session=session, product_ids=ids)
    provider = provider_stock_counts(session=session, product_ids=ids)
    prices: dict[int, Price] | None = None
    if currency:
        rows_by_id = {row["id"]: SimpleNamespace(**row) for rows in results for row in rows}
        prices = prices_in(session=session, products=list(rows_by_id.values()), currency=currency)
    out: list[list[ProductHit]] = []
    for rows in results:
        section: list[ProductHit] = []
        for row in rows:
            fields = dict(row)
            if prices is not None:
                price = prices.get(row["id"])
                if price is None:
                    continue
                fields.update(
                    price_minor=price.minor,
                    currency=price.currency,
                    list_price_minor=price.list_minor,
                )
            section.append(
                ProductHit(
                    **fields,
                    available=own.get(row["id"], 0),
                    provider_stock=provider.get(row["id"], 0),
                )
            )
        out.append(section)
    return out


def home_sections(
    *,
    session: Session,
    per_section: int = 8,
    today: date | None = None,
    currency: str | None = None,
) -> HomeSections:
    """The home page's four lists of active products:

    - ``featured``: products marked featured, newest first;
    - ``new_releases``: released (release date today or earlier), newest release first;
    - ``preorders``: release date in the future, soonest release first;
    - ``deals``: priced below their list price, biggest saving (list minus price) first.

    With ``currency`` the products are priced in it, and those not sold in it left out.
    """
    if isinstance(per_section, bool) or not isinstance(per_section, int) or per_section < 1:
        per_section = 8
    per_section = min(per_section, MAX_PER_SECTION)
    today = today or utcnow().date()
    p = products.c
    featured, new_releases, preorders, deals = _hits(
        session,
        [
            _section([p.featured == true()], [p.created_at.desc(), p.id.desc()], per_section),
            _section(
                [p.release_date.is_not(None), p.release_date <= today],
                [p.release_date.desc(), p.id.desc()],
                per_section,
            ),
            _section(
                [p.release_date.is_not(None), p.release_date > today],
                [p.release_date.asc(), p.id.asc()],
                per_section,
            ),
            _section(
                [p.list_price_minor.is_not(None), p.list_price_minor > p.price_minor],
                [(p.list_price_minor - p.price_minor).desc(), p.id.desc()],
                per_section,
            ),
        ],
        currency,
    )
    return HomeSections(
        featured=featured, new_releases=new_releases, preorders=preorders, deals=deals
    )


# -- product page ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Availability:
    """What the shop can deliver of one product right now."""

    stock_available: int  # own keys with status available
    provider_available: int  # stock of offers fulfilment would buy (margin kept)
    is_preorder: bool  # release date still in the future (or marked preorder, no date)

    @property
    def total(self) -> int:
        return self.stock_available + self.provider_available

    @property
    def can_buy(self) -> bool:
        return self.total > 0

    @property
    def label(self) -> str:
        """In the language in force (core.i18n)."""
        if self.total <= 0:
            return _(OUT_OF_STOCK)
        if self.is_preorder:
            return _(PREORDER)
        return _(IN_STOCK) if self.stock_available > 0 else _(FROM_PARTNER)


def is_upcoming(product: Product, today: date | None = None) -> bool:
    """A pre-order: released in the future, or marked preorder with no date yet."""
    today = today or utcnow().date()
    if product.release_date is not None:
        return product.release_date > today
    return bool(product.is_preorder)


def provider_available(
    *, session: Session, product: Product, settings: Settings | None = None
) -> int:
    """Keys the providers can deliver within the margin: the free units (stock minus
    checkout holds) of the offers ``reservations.offer_choices`` would try (one per
    provider in the chain)."""
    settings = settings or get_settings()
    offers = offer_choices(session, product=product, quantity=1, settings=settings)
    return sum(max(0, choice.free) for choice in offers)


def availability(
    *, session: Session, product: Product, settings: Settings | None = None
) -> Availability:
    assert product.id is not None
    own = available_counts(session=session, product_ids=[product.id]).get(product.id, 0)
    return Availability(
        stock_available=own,
        provider_available=provider_available(session=session, product=product, settings=settings),
        is_preorder=is_upcoming(product),
    )


@dataclass(frozen=True, slots=True)
class ProductDetail:
    id: int
    slug: str
    title: str
    platform: str
    region: str
    genre: str
    publisher: str
    description: str
    price_minor: int
    currency: str
    list_price_minor: int | None
    discount_percent: int
    cover: Cover | None  # the product page's size (core.services.catalogue.covers)
    is_preorder: bool
    release_date: date | None
    stock_available: int
    provider_available: int
    availability: str
    can_buy: bool
    max_quantity: int  # how many one order may take now (0 when it cannot be bought)
    low_stock: bool
    region_locked: bool
    region_warning: str | None
    activation_instructions: str
    activation_url: str | None
    sold_in_currency: bool = True  # False: no price in the currency asked for
    arrival: str = ""  # when the key arrives, in the customer's words


def arrival_text(stock: Availability, release_date: date | None) -> str:
    """When the key will arrive: own stock at once, partner stock within about a minute,
    a pre-order on its release date."""
    if stock.is_preorder:
        if release_date:
            return _("Pre-order: your key arrives on %(date)s.") % {
                "date": format_date(release_date)
            }
        return _("Pre-order: your key arrives on the release date.")
    if stock.stock_available > 0:
        return _("Your key arrives instantly after payment.")
    if stock.provider_available > 0:
        return _("Your key usually arrives within a minute of payment (partner stock).")
    return ""


def product_detail(*, session: Session, slug: str, currency: str | None = None) -> ProductDetail:
    """Everything the product page shows about an active product, priced in ``currency``
    (None: its own); a product without a price in it cannot be bought in it
    (``sold_in_currency`` False, shown at its own price). UnknownProduct (404) for a slug
    that does not exist or is no longer for sale."""
    from core.services.orders import MAX_QUANTITY_PER_LINE

    if not isinstance(slug, str) or not slug or len(slug) > 120:
        raise UnknownProduct("no such product", slug=str(slug)[:120])
    product = get_product_by_slug(session=session, slug=slug)
    if not product.active:
        raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
    assert product.id is not None
    stock = availability(session=session, product=product)
    price = Price(product.price_minor, product.currency, product.list_price_minor)
    sold = True
    if currency:
        found = prices_in(session=session, products=[product], currency=currency)
        sold = product.id in found
        price = found.get(product.id, price)
    listed = price.list_minor
    discount = price.discount_percent
    warning = region_warning(product.region)
    return ProductDetail(
        id=product.id,
        slug=product.slug,
        title=product.title,
        platform=product.platform,
        region=product.region,
        genre=product.genre,
        publisher=product.publisher,
        description=product.description,
        price_minor=price.minor,
        currency=price.currency,
        list_price_minor=listed,
        discount_percent=discount,
        cover=cover_of(product, "page"),
        is_preorder=stock.is_preorder,
        release_date=product.release_date,
        stock_available=stock.stock_available,
        provider_available=stock.provider_available,
        availability=stock.label,
        can_buy=stock.can_buy and sold,
        max_quantity=min(MAX_QUANTITY_PER_LINE, stock.total) if sold else 0,
        low_stock=stock.stock_available > 0
        and is_low_stock(available=stock.stock_available, threshold=product.low_stock_threshold),
        region_locked=warning is not None,
        region_warning=warning,
        activation_instructions=product.activation_instructions,
        activation_url=activation_url(product.platform),
        sold_in_currency=sold,
        arrival=arrival_text(stock, product.release_date) if stock.can_buy else "",
    )


# -- listings for crawlers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedProduct:
    """One line of the sitemap: an active product's slug and when it last changed."""

    slug: str
    updated_at: date


def listed_products(*, session: Session) -> list[ListedProduct]:
    """Every product that is for sale (active), in id order, for the sitemap."""
    rows = session.execute(
        select(products.c.slug, products.c.updated_at)
        .where(products.c.active == true())
        .order_by(products.c.id)
    ).all()
    return [ListedProduct(slug=slug, updated_at=updated.date()) for slug, updated in rows]
