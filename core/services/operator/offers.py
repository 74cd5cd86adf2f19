"""Providers' offers as the owner maps them: list and search them (unmapped ones with the
products closest to them), map an offer to a product, unmap it, or create a product
from an offer. Mapping and unmapping are audited (``offer.map``, ``offer.unmap``) and
remember what the offer said at that moment (catalogue alerts compare it later); the
products' stock flags follow in the same transaction.

The public functions that change something own their transaction; reads take a session.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core import money
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.models import Product, ProviderOffer
from core.services.audit import Actor, record_audit
from core.services.catalogue import get_product_by_slug
from core.services.catalogue.product_input import ProductCreate, validate_create
from core.services.operator.catalogue import ProductRow, add_product_in, product_row
from core.services.provider_sync import Candidate, _region, closest_products, remember_mapping

PAGE: Final = 100


class UnknownOffer(NotFound):
    code = "unknown_offer"


@dataclass(frozen=True, slots=True)
class OfferListRow:
    id: int
    provider: str
    external_id: str
    name: str
    platform: str | None
    region: str | None
    cost_minor: int | None
    currency: str
    stock: int
    product_slug: str | None
    last_synced_at: datetime | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_offers(
    *,
    session: Session,
    provider: str | None = None,
    unmapped: bool = False,
    query: str = "",
    after_id: int | None = None,
    limit: int = PAGE,
) -> list[OfferListRow]:
    """Offers by id (page with ``after_id``), of one ``provider`` or all, only the
    unmapped ones, or those whose name or external id contains ``query``
    (case-insensitively)."""
    stmt = select(ProviderOffer, Product.slug).join(
        Product, col(Product.id) == col(ProviderOffer.product_id), isouter=True
    )
    if provider:
        stmt = stmt.where(ProviderOffer.provider == provider)
    if unmapped:
        stmt = stmt.where(col(ProviderOffer.product_id).is_(None))
    text = query.strip().lower()
    if text:
        pattern = f"%{_escape_like(text)}%"
        stmt = stmt.where(
            or_(
                func.lower(ProviderOffer.name).like(pattern, escape="\\"),
                func.lower(ProviderOffer.external_id).like(pattern, escape="\\"),
            )
        )
    if after_id is not None:
        stmt = stmt.where(col(ProviderOffer.id) > after_id)
    rows = session.exec(stmt.order_by(col(ProviderOffer.id)).limit(limit)).all()
    return [
        OfferListRow(
            id=o.id or 0,
            provider=o.provider,
            external_id=o.external_id,
            name=o.name,
            platform=o.platform,
            region=o.region,
            cost_minor=o.cost_minor,
            currency=o.currency,
            stock=o.stock,
            product_slug=slug,
            last_synced_at=o.last_synced_at,
        )
        for o, slug in rows
    ]


def find_offer(session: Session, provider: str, external_id: str) -> ProviderOffer:
    offer = session.exec(
        select(ProviderOffer).where(
            ProviderOffer.provider == provider, ProviderOffer.external_id == external_id
        )
    ).first()
    if offer is None:
        raise UnknownOffer(
            f"{provider} has no offer {external_id!r} (a sync brings new offers in)",
            provider=provider,
            external_id=external_id,
        )
    return offer


def suggestions(
    *, session: Session, provider: str, external_id: str, limit: int = 3
) -> list[Candidate]:
    """The products closest to the offer (title likeness, same platform and region)."""
    offer = find_offer(session, provider, external_id)
    assert offer.id is not None
    return closest_products(session=session, offer_id=offer.id, limit=limit)


def product_slugs(*, session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        pid: slug
        for pid, slug in session.exec(
            select(Product.id, Product.slug).where(col(Product.id).in_(ids))
        )
        if pid is not None
    }


def _map_in(session: Session, offer: ProviderOffer, product: Product, actor: Actor) -> None:
    before = offer.product_id
    offer.product_id = product.id
    remember_mapping(offer)
    session.add(offer)
    session.flush()
    assert offer.id is not None
    record_audit(
        session=session,
        actor=actor,
        action="offer.map",
        object_type="offer",
        object_id=offer.id,
        data={
            "provider": offer.provider,
            "external_id": offer.external_id,
            "product": product.slug,
            "previous_product_id": before,
            "offer": {"title": offer.title, "platform": offer.platform, "region": offer.region},
        },
    )


def map_offer(*, provider: str, external_id: str, slug: str, actor: Actor) -> bool:
    """Map the offer to product ``slug``; False when it already was."""
    with session_scope() as session:
        offer = find_offer(session, provider, external_id)
        product = get_product_by_slug(session=session, slug=slug)
        if offer.product_id == product.id:
            return False
        _map_in(session, offer, product, actor)
        return True


def unmap_offer(*, provider: str, external_id: str, actor: Actor) -> bool:
    """Unmap the offer (the shop stops buying it for that product); False when it was
    not mapped."""
    with session_scope() as session:
        offer = find_offer(session, provider, external_id)
        if offer.product_id is None:
            return False
        before = offer.product_id
        offer.product_id = None
        offer.mapped_title = offer.mapped_platform = offer.mapped_region = None
        offer.mapped_at = None
        session.add(offer)
        session.flush()
        assert offer.id is not None
        record_audit(
            session=session,
            actor=actor,
            action="offer.unmap",
            object_type="offer",
            object_id=offer.id,
            data={"provider": provider, "external_id": external_id, "product_id": before},
        )
        return True


def slug_for(title: str, platform: str, region: str) -> str:
    """``Starfall Vanguard``, ``Steam``, ``GLOBAL`` → ``starfall-vanguard-steam-global``."""
    text = unicodedata.normalize("NFKD", f"{title} {platform} {region}")
    text = text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:120].strip("-") or "product"


def charm_price_keeping_margin(cost_minor: int, currency: str, margin_percent: float) -> int:
    """The smallest price ending in …99 (whole units in currencies without decimals)
    that keeps ``margin_percent`` over ``cost_minor``."""
    from core.services.pricing import charm_up, with_margin

    return charm_up(with_margin(cost_minor, round(margin_percent * 100)), currency)


def offer_as_product(offer: ProviderOffer, *, price_minor: int | None = None) -> ProductCreate:
    """The product an offer describes: its title, platform, region (the provider's
    aliases mapped: ``REGION FREE`` → GLOBAL), release date, pre-order and the
    provider's cover picture when it has one; priced at
    ``price_minor``, or the smallest charm price that keeps the shop's minimum margin
    over the offer's cost."""
    title = (offer.title or offer.name).strip()
    platform = (offer.platform or "").strip() or "Steam"
    region = _region(offer.region) or "GLOBAL"
    if price_minor is None:
        if offer.cost_minor is None:
            raise InvalidInput(
                f"{offer.provider} {offer.external_id} has no cost; give a price", field="price"
            )
        price_minor = charm_price_keeping_margin(
            offer.cost_minor, offer.currency, get_settings().min_margin_percent
        )
    return validate_create(
        {
            "slug": slug_for(title, platform, region),
            "title": title[:200],
            "platform": platform[:40],
            "region": region[:20],
            "price_minor": price_minor,
            "currency": offer.currency,
            "is_preorder": offer.is_preorder,
            "release_date": offer.release_date,
            "cover_url": offer.cover_url,
        }
    )


def create_product_from_offer(
    *,
    provider: str,
    external_id: str,
    actor: Actor,
    slug: str | None = None,
    price_minor: int | None = None,
) -> ProductRow:
    """Create the product the offer describes (:func:`offer_as_product`; ``slug`` to
    name it otherwise) and map the offer to it, audited as ``product.create`` and
    ``offer.map``, in one transaction."""
    with session_scope() as session:
        offer = find_offer(session, provider, external_id)
        data = offer_as_product(offer, price_minor=price_minor)
        if slug is not None:
            data = validate_create({**data.model_dump(), "slug": slug})
        product = add_product_in(session, data=data, actor=actor)
        _map_in(session, offer, product, actor)
        return product_row(session, product)


def describe_cost(minor: int | None, currency: str) -> str:
    return "-" if minor is None else money.format_money(minor, currency, style="code")
