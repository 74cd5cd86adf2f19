"""Products: create, read and edit them, every field validated by the product model
family (:mod:`.product_input`: a clear error, nothing written). Also the table handles and predicates the catalogue's other modules share.

Every function runs inside the caller's transaction and never commits; writes are
flushed so the caller sees ids and constraint errors at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

from sqlalchemy import (
    Table,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.errors import DuplicateSlug, UnknownProduct
from core.models import Key, Product, ProviderOffer, utcnow
from core.services.catalogue.product_input import (
    ProductCreate,
    ProductUpdate,
    validate_create,
    validate_update,
)

products: Final = cast(Table, Product.__table__)  # type: ignore[attr-defined]
keys_table: Final = cast(Table, Key.__table__)  # type: ignore[attr-defined]
offers: Final = cast(Table, ProviderOffer.__table__)  # type: ignore[attr-defined]

# The partial index ix_keys_available covers ``status = 'available'``; the predicate is
# written as a literal (not a bind parameter) so a generic prepared plan can use it too.
_KEY_AVAILABLE: Final = "keys.status = 'available'"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    *, session: Session, data: ProductCreate | None = None, **fields: Any
) -> Product:
    """Add a product to the catalogue (flushed, not committed): ``data``, or its fields
    as keyword arguments (validated strictly as a :class:`ProductCreate`).

    Raises InvalidInput for a malformed field and DuplicateSlug when the slug is taken.
    """
    checked = data or validate_create(fields)
    values = checked.model_dump(exclude={"prices"})
    if _slug_taken(session, values["slug"]):
        slug = values["slug"]
        raise DuplicateSlug(f"a product with slug {slug!r} already exists", slug=slug)
    product = Product(**values)
    with _slug_guard(session, product.slug):
        session.add(product)
    if checked.prices:
        _set_prices(session, product, dict(checked.prices))
    return product


def _set_prices(session: Session, product: Product, prices: dict[str, Any]) -> None:
    from core.services.catalogue.prices import Price, apply_price_changes, price_changes

    own = Price(product.price_minor, product.currency, product.list_price_minor)
    changes = price_changes(session=session, product=product, prices=prices, own=own)
    apply_price_changes(session=session, product=product, changes=changes)


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


def update_product(
    *, session: Session, product_id: int, data: ProductUpdate | None = None, **changes: Any
) -> Product:
    """Change some fields of a product (flushed, not committed): ``data``, or the
    changes as keyword arguments (validated strictly as a :class:`ProductUpdate`);
    ``updated_at`` moves on; ``prices`` are checked against the product's own price
    once the other fields are changed (:mod:`.prices`). UnknownProduct when there is no such product. The search index follows the change (database triggers on SQLite, the
    expression index on PostgreSQL).
    """
    values = (data or validate_update(changes)).changes()
    prices = values.pop("prices", None)
    product = get_product(session=session, product_id=product_id)
    new_slug = values.get("slug", product.slug)
    if new_slug != product.slug and _slug_taken(session, new_slug, other_than=product_id):
        raise DuplicateSlug(f"a product with slug {new_slug!r} already exists", slug=new_slug)
    with _slug_guard(session, new_slug):
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = utcnow()
    if prices:
        _set_prices(session, product, prices)
    return product
