"""The storefront in German (issue #15, two languages), against the running shop.

A German browser's first visit lands on the German pages (``/de/...``); it finds, buys,
pays and reveals a key with every step in German, money and dates as Germans write them,
and the order's e-mails in German. The switcher opens the same page in English and the
choice is remembered. axe-core checks the German pages. Over plain HTTP, the crawler's
view: ``<html lang>``, hreflang alternates, both languages in the sitemap, and the
redirects that choose a language.
"""

from __future__ import annotations

import json
import re
import secrets
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from core.models import Order
from tests.factories import fresh, make_keys, make_product
from tests.support.browser import Steps, accessibility_problems, new_page, wait_loaded
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(900)


def _check(page, name: str, problems: dict[str, list]) -> None:
    """axe and the structural checks on the page as a customer reads it: the pointer
    off the links it last pressed, the "added to cart" notice gone."""
    from playwright.sync_api import expect

    page.mouse.move(0, 0)
    expect(page.locator("[data-sonner-toast]")).to_have_count(0)
    found = accessibility_problems(page)
    if found:
        problems[name] = found


def _mails(shop, number: str) -> list:
    outbox = Path(shop.env["KEYSHOP_VAR_DIR"]) / "outbox"
    found = []
    for path in sorted(outbox.glob("*.eml")):
        raw = path.read_bytes()
        if number.encode() in raw:
            found.append(message_from_bytes(raw, policy=policy.default))
    return found


