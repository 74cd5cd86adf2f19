"""Mapping offers by hand: list and search (unmapped ones with suggestions), map, unmap,
and create a product from an offer; each audited, the stock flag following."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from core.errors import UnknownProduct
from core.models import AuditEvent, Product, ProviderOffer
from core.services.audit import Actor
from core.services.operator import offers as ops
from tests.factories import fresh, make_product

OWNER = Actor.operator("owner")


def add_offer(session, provider="codeswholesale", external_id="cw-1", **fields) -> ProviderOffer:
    values = {
        "name": "Starfall Vanguard",
        "title": "Starfall Vanguard",
        "platform": "Steam",
        "region": "REGION FREE",
        "cost_minor": 1240,
        "currency": "EUR",
        "stock": 7,
        "release_date": date(2027, 2, 1),
        "is_preorder": True,
    }
    values.update(fields)
    offer = ProviderOffer(provider=provider, external_id=external_id, **values)
    session.add(offer)
    session.commit()
    return offer


def actions(session) -> list[str]:
    return [e.action for e in fresh(session).exec(select(AuditEvent).order_by(AuditEvent.id))]


def test_list_search_and_suggest(session):
    make_product(session, slug="starfall", title="Starfall Vanguard", platform="Steam")
    make_product(session, slug="other", title="Hollow Tide", platform="GOG")
    add_offer(session)
    add_offer(session, provider="kinguin", external_id="k-9", name="Hollow Tide GOG CD Key")
    assert [o.external_id for o in ops.list_offers(session=session, unmapped=True)] == [
        "cw-1",
        "k-9",
    ]
    assert [o.external_id for o in ops.list_offers(session=session, provider="kinguin")] == ["k-9"]
    assert [o.external_id for o in ops.list_offers(session=session, query="hollow")] == ["k-9"]
    [best, *_] = ops.suggestions(
        session=session, provider="codeswholesale", external_id="cw-1", limit=2
    )
    assert best.title == "Starfall Vanguard"


def test_map_and_unmap_are_audited_and_move_the_stock_flag(session):
    product = make_product(session, slug="starfall", title="Starfall Vanguard")
    add_offer(session)
    assert ops.map_offer(
        provider="codeswholesale", external_id="cw-1", slug="starfall", actor=OWNER
    )
    assert not ops.map_offer(
        provider="codeswholesale", external_id="cw-1", slug="starfall", actor=OWNER
    )
    offer = fresh(session).exec(select(ProviderOffer)).one()
    assert offer.product_id == product.id and offer.mapped_title == "Starfall Vanguard"
    assert fresh(session).get(Product, product.id).in_stock is True
    assert ops.unmap_offer(provider="codeswholesale", external_id="cw-1", actor=OWNER)
    assert fresh(session).exec(select(ProviderOffer)).one().product_id is None
    assert fresh(session).get(Product, product.id).in_stock is False
    assert actions(session) == ["offer.map", "offer.unmap"]
    with pytest.raises(ops.UnknownOffer):
        ops.map_offer(provider="kinguin", external_id="nope", slug="starfall", actor=OWNER)
    with pytest.raises(UnknownProduct):
        ops.map_offer(provider="codeswholesale", external_id="cw-1", slug="nope", actor=OWNER)


def test_create_a_product_from_an_offer(session):
    add_offer(session)
    row = ops.create_product_from_offer(provider="codeswholesale", external_id="cw-1", actor=OWNER)
    assert row.slug == "starfall-vanguard-steam-global"
    product = fresh(session).exec(select(Product)).one()
    assert (product.title, product.platform, product.region) == (
        "Starfall Vanguard",
        "Steam",
        "GLOBAL",
    )
    assert (product.release_date, product.is_preorder) == (date(2027, 2, 1), True)
    # the smallest …99 price keeping the shop's minimum margin (5 %) over 12.40
    assert product.price_minor == 1399
    assert fresh(session).exec(select(ProviderOffer)).one().product_id == product.id
    assert actions(session) == ["product.create", "offer.map"]
    assert product.cover_url is None  # this provider had no picture


def test_a_product_from_an_offer_shows_the_providers_cover(session):
    from core.services.catalogue.covers import cover_of

    add_offer(session, cover_url="https://images.example/starfall.jpg")
    ops.create_product_from_offer(provider="codeswholesale", external_id="cw-1", actor=OWNER)
    product = fresh(session).exec(select(Product)).one()
    assert product.cover_url == "https://images.example/starfall.jpg"
    assert cover_of(product, "card").src == "https://images.example/starfall.jpg"
