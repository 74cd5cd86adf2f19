"""Listings in the customer's currency: only products sold in it, priced, filtered and
sorted in it (issue #14 item 2)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.services.catalogue import search_products
from core.services.catalogue.prices import set_price
from tests.factories import make_product


def test_search_lists_filters_and_sorts_in_the_currency(session):
    a = make_product(session, title="Alpha", price_minor=1000)  # EUR only
    b = make_product(session, title="Bravo", price_minor=3000)
    c = make_product(session, title="Charlie", price_minor=500, currency="GBP")
    set_price(session=session, product=b, currency="GBP", price_minor=900, list_price_minor=1800)
    session.commit()

    gbp = search_products(session=session, currency="gbp", sort="price_asc")
    assert [(h.title, h.price_minor, h.currency) for h in gbp.items] == [
        ("Charlie", 500, "GBP"),
        ("Bravo", 900, "GBP"),
    ]
    assert gbp.items[1].discount_percent == 50 and gbp.total == 2
    ranged = search_products(session=session, currency="GBP", min_price_minor=600)
    assert [h.title for h in ranged.items] == ["Bravo"]
    eur = search_products(session=session, currency="EUR", sort="price_desc")
    assert [(h.title, h.price_minor) for h in eur.items] == [("Bravo", 3000), ("Alpha", 1000)]
    everything = search_products(session=session, sort="title")
    assert [h.id for h in everything.items] == [a.id, b.id, c.id]


def test_price_bounds_are_refused_in_customer_words(session):
    with pytest.raises(InvalidInput) as err:
        search_products(session=session, min_price_minor=500, max_price_minor=100)
    assert "min_price_minor" not in err.value.message
    assert err.value.message == "The lowest price must not be above the highest price."


def test_home_and_product_page_in_the_currency_and_when_the_key_arrives(session):
    from datetime import timedelta

    from core.models import utcnow
    from core.services.storefront import home_sections, product_detail
    from tests.factories import make_keys

    own = make_product(session, title="Own", featured=True)
    make_keys(session, own, 1)
    set_price(session=session, product=own, currency="USD", price_minor=2100)
    eur_only = make_product(session, title="Euro only", featured=True)
    soon = make_product(
        session, title="Soon", is_preorder=True, release_date=(utcnow() + timedelta(days=9)).date()
    )
    make_keys(session, soon, 1)
    session.commit()

    usd = home_sections(session=session, currency="USD")
    assert [(h.title, h.price_minor, h.currency) for h in usd.featured] == [("Own", 2100, "USD")]
    assert {h.title for h in home_sections(session=session).featured} == {"Own", "Euro only"}

    detail = product_detail(session=session, slug=own.slug, currency="USD")
    assert (detail.price_minor, detail.currency, detail.can_buy) == (2100, "USD", True)
    assert detail.arrival == "Your key arrives instantly after payment."
    not_sold = product_detail(session=session, slug=eur_only.slug, currency="USD")
    assert not not_sold.sold_in_currency and not not_sold.can_buy and not_sold.max_quantity == 0
    preorder = product_detail(session=session, slug=soon.slug)
    assert preorder.arrival.startswith("Pre-order: your key arrives on ")
