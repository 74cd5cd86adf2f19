"""The owner's catalogue actions: add, edit, retire, restore, delete, each audited; the
model family refuses bad input with the field named and writes nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from core.errors import DuplicateSlug, InvalidInput, UnknownProduct
from core.models import AuditEvent, Product
from core.services.audit import Actor
from core.services.catalogue import ProductCreate, ProductUpdate
from core.services.catalogue.product_input import (
    parse_product_text,
    validate_create,
    validate_update,
)
from core.services.operator import catalogue as ops
from tests.factories import fresh, make_order, make_product

OWNER = Actor.operator("owner")


def audit(session, action: str) -> list[AuditEvent]:
    return list(fresh(session).exec(select(AuditEvent).where(AuditEvent.action == action)))


def starfall(**overrides) -> ProductCreate:
    fields = {
        "slug": "starfall",
        "title": "Starfall",
        "platform": "steam",
        "region": "eu",
        "genre": "Action",
        "price_minor": 1999,
        "currency": "EUR",
    }
    fields.update(overrides)
    return ProductCreate(**fields)


def test_add_edit_retire_restore_are_audited(session) -> None:
    row = ops.add_product(data=starfall(), actor=OWNER)
    assert (row.slug, row.platform, row.region, row.active) == ("starfall", "Steam", "EU", True)
    [created] = audit(session, "product.create")
    assert created.actor_id == "owner" and created.data["slug"] == "starfall"

    changes = ops.edit_product(
        slug="starfall",
        data=ProductUpdate(price_minor=2499, release_date=date(2027, 1, 2)),
        actor=OWNER,
    )
    assert changes == {"price_minor": 2499, "release_date": date(2027, 1, 2)}
    [edit] = audit(session, "product.edit")
    assert edit.data["changes"] == {
        "price_minor": [1999, 2499],
        "release_date": [None, "2027-01-02"],
    }
    # the same edit again changes nothing and writes nothing
    assert (
        ops.edit_product(slug="starfall", data=ProductUpdate(price_minor=2499), actor=OWNER) == {}
    )
    assert len(audit(session, "product.edit")) == 1

    assert ops.retire_product(slug="starfall", actor=OWNER, reason="delisted") is True
    assert ops.retire_product(slug="starfall", actor=OWNER) is False
    product = fresh(session).exec(select(Product)).one()
    assert product.active is False
    assert audit(session, "product.retire")[0].data["reason"] == "delisted"
    assert ops.restore_product(slug="starfall", actor=OWNER) is True
    assert fresh(session).exec(select(Product)).one().active is True
    assert len(audit(session, "product.restore")) == 1


def test_a_product_with_orders_is_retired_never_deleted(session) -> None:
    product = make_product(session)
    make_order(session, [(product, 1)])
    with pytest.raises(ops.ProductInUse, match="retire it instead"):
        ops.delete_product(slug=product.slug, actor=OWNER)
    assert fresh(session).get(Product, product.id) is not None
    assert audit(session, "product.delete") == []


def test_a_product_added_by_mistake_can_be_deleted(session) -> None:
    ops.add_product(data=starfall(), actor=OWNER)
    ops.delete_product(slug="starfall", actor=OWNER)
    assert fresh(session).exec(select(Product)).all() == []
    assert audit(session, "product.delete")[0].data["slug"] == "starfall"


def test_refusals_name_the_field_and_change_nothing(session) -> None:
    ops.add_product(data=starfall(), actor=OWNER)
    with pytest.raises(DuplicateSlug):
        ops.add_product(data=starfall(), actor=OWNER)
    with pytest.raises(UnknownProduct):
        ops.edit_product(slug="nope", data=ProductUpdate(title="x"), actor=OWNER)
    with pytest.raises(InvalidInput) as err:
        validate_update({"title": None})
    assert err.value.data["field"] == "title"
    with pytest.raises(InvalidInput) as err:
        validate_create({"slug": "a", "title": "A", "platform": "Steam"})
    assert err.value.message == "price_minor is required"
    with pytest.raises(InvalidInput, match="unknown product field"):
        validate_update({"colour": "red"})
    assert len(audit(session, "product.create")) == 1


def test_text_as_a_person_types_it() -> None:
    typed = parse_product_text(
        {
            "price": "19,99",
            "list_price": "",
            "currency": "EUR",
            "is_preorder": "yes",
            "release_date": "2027-03-01",
            "low_stock_threshold": "3",
        }
    )
    assert typed == {
        "price_minor": 1999,
        "list_price_minor": None,
        "currency": "EUR",
        "is_preorder": True,
        "release_date": date(2027, 3, 1),
        "low_stock_threshold": 3,
    }
    assert parse_product_text({"price": "1200"}, currency="JPY") == {"price_minor": 1200}
    with pytest.raises(InvalidInput) as err:
        parse_product_text({"price": "1.999"}, currency="EUR")
    assert err.value.data["field"] == "price"
    with pytest.raises(InvalidInput):
        parse_product_text({"featured": "maybe"})


def test_list_products_searches_and_pages(session) -> None:
    for n in range(5):
        make_product(session, slug=f"game-{n}", title=f"Game {n}")
    make_product(session, slug="other", title="Other", active=False)
    assert [r.slug for r in ops.list_products(session=session, query="GAME", limit=3)] == [
        "game-0",
        "game-1",
        "game-2",
    ]
    page = ops.list_products(session=session, query="game", after_id=3)
    assert [r.slug for r in page] == ["game-3", "game-4"]
    assert [r.slug for r in ops.list_products(session=session, retired=True)] == ["other"]
    assert [r.slug for r in ops.list_products(session=session, query="50%_")] == []


def test_prices_per_currency_in_the_product_input(session) -> None:
    from core.services.catalogue.prices import all_prices
    from core.services.catalogue.product_input import CurrencyPrice

    def prices() -> dict[str, tuple[int, int | None]]:
        product = fresh(session).exec(select(Product).where(Product.slug == "starfall")).one()
        return {p.currency: (p.minor, p.list_minor) for p in all_prices(session=fresh(session), product=product)}  # fmt: skip

    ops.add_product(
        data=starfall(prices={"USD": CurrencyPrice(price_minor=2199, list_price_minor=2599)}),
        actor=OWNER,
    )
    assert prices() == {"EUR": (1999, None), "USD": (2199, 2599)}

    # a price without its list price keeps the list price; None stops selling in it
    changes = ops.edit_product(
        slug="starfall",
        data=validate_update(parse_product_text({"price_usd": "20.99", "price_gbp": "17"})),
        actor=OWNER,
    )
    assert set(changes) == {"prices"}
    assert prices() == {"EUR": (1999, None), "GBP": (1700, None), "USD": (2099, 2599)}
    ops.edit_product(slug="starfall", data=ProductUpdate(prices={"GBP": None}), actor=OWNER)
    assert prices() == {"EUR": (1999, None), "USD": (2099, 2599)}
    # the same prices again change nothing and write nothing
    assert (
        ops.edit_product(
            slug="starfall",
            data=validate_update(parse_product_text({"price_usd": "20.99", "price_eur": "19.99"})),
            actor=OWNER,
        )
        == {}
    )
    assert len(audit(session, "product.edit")) == 2


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ({"price_usd": "ten"}, "price_usd"),
        ({"list_price_usd": "5"}, "list_price_usd"),
        ({"price_eur": "18.00"}, "price_eur"),
    ],
)
def test_a_bad_price_per_currency_is_refused_naming_it(session, text, field) -> None:
    ops.add_product(data=starfall(), actor=OWNER)
    with pytest.raises(InvalidInput) as caught:
        ops.edit_product(
            slug="starfall", data=validate_update(parse_product_text(text)), actor=OWNER
        )
    assert caught.value.data["field"] == field and field in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        validate_create({"slug": "x", "title": "X", "platform": "Steam", "price_minor": 1,
                         "prices": {"usd": {"price_minor": 1}}})  # fmt: skip
    assert caught.value.data["field"] == "prices"
    assert audit(session, "product.edit") == []
