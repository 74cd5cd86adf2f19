"""Products: create, read and edit them, every field validated (a clear error, nothing
written). Also the table handles and predicates the catalogue's other modules share.

Every function runs inside the caller's transaction and never commits; writes are
flushed so the caller sees ids and constraint errors at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Final, cast

from sqlalchemy import (
    Table,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.config import get_settings
from core.errors import DuplicateSlug, InvalidInput, UnknownProduct
from core.models import PLATFORMS, REGIONS, Key, Product, ProviderOffer, utcnow

products: Final = cast(Table, Product.__table__)  # type: ignore[attr-defined]
keys_table: Final = cast(Table, Key.__table__)  # type: ignore[attr-defined]
offers: Final = cast(Table, ProviderOffer.__table__)  # type: ignore[attr-defined]

SLUG_RE: Final = re.compile(r"[a-z0-9-]{1,120}")
CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")

# The partial index ix_keys_available covers ``status = 'available'``; the predicate is
# written as a literal (not a bind parameter) so a generic prepared plan can use it too.
_KEY_AVAILABLE: Final = "keys.status = 'available'"

_PLATFORM_BY_LOWER: Final = {p.lower(): p for p in PLATFORMS}
_REGION_BY_LOWER: Final = {r.lower(): r for r in REGIONS}

# Fields a caller may set through create_product / update_product.
_EDITABLE: Final = frozenset(
    {
        "slug", "title", "platform", "region", "genre", "description", "publisher",
        "price_minor", "currency", "list_price_minor", "is_preorder", "release_date",
        "activation_instructions", "low_stock_threshold", "featured", "active", "cover_url",
    }
)  # fmt: skip


# -- validation ---------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_field(name: str, value: Any, *, max_len: int, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(text) > max_len:
        raise InvalidInput(f"{name} is too long (at most {max_len} characters)", field=name)
    return text


def _validated(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise product fields; raise InvalidInput naming the first bad one.

    Platform and region are written in their canonical spelling when they are known ones
    (``steam`` → ``Steam``, ``eu`` → ``EU``); unknown platforms and regions are allowed,
    as the shop may sell on stores this list does not know yet.
    """
    unknown = sorted(set(fields) - _EDITABLE)
    if unknown:
        raise InvalidInput(f"unknown product field(s): {', '.join(unknown)}", fields=unknown)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "slug":
            if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
                raise InvalidInput(
                    "slug must be 1 to 120 characters of lower-case letters, digits and hyphens",
                    field="slug",
                )
        elif name == "title":
            value = _text_field("title", value, max_len=200, required=True)
        elif name == "platform":
            value = _text_field("platform", value, max_len=40, required=True)
            value = _PLATFORM_BY_LOWER.get(value.lower(), value)
        elif name == "region":
            value = _text_field("region", value, max_len=20, required=True)
            value = _REGION_BY_LOWER.get(value.lower(), value)
        elif name == "genre":
            value = _text_field("genre", value, max_len=40, required=False)
        elif name == "publisher":
            value = _text_field("publisher", value, max_len=120, required=False)
        elif name in ("description", "activation_instructions"):
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be text", field=name)
        elif name == "price_minor":
            if not _is_int(value) or value < 0:
                raise InvalidInput(
                    "price_minor must be a whole number of minor units, 0 or more",
                    field="price_minor",
                )
        elif name == "list_price_minor":
            if value is not None and (not _is_int(value) or value < 0):
                raise InvalidInput(
                    "list_price_minor must be empty or a whole number of minor units, 0 or more",
                    field="list_price_minor",
                )
        elif name == "currency":
            if not isinstance(value, str) or not CURRENCY_RE.fullmatch(value):
                raise InvalidInput(
                    "currency must be a three-letter ISO code in capitals, like EUR",
                    field="currency",
                )
        elif name == "low_stock_threshold":
            if not _is_int(value) or value < 0:
                raise InvalidInput(
                    "low_stock_threshold must be a whole number, 0 or more",
                    field="low_stock_threshold",
                )
        elif name in ("is_preorder", "featured", "active"):
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be true or false", field=name)
        elif name == "release_date":
            if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
                raise InvalidInput("release_date must be a date or empty", field="release_date")
        elif name == "cover_url" and value is not None:
            if not isinstance(value, str):
                raise InvalidInput("cover_url must be text or empty", field="cover_url")
            limit = products.c.cover_url.type.length  # type: ignore[attr-defined]
            if limit is not None and len(value) > limit:
                raise InvalidInput(
                    f"cover_url is too long (at most {limit} characters)", field="cover_url"
                )
        out[name] = value
    return out


def _slug_taken(session: Session, slug: str, *, other_than: int | None = None) -> bool:
    stmt = select(products.c.id).where(products.c.slug == slug)
    if other_than is not None:
        stmt = stmt.where(products.c.id != other_than)
    return session.execute(stmt.limit(1)).first() is not None


@contextmanager
def _slug_guard(session: Session, slug: str) -> Iterator[None]:
    """Run the write in a savepoint and flush it, so a slug a concurrent writer took
    between our check and our write becomes DuplicateSlug and the caller's transaction
    stays usable."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        if "slug" in str(exc.orig).lower():
            raise DuplicateSlug(f"a product with slug {slug!r} already exists", slug=slug) from None
        raise


# -- products -----------------------------------------------------------------------


def create_product(
    *,
    session: Session,
    slug: str,
    title: str,
    platform: str,
    region: str,
    genre: str,
    price_minor: int,
    currency: str,
    **fields: Any,
) -> Product:
    """Add a product to the catalogue (flushed, not committed).

    Raises InvalidInput for a malformed field and DuplicateSlug when the slug is taken.
    Optional fields are those of :class:`core.models.Product` (description, publisher,
    list_price_minor, is_preorder, release_date, activation_instructions,
    low_stock_threshold, featured, active, cover_url); ``low_stock_threshold`` defaults
    to ``KEYSHOP_LOW_STOCK_THRESHOLD``.
    """
    fields.setdefault("low_stock_threshold", get_settings().default_low_stock_threshold)
    values = _validated(
        {
            "slug": slug,
            "title": title,
            "platform": platform,
            "region": region,
            "genre": genre,
            "price_minor": price_minor,
            "currency": currency,
            **fields,
        }
    )
    if _slug_taken(session, values["slug"]):
        raise DuplicateSlug(f"a product with slug {slug!r} already exists", slug=slug)
    product = Product(**values)
    with _slug_guard(session, product.slug):
        session.add(product)
    return product


def get_product(*, session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise UnknownProduct(f"no product with id {product_id}", product_id=product_id)
    return product


def get_product_by_slug(*, session: Session, slug: str) -> Product:
    product: Product | None = session.execute(
        select(Product).where(products.c.slug == slug)
    ).scalar_one_or_none()
    if product is None:
        raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
    return product


def update_product(*, session: Session, product_id: int, **changes: Any) -> Product:
    """Change some fields of a product (flushed, not committed); ``updated_at`` moves on.

    Same validation as :func:`create_product`; UnknownProduct when there is no such
    product. The search index follows the change (database triggers on SQLite, the
    expression index on PostgreSQL).
    """
    product = get_product(session=session, product_id=product_id)
    values = _validated(changes)
    new_slug = values.get("slug", product.slug)
    if new_slug != product.slug and _slug_taken(session, new_slug, other_than=product_id):
        raise DuplicateSlug(f"a product with slug {new_slug!r} already exists", slug=new_slug)
    with _slug_guard(session, new_slug):
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = utcnow()
    return product
