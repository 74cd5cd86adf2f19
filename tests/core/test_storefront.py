"""The shop's read side: home sections and the product page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.errors import UnknownProduct
from core.models import ProviderOffer, utcnow
from core.services.demo import seed_demo
from core.services.storefront import (
    ACTIVATION_URLS,
    FROM_PARTNER,
    IN_STOCK,
    OUT_OF_STOCK,
    PREORDER,
    home_sections,
    product_detail,
)
from tests.factories import make_keys, make_product


def offer(
    session, product, *, cost_minor, stock, provider="codeswholesale", ext=None, currency="EUR"
):
    row = ProviderOffer(
        provider=provider,
        external_id=ext or f"{product.slug}-{provider}-{cost_minor}",
        product_id=product.id,
        name=product.title,
        cost_minor=cost_minor,
        currency=currency,
        stock=stock,
    )
    session.add(row)
    session.commit()
    return row


def test_home_sections_on_the_demo_catalogue(session):
    seed_demo(session=session, keys_per_product=2)
    session.commit()
    home = home_sections(session=session, per_section=6)
    today = utcnow().date()
    assert 0 < len(home.featured) <= 6 and all(h.featured for h in home.featured)
    assert home.deals and all(h.list_price_minor > h.price_minor for h in home.deals)
    savings = [h.list_price_minor - h.price_minor for h in home.deals]
    assert savings == sorted(savings, reverse=True)
    assert home.preorders and all(h.release_date > today for h in home.preorders)
    assert [h.release_date for h in home.preorders] == sorted(
        h.release_date for h in home.preorders
    )
    assert home.new_releases and all(h.release_date <= today for h in home.new_releases)
    dates = [h.release_date for h in home.new_releases]
    assert dates == sorted(dates, reverse=True)
    # stock figures come along: released titles with demo keys are in stock
    assert any(h.in_stock for h in home.new_releases)


def test_home_sections_leave_out_inactive_products_and_respect_the_limit(session):
    today = date(2026, 6, 1)
    for i in range(5):
        make_product(session, featured=True, release_date=today - timedelta(days=i))
    hidden = make_product(session, featured=True, active=False, list_price_minor=9999)
    home = home_sections(session=session, per_section=3, today=today)
    assert len(home.featured) == 3 and len(home.new_releases) == 3
    assert hidden.slug not in {h.slug for s in (home.featured, home.deals) for h in s}
    assert home.preorders == [] and home.deals == []


def test_product_detail_in_stock_with_region_warning_and_activation_link(session):
    product = make_product(
        session,
        platform="Steam",
        region="EU",
        price_minor=2000,
        list_price_minor=4000,
        activation_instructions="Open Steam…",
    )
    make_keys(session, product, 3)
    detail = product_detail(session=session, slug=product.slug)
    assert detail.stock_available == 3 and detail.provider_available == 0
    assert detail.availability == IN_STOCK and detail.can_buy and detail.max_quantity == 3
    assert detail.discount_percent == 50
    assert detail.region_locked
    assert detail.region_warning.startswith("This key only activates in the EU")
    assert detail.activation_url == "https://store.steampowered.com/account/registerkey"
    assert detail.activation_instructions == "Open Steam…"


def test_global_keys_have_no_region_warning_and_gog_links_to_its_redeem_page(session):
    product = make_product(session, platform="GOG", region="GLOBAL")
    detail = product_detail(session=session, slug=product.slug)
    assert not detail.region_locked and detail.region_warning is None
    assert detail.activation_url == ACTIVATION_URLS["GOG"] == "https://www.gog.com/redeem"
    assert detail.availability == OUT_OF_STOCK and not detail.can_buy and detail.max_quantity == 0


def test_provider_stock_counts_only_offers_that_keep_the_margin(session):
    product = make_product(session, price_minor=1000)  # 5% margin: cost at most 950
    offer(session, product, cost_minor=900, stock=4)
    offer(session, product, cost_minor=990, stock=50, provider="kinguin")  # would lose money
    offer(session, product, cost_minor=500, stock=7, currency="USD", provider="kinguin", ext="usd")
    detail = product_detail(session=session, slug=product.slug)
    assert detail.stock_available == 0
    assert detail.provider_available == 4
    assert detail.availability == FROM_PARTNER and detail.can_buy


def test_preorder_label_and_release_date(session):
    release = utcnow().date() + timedelta(days=30)
    product = make_product(session, is_preorder=True, release_date=release)
    offer(session, product, cost_minor=1000, stock=10)
    detail = product_detail(session=session, slug=product.slug)
    assert detail.is_preorder and detail.availability == PREORDER and detail.release_date == release
    assert detail.can_buy


@pytest.mark.parametrize("slug", ["no-such-game", "", "x" * 500])
def test_unknown_slug_is_404(session, slug):
    with pytest.raises(UnknownProduct) as err:
        product_detail(session=session, slug=slug)
    assert err.value.http_status == 404


def test_inactive_product_is_404(session):
    product = make_product(session, active=False)
    with pytest.raises(UnknownProduct):
        product_detail(session=session, slug=product.slug)
