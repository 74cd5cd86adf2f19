"""Two languages (issue #15): the catalogues, the language a browser asks for, money and
dates for the locale, and every e-mail of an order in the language it was placed in."""

from __future__ import annotations

import datetime as dt
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlmodel import select

from core import i18n
from core.mail import password_reset_notice, placed_notice
from core.models import Order
from core.money import format_money
from core.services.accounts import create_account, request_password_reset
from core.services.cart import CartLine
from core.services.checkout import place_order
from core.services.notifications import request_order_links, send_order_email
from core.services.vat import country, rate_text
from tests.factories import fresh, make_keys, make_order, make_product

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w*)\}")


def _source_messages() -> set[str]:
    """Every message ``pybabel extract -F babel.cfg`` finds (what the catalogue must
    cover): the storefront, core's customer-facing texts and the e-mail templates."""
    method_map = [
        ("core/**.py", "python"),
        ("web/**.py", "python"),
        ("core/mail/templates/**.j2", "jinja2"),
    ]
    options = {
        "core/mail/templates/**.j2": {
            "extensions": "jinja2.ext.i18n",
            "trim_blocks": "true",
            "lstrip_blocks": "true",
        }
    }
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(ROOT), method_map, options, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_in_the_source_has_a_german_translation_with_its_placeholders():
    with (ROOT / "core/locale/de/LC_MESSAGES/messages.po").open("rb") as fh:
        catalogue = read_po(fh, locale="de")
    german = {
        (m.id if isinstance(m.id, str) else m.id[0]): m
        for m in catalogue
        if m.id and not m.fuzzy and (m.string if isinstance(m.string, str) else all(m.string))
    }
    source = _source_messages()
    assert len(source) > 50  # the extraction found the storefront and the e-mails
    missing = sorted(source - german.keys())
    assert missing == [], "run pybabel extract/update and translate: " + repr(missing[:5])
    for msgid in source:
        translated = german[msgid].string
        texts = [translated] if isinstance(translated, str) else list(translated)
        for text in texts:
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), msgid


def test_the_compiled_catalogue_is_the_one_in_use():
    with i18n.use_language("de"):
        assert i18n.gettext("Hello,") == "Hallo,"
        assert i18n.current_language() == "de"
    assert i18n.current_language() == "en"
    assert i18n.gettext("Hello,") == "Hello,"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,de;q=0.5", "de"),
        ("de;q=0,en", "en"),
        ("en;q=0.5,de-AT;q=0.7", "de"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
        ("de;q=abc,xx", "en"),
    ],
)
def test_the_language_comes_from_accept_language(header, expected):
    assert i18n.negotiate(header) == expected


def test_german_addresses_live_under_de():
    assert i18n.localised_path("/games/x", "de") == "/de/games/x"
    assert i18n.localised_path("/", "de") == "/de"
    assert i18n.localised_path("/games/x", "en") == "/games/x"
    assert i18n.localised_path("/cart", "fr") == "/cart"
    assert i18n.split_path("/de/games/x") == ("de", "/games/x")
    assert i18n.split_path("/de") == ("de", "/")
    assert i18n.split_path("/de/") == ("de", "/")
    assert i18n.split_path("/designer") == ("en", "/designer")
    assert i18n.split_path("/games") == ("en", "/games")


def test_money_and_dates_for_the_locale_from_one_exact_amount():
    assert format_money(1999, "EUR", language="de") == "19,99\xa0€"
    assert format_money(123456789, "EUR", language="de") == "1.234.567,89\xa0€"
    assert format_money(1200, "JPY", language="de") == "1.200\xa0¥"
    assert format_money(1234, "KWD", language="de") == "1,234\xa0KWD"
    assert format_money(-500, "USD", language="de") == "-5,00\xa0$"
    # English keeps the shop's own form
    assert format_money(1999, "EUR", language="en") == format_money(1999, "EUR") == "€19.99"
    assert i18n.format_date(dt.date(2026, 12, 5), "de") == "05.12.2026"
    assert i18n.format_date(dt.date(2026, 12, 5), "en") == "05 Dec 2026"
    moment = dt.datetime(2026, 12, 5, 14, 3, tzinfo=dt.UTC)
    assert i18n.format_datetime(moment, "de") == "05.12.2026, 14:03 UTC"


def test_vat_rates_are_written_whole():
    """20 % was shown as "2%": trailing zeros were stripped from whole numbers."""
    assert country("FR").rate_text == "20%"
    assert [rate_text(bp) for bp in (1900, 2000, 1000, 810, 2550)] == [
        "19%",
        "20%",
        "10%",
        "8.1%",
        "25.5%",
    ]
    assert rate_text(2000, "de") == "20\xa0%" and rate_text(810, "de") == "8,1\xa0%"


def _messages(test_settings, needle: str) -> list:
    found = []
    for path in sorted(test_settings.outbox_dir.glob("*.eml")):
        raw = path.read_bytes()
        if needle.encode() in raw:
            found.append(message_from_bytes(raw, policy=policy.default))
    return found


