"""Prices per currency: the one place that says what a product costs in a currency.

A product has its own price (``Product.price_minor`` in ``Product.currency``) and may
have prices in other currencies (:class:`~core.models.ProductPrice`). It is sold in
exactly those currencies: a product without a price in the customer's currency is not
sold in it, never converted by a guessed rate. The storefront offers
:data:`core.money.SHOP_CURRENCIES`.

Every function runs in the caller's transaction; :func:`set_price` flushes, never
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, delete, select
from sqlalchemy.sql import FromClause
from sqlmodel import Session

from core.errors import InvalidInput
from core.models import Product, ProductPrice
from core.money import format_money, normalise_currency
from core.services.catalogue.product_input import CurrencyPrice, price_column

product_prices = ProductPrice.__table__  # type: ignore[attr-defined]
_products = Product.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Price:
    """A product's price in one currency (minor units), with its list price if any."""

    minor: int
    currency: str
    list_minor: int | None = None

    @property
    def discount_percent(self) -> int:
        if not self.list_minor or self.list_minor <= self.minor:
            return 0
        return round(100 * (self.list_minor - self.minor) / self.list_minor)


class Priced(Protocol):
    """A product or a listing row: its id and own price."""

    @property
    def id(self) -> int | None: ...
    @property
    def currency(self) -> str: ...
    @property
    def price_minor(self) -> int: ...
    @property
    def list_price_minor(self) -> int | None: ...


def prices_in(*, session: Session, products: list[Any], currency: str) -> dict[int, Price]:
    """Each product's (or :class:`Priced` row's) price in ``currency`` (absent: not sold
    in it). One query."""
    code = normalise_currency(currency)
    found: dict[int, Price] = {}
    others: list[int] = []
    for product in products:
        assert product.id is not None
        if product.currency == code:
            found[product.id] = Price(product.price_minor, code, product.list_price_minor)
        else:
            others.append(product.id)
    if others:
        rows = session.execute(
            select(
                product_prices.c.product_id,
                product_prices.c.price_minor,
                product_prices.c.list_price_minor,
            ).where(product_prices.c.product_id.in_(others), product_prices.c.currency == code)
        ).all()
        for pid, minor, list_minor in rows:
            found[pid] = Price(int(minor), code, list_minor)
    return found


def price_in(*, session: Session, product: Product, currency: str) -> Price | None:
    """The product's price in ``currency``, or None when it is not sold in it."""
    assert product.id is not None
    return prices_in(session=session, products=[product], currency=currency).get(product.id)


def all_prices(*, session: Session, product: Product) -> list[Price]:
    """Every price of the product: its own currency first, then the others by code."""
    assert product.id is not None
    rows = session.execute(
        select(
            product_prices.c.currency,
            product_prices.c.price_minor,
            product_prices.c.list_price_minor,
        )
        .where(product_prices.c.product_id == product.id)
        .order_by(product_prices.c.currency)
    ).all()
    own = Price(product.price_minor, product.currency, product.list_price_minor)
    return [own, *(Price(int(m), c, lm) for c, m, lm in rows if c != product.currency)]


def other_prices(*, session: Session, product_ids: list[int]) -> dict[int, dict[str, Price]]:
    """The prices each product has besides its own: ``{product id: {currency: Price}}``
    (one query; the product's own currency is never among them)."""
    found: dict[int, dict[str, Price]] = {pid: {} for pid in product_ids}
    if not product_ids:
        return found
    rows = session.execute(
        select(
            product_prices.c.product_id,
            product_prices.c.currency,
            product_prices.c.price_minor,
            product_prices.c.list_price_minor,
        )
        .select_from(product_prices.join(_products, _products.c.id == product_prices.c.product_id))
        .where(
            product_prices.c.product_id.in_(product_ids),
            product_prices.c.currency != _products.c.currency,
        )
    ).all()
    for pid, code, minor, list_minor in rows:
        found[pid][code] = Price(int(minor), code, list_minor)
    return found


