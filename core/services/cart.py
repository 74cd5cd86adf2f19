"""The cart: what it holds, what it costs, and what may be added to it.

The one home of the cart's rules (STYLE "One rule, one place"); the storefront, the
store API and checkout all call these.

- A cart is in one currency, the customer's. A line is priced in that currency
  (:mod:`core.services.catalogue.prices`); a product without a price in it is not sold
  in it (the line says so, costs nothing and blocks checkout), never converted.
- :func:`quote_cart` never raises for the cart's content: each line says whether it can
  be bought and, if not, why; ``Quote.total_minor`` is always the sum of the lines'
  ``line_total_minor`` (what the order would hold), and ``vat_minor`` the VAT contained
  in it for the buyer's country.
- :func:`add_to_cart` refuses, with the customer's sentence, a quantity above what can
  be served (own keys plus free partner units, at most MAX_QUANTITY_PER_LINE) or a
  product not sold in the cart's currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.errors import InvalidInput
from core.i18n import gettext
from core.models import Product
from core.money import normalise_currency
from core.services.catalogue import SLUG_RE, products
from core.services.catalogue.covers import cover_src
from core.services.catalogue.prices import prices_in
from core.services.orders import MAX_LINES, MAX_QUANTITY_PER_LINE
from core.services.storefront import availability
from core.services.vat import vat_included


@dataclass(frozen=True, slots=True)
class CartLine:
    slug: str
    quantity: int


@dataclass(frozen=True, slots=True)
class QuoteLine:
    slug: str
    title: str
    platform: str
    region: str
    cover_url: str | None
    unit_price_minor: int
    currency: str
    quantity: int
    line_total_minor: int
    can_buy: bool
    problem: str | None
    max_quantity: int = 0  # how many one order may take now
    product_id: int | None = None
    is_preorder: bool = False


@dataclass(frozen=True, slots=True)
class Quote:
    lines: list[QuoteLine]
    total_minor: int  # always the sum of the lines' line_total_minor
    currency: str
    problems: list[str] = field(default_factory=list)
    vat_rate_bp: int = 0
    vat_minor: int = 0  # VAT contained in total_minor (prices are VAT-inclusive)

    @property
    def ok(self) -> bool:
        """The cart can be checked out as it is."""
        return bool(self.lines) and not self.problems


class CartLimit(InvalidInput):
    """That many of the product cannot be added (the message says how many can)."""

    code = "cart_limit"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _merged(lines: Sequence[CartLine]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Cart lines with the same product added together (first position kept), and the
    problems of the cart's shape."""
    problems: list[str] = []
    if len(lines) > MAX_LINES:
        problems.append(
            gettext("An order holds at most %(count)s different products.") % {"count": MAX_LINES}
        )
    merged: dict[str, Any] = {}
    for line in lines:
        slug = line.slug if isinstance(line.slug, str) else ""
        qty = line.quantity
        if slug in merged and _is_int(merged[slug]) and _is_int(qty):
            merged[slug] += qty
        elif slug not in merged:
            merged[slug] = qty
    return list(merged.items()), problems


def stock_problem(title: str, platform: str, region: str, available: int) -> str:
    """The customer's sentence for a product the shop cannot serve in that quantity."""
    if available <= 0:
        return gettext("%(title)s (%(platform)s, %(region)s) is out of stock.") % {
            "title": title,
            "platform": platform,
            "region": region,
        }
    return gettext("Only %(count)s of %(title)s available right now.") % {
        "count": available,
        "title": title,
    }


def not_sold_in(title: str, currency: str) -> str:
    return gettext(
        "%(title)s is not sold in %(currency)s. Remove it, or switch currency to buy it."
    ) % {"title": title, "currency": currency}


def _cart_currency(found: dict[str, Product], entries: list[tuple[str, Any]]) -> str:
    """No currency asked for: the first product's own (the store API's behaviour)."""
    for slug, _ in entries:
        if slug in found:
            return found[slug].currency
    return ""