def _plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_an_order_placed_in_german_stores_its_language_and_mails_in_german(
    session, test_settings, queued_jobs
):
    game = make_product(session, title="Deutsch Quest", price_minor=1190)
    make_keys(session, game, 2)
    order_en = make_order(session, [(game, 1)], status="fulfilled")
    result = place_order(
        email="kunde@example.com", lines=[CartLine(game.slug, 2)], country="DE", language="de"
    )
    assert "/de/orders/" in result.order_url
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.language == "de"
    [(_name, args, _)] = [job for job in queued_jobs if job[0] == "send_order_email"]
    assert send_order_email(order_id=args[0], kind="placed").endswith("sent")
    [message] = _messages(test_settings, result.number)
    text = _plain(message)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert message["Subject"] == f"Bestellung {result.number} eingegangen"
    assert message["Content-Language"] == "de"
    assert text.startswith("Hallo,")
    assert "Gesamt: 23,80\xa0€" in text and "Enthaltene MwSt. (19\xa0%, DE): 3,80\xa0€" in text
    assert "Zu Ihrer Sicherheit senden wir Keys nie per E-Mail" in text
    assert f"/de/orders/{result.number}?token=" in text
    assert "Ihre Bestellung:" in html and "Wir liefern Ihre Keys" in html
    # a later notice of the same order speaks German too; an English order stays English
    assert send_order_email(order_id=order.id, kind="delivered").endswith("sent")
    assert send_order_email(order_id=order_en.id, kind="delivered").endswith("sent")
    delivered = [m for m in _messages(test_settings, result.number) if "Keys" in m["Subject"]]
    assert [m["Subject"] for m in delivered] == [
        f"Ihre Keys für Bestellung {result.number} sind bereit"
    ]
    [english] = _messages(test_settings, order_en.number)
    assert english["Subject"] == f"Your keys for order {order_en.number} are ready"
    assert "/orders/" in _plain(english) and "/de/" not in _plain(english)


def test_an_unknown_language_is_stored_as_english(session, queued_jobs):
    game = make_product(session)
    make_keys(session, game, 1)
    result = place_order(email="a@example.com", lines=[CartLine(game.slug, 1)], language="xx")
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.language == "en" and "/de/" not in result.order_url


def test_account_e_mails_speak_the_language_of_the_page_that_asked(
    session, test_settings, account_mail
):
    create_account(email="konto@example.com", password="correct horse battery")
    game = make_product(session)
    make_order(session, [(game, 1)], email="gast@example.com")
    with i18n.use_language("de"):
        request_password_reset(email="konto@example.com", ip="203.0.113.9")
        request_order_links(email="gast@example.com", ip="203.0.113.9")
    [reset] = _messages(test_settings, "konto@example.com")
    assert reset["Subject"] == "Wählen Sie ein neues Passwort für Ihr keyshop-Konto"
    assert "/de/reset-password?token=" in _plain(reset)
    [links] = _messages(test_settings, "gast@example.com")
    assert links["Subject"] == "Ihre Bestellungen bei keyshop" and "/de/orders/" in _plain(links)


def test_html_part_escapes_values_inside_translated_messages():
    message = placed_notice(
        order_number="<b>KS</b>",
        to="a@example.com",
        portal_url="https://shop.example/de/orders/1",
        lines=[("A & B", 1)],
        totals=[("Gesamt", "1,00 €")],
        language="de",
    )
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;KS&lt;/b&gt;" in html and "<b>KS</b>" not in html
    assert "Vielen Dank für Ihre Bestellung" in html
    english = password_reset_notice(to="a@example.com", link="https://x.example/r", minutes=30)
    assert english["Content-Language"] == "en"


def test_cart_refusals_speak_the_page_language(session):
    from core.services.cart import CartLimit, add_to_cart

    game = make_product(session, title="Leer Quest")  # no keys, no partner offer
    with i18n.use_language("de"), pytest.raises(CartLimit) as refused:
        add_to_cart(session=session, lines=[], slug=game.slug, quantity=1)
    assert refused.value.message == "Leer Quest (Steam, GLOBAL) ist ausverkauft."
    with pytest.raises(CartLimit) as english:
        add_to_cart(session=session, lines=[], slug=game.slug, quantity=1)
    assert english.value.message == "Leer Quest (Steam, GLOBAL) is out of stock."


def test_promo_code_refusals_speak_german():
    from core.services.promos import PromoRejected, parse_codes

    with i18n.use_language("de"), pytest.raises(PromoRejected) as refused:
        parse_codes(" ".join(f"CODE{n}" for n in range(20)))
    assert refused.value.message.startswith("Höchstens ")
    with pytest.raises(PromoRejected) as refused:
        parse_codes(" ".join(f"CODE{n}" for n in range(20)))
    assert refused.value.message.startswith("At most ")
