"""core.money: exponents, parsing without floats, display, arithmetic that refuses to mix
currencies; and a JPY and a KWD product priced, shown and checked out correctly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import select

from core import money
from core.errors import InvalidInput
from core.models import Order
from core.money import Money, format_money, parse_amount
from core.services import checkout
from core.services.checkout import CartLine, pay_test_order, place_order
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_keys, make_product
from tests.support.stripe import stripe_configured


@pytest.mark.parametrize(
    "currency, places", [("JPY", 0), ("eur", 2), ("USD", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)]
)
def test_exponents_follow_iso_4217(currency, places):
    assert money.exponent(currency) == places


@pytest.mark.parametrize(
    "text, currency, minor",
    [
        ("19.99", "EUR", 1999),
        ("19,99", "EUR", 1999),
        ("€19.99", "EUR", 1999),
        ("1,200", "JPY", 1200),
        ("1200", "JPY", 1200),
        ("¥1,200", "JPY", 1200),
        ("1.234", "KWD", 1234),
        ("1.234,50", "EUR", 123450),
        ("1,234.50", "EUR", 123450),
        ("0.1", "EUR", 10),  # exact: float(0.1) * 100 is 10.000000000000002
        ("12 EUR", "EUR", 1200),
        ("0", "GBP", 0),
        ("999999999999.99", "EUR", 99999999999999),
    ],
)
def test_parse_amount_is_exact(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    "text, currency, words",
    [
        ("", "EUR", "enter an amount"),
        ("abc", "EUR", "not an amount"),
        ("12.5.1", "EUR", "not an amount"),
        ("nan", "EUR", "not an amount"),
        ("inf", "EUR", "not an amount"),
        ("1e3", "EUR", "not an amount"),
        ("-5", "EUR", "cannot be negative"),
        ("19.999", "EUR", "at most 2 decimals"),
        ("12.5", "JPY", "no decimals"),
        ("1.2345", "KWD", "at most 3 decimals"),
        ("10000000000000", "EUR", "too large"),
        ("5", "EURO", "not a currency code"),
    ],
)
def test_parse_amount_refuses_with_a_clear_message(text, currency, words):
    with pytest.raises(InvalidInput) as info:
        parse_amount(text, currency, field="price")
    assert words in info.value.message


def test_negative_amounts_only_when_asked():
    assert parse_amount("-5.00", "EUR", allow_negative=True) == -500


@pytest.mark.parametrize(
    "minor, currency, style, shown",
    [
        (1999, "EUR", "sign", "€19.99"),
        (-500, "usd", "sign", "-$5.00"),
        (123456, "GBP", "sign", "£1,234.56"),
        (1200, "JPY", "sign", "¥1,200"),
        (1234, "KWD", "sign", "1.234 KWD"),
        (1999, "EUR", "code", "19.99 EUR"),
        (1200, "JPY", "code", "1,200 JPY"),
        (None, "EUR", "sign", ""),
    ],
)
def test_format_money(minor, currency, style, shown):
    assert format_money(minor, currency, style=style) == shown


def test_conversions_at_the_edges():
    assert money.to_decimal(1234, "KWD") == Decimal("1.234")
    assert money.to_minor("5.79", "EUR") == 579
    assert money.to_minor("5.795", "EUR", exact=False) == 580
    with pytest.raises(InvalidInput):
        money.to_minor("5.795", "EUR")


def test_money_never_mixes_currencies():
    assert Money(500, "EUR") + Money(250, "EUR") == Money(750, "EUR")
    assert Money(500, "EUR") * 3 == Money(1500, "EUR")
    assert money.total([Money(1, "JPY"), Money(2, "JPY")], "JPY") == Money(3, "JPY")
    with pytest.raises(money.CurrencyMismatch):
        Money(500, "EUR") + Money(500, "USD")
    with pytest.raises(money.CurrencyMismatch):
        assert Money(500, "EUR") < Money(600, "GBP")


@pytest.mark.parametrize(
    "currency, price_minor, shown", [("JPY", 1200, "¥1,200"), ("KWD", 1234, "1.234 KWD")]
)
def test_a_product_priced_in_jpy_or_kwd_is_shown_and_checked_out_correctly(
    session, queued_jobs, currency, price_minor, shown
):
    from web.state.format import money as shown_as

    product = make_product(session, currency=currency, price_minor=price_minor)
    make_keys(session, product, 2)
    quote = checkout.quote_cart(session=session, lines=[CartLine(product.slug, 2)])
    assert quote.ok and quote.currency == currency and quote.total_minor == 2 * price_minor
    assert shown_as(quote.lines[0].unit_price_minor, quote.currency) == shown
    assert (
        shown_as(quote.total_minor, quote.currency)
        == {"JPY": "¥2,400", "KWD": "2.468 KWD"}[currency]
    )
    result = place_order(email="yen@example.com", lines=[CartLine(product.slug, 2)])
    assert (result.total_minor, result.currency) == (2 * price_minor, currency)
    pay_test_order(number=result.number, access_token=result.access_token)
    [(_, args, _)] = [j for j in queued_jobs if j[0] == "process_webhook"]
    assert process_webhook(webhook_id=args[0]) == f"order {result.number} paid"
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.status == "paid" and order.total_minor == 2 * price_minor


def test_stripe_is_sent_minor_units_of_a_zero_decimal_currency(session, test_settings, monkeypatch):
    with stripe_configured(test_settings, monkeypatch) as fake:
        product = make_product(session, currency="JPY", price_minor=1200)
        make_keys(session, product, 1)
        place_order(email="yen@example.com", lines=[CartLine(product.slug, 1)])
    form = fake.requests[0]["form"]
    assert form["line_items[0][price_data][unit_amount]"] == "1200"  # yen, not cents
    assert form["line_items[0][price_data][currency]"] == "jpy"
