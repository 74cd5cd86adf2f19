"""The owner's catalogue actions: add, edit, retire, restore and delete products, and
list them for the console and the CLI.

Input is a :class:`~core.services.catalogue.ProductCreate` or
:class:`~core.services.catalogue.ProductUpdate` (the one model family; text typed by a
person goes through :func:`~core.services.catalogue.product_input.parse_product_text`
first). Every change leaves an audit event naming what changed, from what to what; an
edit that changes nothing writes nothing. A product that was ever ordered, or has keys,
is retired (hidden from the storefront, kept for its orders), never deleted.

The public functions own their transaction; the ``*_in`` helpers run in the caller's
(the CSV import applies many rows in one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core.db import session_scope
from core.errors import DomainError
from core.models import Key, KeyStatus, OrderLine, Product, ProviderOffer
from core.services.audit import Actor, record_audit
from core.services.catalogue import (
    ProductCreate,
    ProductUpdate,
    create_product,
    get_product_by_slug,
    update_product,
)
from core.services.catalogue.prices import Price, all_prices, price_changes

AUDIT_TEXT_LIMIT: Final = 200
LIST_LIMIT: Final = 200


class ProductInUse(DomainError):
    """The product has orders or keys: it can be retired, never deleted."""

    code = "product_in_use"
    http_status = 409


@dataclass(frozen=True)
class ProductRow:
    """One product as the console and ``keyshop products list`` show it."""

    id: int
    slug: str
    title: str
    platform: str
    region: str
    genre: str
    price_minor: int
    currency: str
    active: bool
    available_keys: int
    mapped_offers: int
    ordered: int  # order lines


def _audit_value(name: str, value: Any) -> Any:
    if name == "cover_url" and value is not None:
        return "(image)"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) > AUDIT_TEXT_LIMIT:
        return value[:AUDIT_TEXT_LIMIT] + "…"
    return value


def diff(session: Session, product: Product, changes: dict[str, Any]) -> dict[str, Any]:
    """The changes that would change something: ``{field: value}``; ``prices`` keeps
    the entries that change a price (an entry for the product's own currency that
    disagrees with its price is InvalidInput naming the column)."""
    out = {k: v for k, v in changes.items() if k != "prices" and getattr(product, k) != v}
    if changes.get("prices"):
        own = Price(
            changes.get("price_minor", product.price_minor),
            changes.get("currency", product.currency),
            changes.get("list_price_minor", product.list_price_minor),
        )
        changed = price_changes(session=session, product=product, prices=changes["prices"], own=own)
        if changed:
            out["prices"] = {code: changes["prices"][code] for code in changed}
    return out


def _prices_audit(session: Session, product: Product) -> dict[str, Any]:
    return {
        p.currency: [p.minor, p.list_minor] for p in all_prices(session=session, product=product)
    }


# -- in the caller's transaction --------------------------------------------------------


def add_product_in(session: Session, *, data: ProductCreate, actor: Actor) -> Product:
    """Create the product and audit it (``product.create``). Caller's transaction."""
    product = create_product(session=session, data=data)
    assert product.id is not None
    record_audit(
        session=session,
        actor=actor,
        action="product.create",
        object_type="product",
        object_id=product.id,
        data={
            "slug": product.slug,
            "fields": {k: _audit_value(k, v) for k, v in data.model_dump().items()},
        },
    )
    return product


def edit_product_in(
    session: Session, *, product: Product, data: ProductUpdate, actor: Actor, action: str
) -> dict[str, Any]:
    """Apply the changes that change something, audited as ``action`` with each field's
    ``[before, after]``; returns them (empty: nothing written). Caller's transaction."""
    changes = diff(session, product, data.changes())
    if not changes:
        return {}
    before = {k: getattr(product, k) for k in changes if k != "prices"}
    if "prices" in changes:
        before["prices"] = _prices_audit(session, product)
    assert product.id is not None
    update_product(session=session, product_id=product.id, data=ProductUpdate(**changes))
    after = {k: v for k, v in changes.items() if k != "prices"}
    if "prices" in changes:
        after["prices"] = _prices_audit(session, product)
    record_audit(
        session=session,
        actor=actor,
        action=action,
        object_type="product",
        object_id=product.id,
        data={
            "slug": product.slug,
            "changes": {
                k: [_audit_value(k, before[k]), _audit_value(k, v)] for k, v in after.items()
            },
        },
    )
    return changes


# -- owning their transaction -----------------------------------------------------------


def add_product(*, data: ProductCreate, actor: Actor) -> ProductRow:
    with session_scope() as session:
        product = add_product_in(session, data=data, actor=actor)
        session.flush()
        return product_row(session, product)