def test_a_german_customer_buys_in_german_and_gets_german_mail(shop, browser, session):
    from playwright.sync_api import expect

    title = f"Sternenfall {secrets.token_hex(2).upper()}"
    product = make_product(
        session,
        title=title,
        slug=f"sternenfall-{secrets.token_hex(3)}",
        price_minor=2499,
        region="EU",
        featured=True,
    )
    make_keys(session, product, 2)
    shop.stop_workers()  # no consumer until the order page is open
    context, page = new_page(browser, locale="de-DE")
    problems: dict[str, list] = {}
    with Steps(page, "german-journey") as steps:
        # first visit: Accept-Language de → the German home page
        page.goto(shop.url + "/")
        page.wait_for_url(shop.url + "/de")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.locator("#featured .product-card", has_text=title)).to_be_visible()
        expect(page.locator("#nav-games")).to_have_text("Spiele")
        expect(
            page.get_by_role("heading", name="Spiele-Keys, in Sekunden geliefert")
        ).to_be_visible()
        steps.shot("home")

        page.fill("#header-search", title)
        page.press("#header-search", "Enter")
        page.wait_for_url("**/de/games?q=*")
        card = page.locator(".product-card", has_text=title)
        expect(card).to_contain_text("24,99\xa0€")
        expect(card).to_contain_text("Auf Lager")
        card.click()
        page.wait_for_url(f"**/de/games/{product.slug}")
        expect(page.locator("#product-title")).to_have_text(title)
        expect(page.locator("#availability")).to_have_text("Auf Lager")
        expect(page.locator("#product-price")).to_have_text("24,99\xa0€")
        expect(page.locator("#region-warning")).to_contain_text("in der EU")
        _check(page, "product", problems)
        steps.shot("product")

        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#nav-cart")
        page.wait_for_url(shop.url + "/de/cart")
        wait_loaded(page, "/de/cart")  # on_load quoted the cart: the form stays filled
        expect(page.locator(".cart-line", has_text=title)).to_be_visible()
        expect(page.locator("#cart-total")).to_have_text("24,99\xa0€")
        expect(page.locator("#cart-vat")).to_have_text(
            "Enthält 19\xa0% MwSt. (Deutschland): 3,99\xa0€"
        )
        expect(page.locator("#checkout")).to_have_text("Zur Kasse und bezahlen")
        page.fill("#checkout-email", f"kunde-{secrets.token_hex(3)}@example.com")
        _check(page, "cart", problems)
        steps.shot("cart")

        page.click("#checkout")
        page.wait_for_url("**/de/pay/**")
        expect(page.locator("#test-mode-banner")).to_contain_text("Testmodus")
        expect(page.locator("#pay-button")).to_have_text("24,99\xa0€ bezahlen (Testzahlung)")
        steps.shot("test-payment")

        page.click("#pay-button")
        page.wait_for_url("**/de/orders/**")
        number = page.url.split("/orders/")[1].split("?")[0]
        status = page.locator("#order-status")
        expect(status).to_have_text("Wartet auf Zahlung")
        shop.start_worker()
        expect(status).to_have_attribute("data-status", "fulfilled", timeout=60_000)
        expect(status).to_have_text("Geliefert")
        expect(page.locator("#order-vat")).to_contain_text("19\xa0% MwSt.")
        consent = page.get_by_role("checkbox", name=re.compile("Ich möchte meine Keys jetzt"))
        expect(consent).to_have_id("consent")
        _check(page, "order", problems)
        page.click("#consent")
        page.locator(".reveal-key").first.click()
        expect(page.locator(".key-code[data-revealed='1']")).to_have_count(1)
        steps.shot("order-delivered")

        # the order speaks German: stored, and in its e-mails
        fresh(session)
        order = session.exec(select(Order).where(Order.number == number)).one()
        assert order.language == "de"
        placed = wait_for(
            lambda: [m for m in _mails(shop, number) if "eingegangen" in m["Subject"]],
            what="the German order confirmation",
        )
        text = placed[0].get_body(preferencelist=("plain",)).get_content()
        assert placed[0]["Subject"] == f"Bestellung {number} eingegangen"
        assert "Gesamt: 24,99\xa0€" in text and f"/de/orders/{number}?token=" in text

        # the switcher: the same page in English, and the choice is remembered
        page.click("#language-en")
        page.wait_for_url(f"{shop.url}/orders/{number}")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(status).to_have_text("Delivered")
        # (the catalogue, not the home page: each worker keeps the home page 15 s, and
        # another test's new featured game must not wait for that)
        page.goto(shop.url + "/games")
        expect(page.locator("#nav-games")).to_have_text("Games")
        assert page.url == shop.url + "/games"  # not sent to /de again
        page.click("#language-de")
        page.wait_for_url(shop.url + "/de/games")
        expect(page.locator("#nav-games")).to_have_text("Spiele")

        # the one 404 page of the app speaks the language of the address
        page.goto(shop.url + "/de/keine-solche-seite")
        expect(page.get_by_role("heading", name="Seite nicht gefunden")).to_be_visible()
        expect(page.locator("#not-found-games")).to_have_text("Alle Spiele ansehen")
    context.close()
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


# -- what a crawler reads (no JavaScript) ----------------------------------------------------


@pytest.fixture
def crawler(shop):
    with httpx.Client(
        base_url=shop.url, timeout=30, headers={"user-agent": "keyshop-test-crawler"}
    ) as client:
        yield client


