"""The cart adds up: totals are the sum of the lines, quantities are checked when added,
one currency per cart with prices per currency, VAT contained in the total, pre-orders
marked (issue #14 item 1 and 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.errors import InvalidInput
from core.models import Order, OrderLine, utcnow
from core.services.cart import CartLimit, CartLine, add_to_cart, quote_cart
from core.services.catalogue.prices import all_prices, price_in, set_price
from core.services.checkout import CartRejected, place_order
from core.services.vat import country, vat_included
from tests.factories import fresh, make_keys, make_product


def test_three_of_a_product_with_two_left_is_refused_at_add(session):
    game = make_product(session, title="Two Left", price_minor=1000)
    make_keys(session, game, 2)
    cart = add_to_cart(session=session, lines=[], slug=game.slug, quantity=2)
    assert cart == [CartLine(game.slug, 2)]
    with pytest.raises(CartLimit, match="Only 2 of Two Left available right now"):
        add_to_cart(session=session, lines=cart, slug=game.slug)


def test_the_total_is_the_sum_of_the_lines_even_with_a_problem(session):
    """Today's main showed such a line with "Total $0.00"."""
    game = make_product(session, title="Two Left", price_minor=1000, currency="USD")
    make_keys(session, game, 2)
    quote = quote_cart(session=session, lines=[CartLine(game.slug, 3)])
    assert not quote.ok and quote.problems == ["Only 2 of Two Left available right now."]
    assert quote.lines[0].line_total_minor == 3000
    assert quote.total_minor == 3000 == sum(ln.line_total_minor for ln in quote.lines)


def test_a_cart_is_in_one_currency_and_never_shows_a_partial_total(session):
    """Today's main: a cart mixing EUR and USD showed the EUR total without the $ line."""
    eur = make_product(session, title="Euro Game", price_minor=3099)
    usd = make_product(session, title="Dollar Game", price_minor=2999, currency="USD")
    make_keys(session, eur, 3)
    make_keys(session, usd, 3)
    quote = quote_cart(
        session=session, lines=[CartLine(eur.slug, 3), CartLine(usd.slug, 1)], currency="EUR"
    )
    assert [ln.currency for ln in quote.lines] == ["EUR", "EUR"]
    assert quote.lines[1].problem == (
        "Dollar Game is not sold in EUR. Remove it, or switch currency to buy it."
    )
    assert quote.total_minor == sum(ln.line_total_minor for ln in quote.lines) == 9297
    assert not quote.ok
    with pytest.raises(CartLimit, match="not sold in EUR"):
        add_to_cart(session=session, lines=[], slug=usd.slug, currency="EUR")


def test_prices_per_currency_are_used_and_never_converted(session, test_settings):
    game = make_product(session, title="Tri Price", price_minor=1999, list_price_minor=2999)
    make_keys(session, game, 3)
    set_price(session=session, product=game, currency="usd", price_minor=2199)
    set_price(session=session, product=game, currency="GBP", price_minor=1799)
    session.commit()
    assert [(p.currency, p.minor) for p in all_prices(session=session, product=game)] == [
        ("EUR", 1999),
        ("GBP", 1799),
        ("USD", 2199),
    ]
    assert price_in(session=session, product=game, currency="JPY") is None
    quote = quote_cart(session=session, lines=[CartLine(game.slug, 2)], currency="GBP")
    assert quote.ok and quote.currency == "GBP" and quote.total_minor == 3598

    result = place_order(
        email="a@example.com", lines=[CartLine(game.slug, 2)], currency="USD", country="US"
    )
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert (order.currency, order.total_minor, order.country, order.vat_minor) == (
        "USD", 4398, "US", 0
    )  # fmt: skip
    with pytest.raises(CartRejected, match="not sold in JPY"):
        place_order(email="a@example.com", lines=[CartLine(game.slug, 1)], currency="JPY")


def test_prices_include_vat_of_the_buyer_country(session, test_settings):
    game = make_product(session, price_minor=1190)
    make_keys(session, game, 2)
    germany = country("de")
    assert germany.rate_bp == 1900 and germany.rate_text == "19%"
    quote = quote_cart(session=session, lines=[CartLine(game.slug, 1)], vat_rate_bp=germany.rate_bp)
    assert quote.total_minor == 1190 and quote.vat_minor == 190
    result = place_order(email="a@example.com", lines=[CartLine(game.slug, 2)], country="DE")
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert (order.country, order.vat_rate_bp, order.vat_minor) == ("DE", 1900, 380)
    assert vat_included(1999, 2550) == 406  # Finland, rounded half up
    with pytest.raises(InvalidInput, match="Choose the country"):
        place_order(email="a@example.com", lines=[CartLine(game.slug, 1)], country="XX")


def test_the_rates_table_is_configured(test_settings):
    configured = test_settings.model_copy(update={"vat_rates": "DE=7, XK=18"})
    assert country("DE", configured).rate_bp == 700
    assert country("XK", configured).rate_bp == 1800
    with pytest.raises(InvalidInput, match="KEYSHOP_VAT_RATES"):
        country("DE", test_settings.model_copy(update={"vat_rates": "DE=nineteen"}))


def test_preorder_lines_are_marked_in_the_cart_and_the_order(session, test_settings):
    soon = make_product(
        session, title="Soon", is_preorder=True, release_date=(utcnow() + timedelta(days=30)).date()
    )
    make_keys(session, soon, 2)
    quote = quote_cart(session=session, lines=[CartLine(soon.slug, 1)])
    assert quote.lines[0].is_preorder
    result = place_order(email="a@example.com", lines=[CartLine(soon.slug, 1)])
    line = fresh(session).exec(select(OrderLine)).one()
    assert line.is_preorder and result.number