def quote_cart(
    *,
    session: Session,
    lines: list[CartLine],
    currency: str | None = None,
    vat_rate_bp: int = 0,
) -> Quote:
    """Price a cart in ``currency`` (None: the first product's own) with today's prices
    and stock. Never raises for the cart's content: each line says whether it can be
    bought and, if not, why (``problem``); ``problems`` collects every problem of the
    cart. ``total_minor`` is the sum of the lines; ``vat_minor`` the VAT in it at
    ``vat_rate_bp``."""
    entries, problems = _merged(lines)
    slugs = [s for s, _ in entries if s and SLUG_RE.fullmatch(s)]
    found = {
        p.slug: p
        for p in session.execute(select(Product).where(products.c.slug.in_(slugs))).scalars()
    }
    code = normalise_currency(currency) if currency else _cart_currency(found, entries)
    priced = (
        prices_in(session=session, products=list(found.values()), currency=code) if code else {}
    )
    out: list[QuoteLine] = []
    for slug, qty in entries:
        product = found.get(slug)
        quantity = qty if _is_int(qty) else 0
        problem: str | None
        if product is None or not product.active:
            problem = gettext(
                "We could not find the product %(slug)s; it may no longer be for sale."
            ) % {"slug": repr(slug)}
            problems.append(problem)
            out.append(
                QuoteLine(slug=slug, title=slug, platform="", region="", cover_url=None,
                          unit_price_minor=0, currency=code, quantity=quantity,
                          line_total_minor=0, can_buy=False, problem=problem)
            )  # fmt: skip
            continue
        assert product.id is not None
        price = priced.get(product.id)
        stock = availability(session=session, product=product)
        most = min(MAX_QUANTITY_PER_LINE, stock.total)
        problem = None
        if price is None:
            problem = not_sold_in(product.title, code)
        elif not _is_int(qty) or qty < 1:
            problem = gettext("Choose a quantity of at least 1 for %(title)s.") % {
                "title": product.title
            }
        elif qty > MAX_QUANTITY_PER_LINE:
            problem = gettext("At most %(count)s of %(title)s per order.") % {
                "count": MAX_QUANTITY_PER_LINE,
                "title": product.title,
            }
        elif not stock.can_buy or qty > stock.total:
            problem = stock_problem(product.title, product.platform, product.region, stock.total)
        if problem:
            problems.append(problem)
        unit = price.minor if price is not None else 0
        out.append(
            QuoteLine(
                slug=product.slug,
                title=product.title,
                platform=product.platform,
                region=product.region,
                cover_url=cover_src(product),
                unit_price_minor=unit,
                currency=code,
                quantity=quantity,
                line_total_minor=unit * max(quantity, 0),
                can_buy=problem is None,
                problem=problem,
                max_quantity=most,
                product_id=product.id,
                is_preorder=stock.is_preorder,
            )
        )
    total = sum(ln.line_total_minor for ln in out)
    return Quote(
        lines=out,
        total_minor=total,
        currency=code,
        problems=problems,
        vat_rate_bp=vat_rate_bp,
        vat_minor=vat_included(total, vat_rate_bp),
    )


def add_to_cart(
    *,
    session: Session,
    lines: list[CartLine],
    slug: str,
    quantity: int = 1,
    currency: str | None = None,
) -> list[CartLine]:
    """The cart with ``quantity`` more of ``slug`` (a new line at the end, or added to
    its line). CartLimit, with the customer's sentence and nothing changed, when the
    product cannot be bought, is not sold in ``currency``, or the line would exceed what
    can be served now (own keys plus free partner units, at most
    MAX_QUANTITY_PER_LINE); a cart of MAX_LINES products takes no new one."""
    if not _is_int(quantity) or quantity < 1:
        raise CartLimit(gettext("Choose a quantity of at least 1."), field="quantity")
    product = (
        session.execute(select(Product).where(products.c.slug == slug)).scalars().first()
        if isinstance(slug, str) and SLUG_RE.fullmatch(slug)
        else None
    )
    if product is None or not product.active:
        raise CartLimit(
            gettext("We could not find that game; it may no longer be for sale."), field="slug"
        )
    if currency and not prices_in(session=session, products=[product], currency=currency):
        raise CartLimit(not_sold_in(product.title, normalise_currency(currency)), field="currency")
    current = sum(ln.quantity for ln in lines if ln.slug == slug)
    if current == 0 and len({ln.slug for ln in lines}) >= MAX_LINES:
        raise CartLimit(
            gettext("A cart holds at most %(count)s different games.") % {"count": MAX_LINES},
            field="slug",
        )
    stock = availability(session=session, product=product)
    most = min(MAX_QUANTITY_PER_LINE, stock.total)
    wanted = current + quantity
    if most <= 0:
        raise CartLimit(
            stock_problem(product.title, product.platform, product.region, 0), field="quantity"
        )
    if wanted > most:
        limit = (
            gettext("At most %(count)s of %(title)s per order.")
            if most == MAX_QUANTITY_PER_LINE
            else gettext("Only %(count)s of %(title)s available right now.")
        ) % {"count": most, "title": product.title}
        held = (
            " " + gettext("Your cart already holds %(count)s.") % {"count": current}
            if current
            else ""
        )
        raise CartLimit(limit + held, field="quantity", most=most)
    out: list[CartLine] = []
    for line in lines:
        if line.slug == slug:
            continue
        out.append(line)
    position = next((i for i, ln in enumerate(lines) if ln.slug == slug), None)
    new = CartLine(slug=slug, quantity=wanted)
    if position is None:
        out.append(new)
    else:
        out.insert(min(position, len(out)), new)
    return out