def set_price(
    *,
    session: Session,
    product: Product,
    currency: str,
    price_minor: int | None,
    list_price_minor: int | None = None,
) -> None:
    """Set (or with ``price_minor=None`` remove) the product's price in ``currency``. The
    product's own currency is changed on the product row and cannot be removed."""
    code = normalise_currency(currency)
    for name, value in (("price_minor", price_minor), ("list_price_minor", list_price_minor)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise InvalidInput(f"{name} must be a whole number of 0 or more", field=name)
    assert product.id is not None
    if code == product.currency:
        if price_minor is None:
            raise InvalidInput(
                f"{code} is the product's own currency; its price cannot be removed",
                field="currency",
            )
        product.price_minor, product.list_price_minor = price_minor, list_price_minor
        session.add(product)
        session.flush()
        return
    session.execute(
        delete(product_prices).where(
            product_prices.c.product_id == product.id, product_prices.c.currency == code
        )
    )
    if price_minor is not None:
        session.add(
            ProductPrice(
                product_id=product.id,
                currency=code,
                price_minor=price_minor,
                list_price_minor=list_price_minor,
            )
        )
    session.flush()


def price_changes(
    *, session: Session, product: Product, prices: dict[str, Any], own: Price
) -> dict[str, tuple[Price | None, Price | None]]:
    """What setting ``prices`` (``{currency: CurrencyPrice | None}``, the model family's
    ``prices``) on ``product`` would change: ``{currency: (before, after)}``, None for
    not sold in it. ``own`` is the product's own price once its other changes are made:
    an entry for that currency must agree with it (InvalidInput naming the column, e.g.
    ``price_eur``) and is otherwise left out; an entry without a list price keeps the
    one the currency has."""
    current = {p.currency: p for p in all_prices(session=session, product=product)}
    out: dict[str, tuple[Price | None, Price | None]] = {}
    for code, entry in prices.items():
        if code == own.currency:
            if entry is None:
                continue  # an empty own-currency column: the price column says it
            _check_own(entry, own)
            continue
        before = current.get(code)
        after: Price | None = None
        if isinstance(entry, CurrencyPrice):
            listed = (
                entry.list_price_minor
                if "list_price_minor" in entry.model_fields_set
                else (before.list_minor if before else None)
            )
            after = Price(entry.price_minor, code, listed)
        if after != before:
            out[code] = (before, after)
    return out


def _check_own(entry: CurrencyPrice, own: Price) -> None:
    code = own.currency
    listed_given = "list_price_minor" in entry.model_fields_set
    for column, given, wanted, name in (
        (price_column(code), entry.price_minor, own.minor, "price"),
        (price_column(code, listed=True), entry.list_price_minor, own.list_minor, "list_price"),
    ):
        if name == "list_price" and not listed_given:
            continue
        if given != wanted:
            shown = format_money(given, code, style="code") if given is not None else "empty"
            want = format_money(wanted, code, style="code") if wanted is not None else "empty"
            raise InvalidInput(
                f"{column} is {shown} but {name} is {want}: {code} is the product's own "
                f"currency, priced by {name}; make them equal or leave {column} empty",
                field=column,
            )


def apply_price_changes(
    *, session: Session, product: Product, changes: dict[str, tuple[Price | None, Price | None]]
) -> None:
    """Write what :func:`price_changes` found. Caller's transaction (flushed)."""
    for code, (_, after) in changes.items():
        set_price(
            session=session,
            product=product,
            currency=code,
            price_minor=after.minor if after else None,
            list_price_minor=after.list_minor if after else None,
        )


def price_columns(currency: str) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any]]:
    """For listings in ``currency``: the products table outer-joined to its price in that
    currency, and the price and list-price expressions (the price is NULL for a product
    not sold in it). Used by the catalogue search to filter and sort in the currency."""
    code = normalise_currency(currency)
    other = product_prices.alias("price_in")
    joined = _products.outerjoin(
        other, (other.c.product_id == _products.c.id) & (other.c.currency == code)
    )
    own = _products.c.currency == code
    price = case((own, _products.c.price_minor), else_=other.c.price_minor)
    list_price = case((own, _products.c.list_price_minor), else_=other.c.list_price_minor)
    return joined, price, list_price


def set_product_price(
    *,
    slug: str,
    currency: str,
    price: str | None,
    actor: Any,
    list_price: str | None = None,
) -> Price | None:
    """The operator's "price SLUG in CURRENCY": amounts as text in major units (parsed
    exactly by core.money), ``price=None`` removes the currency's price. Owns its
    transaction; audited as ``product.price``. Returns the new price (None: removed)."""
    from core.db import session_scope
    from core.money import parse_amount
    from core.services.audit import record_audit
    from core.services.catalogue.products import get_product_by_slug

    code = normalise_currency(currency)
    minor = parse_amount(price, code, field="price") if price is not None else None
    listed = parse_amount(list_price, code, field="list_price") if list_price else None
    with session_scope() as session:
        product = get_product_by_slug(session=session, slug=slug)
        set_price(
            session=session,
            product=product,
            currency=code,
            price_minor=minor,
            list_price_minor=listed,
        )
        record_audit(
            session=session,
            actor=actor,
            action="product.price",
            object_type="product",
            object_id=product.slug,
            data={"currency": code, "price_minor": minor, "list_price_minor": listed},
        )
    return Price(minor, code, listed) if minor is not None else None