def edit_product(*, slug: str, data: ProductUpdate, actor: Actor) -> dict[str, Any]:
    """Change the product ``slug``; returns what changed (empty: nothing to do)."""
    with session_scope() as session:
        product = get_product_by_slug(session=session, slug=slug)
        return edit_product_in(
            session, product=product, data=data, actor=actor, action="product.edit"
        )


def retire_product(*, slug: str, actor: Actor, reason: str = "") -> bool:
    """Take the product off sale (``active`` false: hidden from the storefront and the
    store API, kept with its orders, keys and offers), audited as ``product.retire``.
    False when it was already retired."""
    with session_scope() as session:
        product = get_product_by_slug(session=session, slug=slug)
        if not product.active:
            return False
        assert product.id is not None
        update_product(session=session, product_id=product.id, active=False)
        record_audit(
            session=session,
            actor=actor,
            action="product.retire",
            object_type="product",
            object_id=product.id,
            data={"slug": slug, "reason": reason.strip()[:AUDIT_TEXT_LIMIT]},
        )
        return True


def restore_product(*, slug: str, actor: Actor) -> bool:
    """Put a retired product back on sale, audited as ``product.restore``. False when it
    was on sale already."""
    with session_scope() as session:
        product = get_product_by_slug(session=session, slug=slug)
        if product.active:
            return False
        assert product.id is not None
        update_product(session=session, product_id=product.id, active=True)
        record_audit(
            session=session,
            actor=actor,
            action="product.restore",
            object_type="product",
            object_id=product.id,
            data={"slug": slug},
        )
        return True


def delete_product(*, slug: str, actor: Actor) -> None:
    """Delete a product added by mistake: only one never ordered and without keys (its
    offers are unmapped). Anything else is ProductInUse: retire it instead."""
    with session_scope() as session:
        product = get_product_by_slug(session=session, slug=slug)
        pid = product.id
        ordered = session.exec(
            select(func.count()).select_from(OrderLine).where(OrderLine.product_id == pid)
        ).one()
        keys = session.exec(
            select(func.count()).select_from(Key).where(Key.product_id == pid)
        ).one()
        if ordered or keys:
            raise ProductInUse(
                f"{slug} has {ordered} order line(s) and {keys} key(s); retire it instead "
                "(keyshop products retire)",
                slug=slug,
            )
        for offer in session.exec(select(ProviderOffer).where(ProviderOffer.product_id == pid)):
            offer.product_id = None
            session.add(offer)
        session.flush()
        session.delete(product)
        assert pid is not None
        record_audit(
            session=session,
            actor=actor,
            action="product.delete",
            object_type="product",
            object_id=pid,
            data={"slug": slug, "title": product.title},
        )


# -- reading ---------------------------------------------------------------------------


def _rows(session: Session, products: list[Product]) -> list[ProductRow]:
    ids = [p.id for p in products]
    if not ids:
        return []
    keys = dict(
        session.exec(
            select(Key.product_id, func.count())
            .where(col(Key.product_id).in_(ids), Key.status == KeyStatus.AVAILABLE)
            .group_by(col(Key.product_id))
        ).all()
    )
    offers = dict(
        session.exec(
            select(ProviderOffer.product_id, func.count())
            .where(col(ProviderOffer.product_id).in_(ids))
            .group_by(col(ProviderOffer.product_id))
        ).all()
    )
    ordered = dict(
        session.exec(
            select(OrderLine.product_id, func.count())
            .where(col(OrderLine.product_id).in_(ids))
            .group_by(col(OrderLine.product_id))
        ).all()
    )
    return [
        ProductRow(
            id=p.id,
            slug=p.slug,
            title=p.title,
            platform=p.platform,
            region=p.region,
            genre=p.genre,
            price_minor=p.price_minor,
            currency=p.currency,
            active=p.active,
            available_keys=keys.get(p.id, 0),
            mapped_offers=offers.get(p.id, 0),
            ordered=ordered.get(p.id, 0),
        )
        for p in products
        if p.id is not None
    ]


def product_row(session: Session, product: Product) -> ProductRow:
    return _rows(session, [product])[0]


def list_products(
    *,
    session: Session,
    query: str = "",
    retired: bool | None = None,
    after_id: int | None = None,
    limit: int = LIST_LIMIT,
) -> list[ProductRow]:
    """Products by id, ``query`` matching slug or title (case-insensitively);
    ``retired``: True only retired ones, False only those on sale, None both. Page with
    ``after_id`` (the last id of the previous page)."""
    stmt = select(Product)
    text = query.strip().lower()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                func.lower(Product.slug).like(pattern, escape="\\"),
                func.lower(Product.title).like(pattern, escape="\\"),
            )
        )
    if retired is not None:
        stmt = stmt.where(col(Product.active).is_(not retired))
    if after_id is not None:
        stmt = stmt.where(col(Product.id) > after_id)
    products = list(session.exec(stmt.order_by(col(Product.id)).limit(limit)))
    return _rows(session, products)