def test_german_pages_for_crawlers_with_hreflang_and_sitemap(crawler, shop, session):
    product = make_product(
        session,
        slug=f"krawler-{secrets.token_hex(3)}",
        title="Krawler Quest",
        price_minor=1499,
    )
    make_keys(session, product, 1)
    base = shop.url
    german = crawler.get(f"/de/games/{product.slug}")
    assert german.status_code == 200
    text = german.text
    assert re.search(r'<html[^>]* lang="de"', text)
    assert f'<link rel="canonical" href="{base}/de/games/{product.slug}"/>' in text
    for code, url in (
        ("en", f"{base}/games/{product.slug}"),
        ("de", f"{base}/de/games/{product.slug}"),
        ("x-default", f"{base}/games/{product.slug}"),
    ):
        assert f'<link rel="alternate" hreflang="{code}" href="{url}"/>' in text
    body = text.split("<body", 1)[1]
    assert "<strong>14,99\xa0€</strong> · Auf Lager" in body
    assert '<a href="/de/games">Spiele</a>' in body
    english = crawler.get(f"/games/{product.slug}")
    assert re.search(r'<html[^>]* lang="en"', english.text)
    assert '<link rel="alternate" hreflang="de"' in english.text

    missing = crawler.get("/de/games/no-such-game-anywhere")
    assert missing.status_code == 404
    assert "Seite nicht gefunden" in missing.text and 'href="/de/games"' in missing.text

    sitemap = crawler.get("/sitemap.xml").text
    assert 'xmlns:xhtml="http://www.w3.org/1999/xhtml"' in sitemap
    assert f"<loc>{base}/de/games/{product.slug}</loc>" in sitemap
    assert f"<loc>{base}/games/{product.slug}</loc>" in sitemap
    assert (
        f'<xhtml:link rel="alternate" hreflang="de" href="{base}/de/games/{product.slug}"/>'
        in sitemap
    )
    assert "Disallow: /de/cart" in crawler.get("/robots.txt").text


def test_the_language_is_chosen_once_and_remembered(crawler):
    def get(path: str, **kwargs):
        crawler.cookies.clear()  # each request says for itself what it remembers
        return crawler.get(path, **kwargs)

    # a crawler (no Accept-Language, no cookie) reads each language at its own address
    assert get("/games").status_code == 200
    assert get("/de/games").status_code == 200

    first = get("/games?q=x", headers={"accept-language": "de-AT,de;q=0.9,en;q=0.5"})
    assert first.status_code == 307 and first.headers["location"] == "/de/games?q=x"
    assert "ks_lang=de" in first.headers["set-cookie"]
    assert "Accept-Language" in first.headers["vary"]
    english = get("/games", headers={"accept-language": "en-GB,en;q=0.9,de;q=0.8"})
    assert english.status_code == 200

    # the remembered choice wins over the browser's languages; German pages never move
    remembered = {"cookie": "ks_lang=en", "accept-language": "de"}
    assert get("/games", headers=remembered).status_code == 200
    assert get("/de/games", headers=remembered).status_code == 200
    sent = get("/games", headers={"cookie": "ks_lang=de"})
    assert sent.status_code == 307 and sent.headers["location"] == "/de/games"

    switch = get("/lang/de", params={"next": "/games/x?page=2"})
    assert switch.status_code == 303 and switch.headers["location"] == "/de/games/x?page=2"
    assert "ks_lang=de" in switch.headers["set-cookie"]
    back = get("/lang/en", params={"next": "/de/games"})
    assert back.headers["location"] == "/games" and "ks_lang=en" in back.headers["set-cookie"]
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = get("/lang/de", params={"next": hostile})
        assert answer.status_code == 303 and answer.headers["location"] == "/de", hostile
    unknown = get("/lang/fr", params={"next": "/games"})
    assert unknown.headers["location"] == "/games" and "ks_lang=en" in unknown.headers["set-cookie"]


def test_every_page_answers_200_in_both_languages(crawler):
    """Footer links (legal pages, "find my order") and the customer's own pages are pages
    in both languages: 200, private ones kept out of the index; only unknown paths 404."""
    for path in ("/legal/terms", "/legal/privacy", "/find-order", "/gift-card", "/keys", "/signin"):
        for prefix in ("", "/de"):
            response = crawler.get(prefix + path)
            assert response.status_code == 200, prefix + path
            lang = "de" if prefix else "en"
            assert re.search(rf'<html[^>]* lang="{lang}"', response.text), prefix + path
    assert "noindex" in crawler.get("/de/keys").text
    assert "noindex" not in crawler.get("/de/legal/terms").text
    assert crawler.get("/de/no-such-page").status_code == 404
    assert crawler.get("/de/legal/no-such-page").status_code == 404
    assert crawler.get("/legal/no-such-page").status_code == 404
