"""The running shop (``keyshop run``: Reflex in prod mode) read the way a search engine's
crawler reads it: plain HTTP, no JavaScript. Every page the crawler may index carries its
title, description, canonical address and content in the raw HTML; unknown addresses
answer 404 with a way back; sitemap, robots.txt and favicon are there."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import make_keys, make_product

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def shop(shop) -> str:
    """The pass's one shop (tests/web/conftest.py), by its URL."""
    return shop.url


@pytest.fixture
def crawler(shop) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=shop, timeout=30, headers={"user-agent": "keyshop-test-crawler"}
    ) as client:
        yield client


def meta(text: str, attribute: str, name: str) -> str:
    match = re.search(rf'<meta {attribute}="{re.escape(name)}" content="([^"]*)"', text)
    assert match, f"no {name}"
    return match.group(1)


def test_product_page_without_javascript(crawler, shop, session):
    product = make_product(
        session,
        slug="crawler-emberwake",
        title="Crawler Emberwake",
        description="Cross a drowned city by lantern light.",
        price_minor=1499,
    )
    make_keys(session, product, 1)
    response = crawler.get("/games/crawler-emberwake")
    assert response.status_code == 200
    text = response.text
    assert re.search(r"<title>Crawler Emberwake \(Steam\) · keyshop</title>", text)
    assert meta(text, "name", "description") == "Cross a drowned city by lantern light."
    assert f'<link rel="canonical" href="{shop}/games/crawler-emberwake"/>' in text
    assert meta(text, "property", "og:title").startswith("Crawler Emberwake")
    assert meta(text, "property", "og:url") == f"{shop}/games/crawler-emberwake"
    ld = json.loads(re.findall(r'<script type="application/ld\+json">(.*?)</script>', text)[0])
    assert ld["@type"] == "Product" and ld["name"] == "Crawler Emberwake"
    assert ld["offers"]["price"] == "14.99" and ld["offers"]["priceCurrency"] == "EUR"
    assert ld["offers"]["availability"] == "https://schema.org/InStock"
    body = text.split("<body", 1)[1]
    assert "<h1>Crawler Emberwake</h1>" in body
    assert "Cross a drowned city by lantern light." in body
    assert "/assets/" in text  # still the app: its scripts load as before


def test_catalogue_and_home_link_to_products(crawler, session):
    make_product(session, slug="crawler-listed", title="Crawler Listed", featured=True)
    for path in ("/games", "/"):
        response = crawler.get(path)
        assert response.status_code == 200, path
        assert '<a href="/games/crawler-listed">Crawler Listed</a>' in response.text, path
        assert '<link rel="canonical"' in response.text
    assert "<title>Games · keyshop</title>" in crawler.get("/games").text


def test_unknown_addresses_are_404_with_navigation(crawler):
    for path in ("/games/no-such-game-anywhere", "/no-such-page"):
        response = crawler.get(path)
        assert response.status_code == 404, path
        assert '<a href="/games">Browse all games</a>' in response.text
        assert "noindex" in response.text


def test_sitemap_robots_and_favicon(crawler, shop, session):
    make_product(session, slug="crawler-mapped")
    sitemap = crawler.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert f"<loc>{shop}/games/crawler-mapped</loc>" in sitemap.text
    robots = crawler.get("/robots.txt")
    assert robots.status_code == 200 and f"Sitemap: {shop}/sitemap.xml" in robots.text
    icon = crawler.get("/favicon.ico")
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"
    assert crawler.get("/favicon.svg").status_code == 200


def test_api_and_assets_are_untouched(crawler):
    health = crawler.get("/api/health")
    assert health.headers["content-type"].startswith("application/json")
    assert crawler.get("/ping").status_code == 200


def test_the_running_shop_sees_catalogue_changes_made_by_another_process(crawler, session):
    """The shop caches what a search found (issue #20); a change committed by another
    process (here the tests', as by a worker or the console) is seen on the next search."""
    from core.models import Product

    title = f"Cache Comet {secrets.token_hex(3)}"
    product = make_product(session, title=title, slug=f"cache-comet-{secrets.token_hex(3)}")
    make_keys(session, product, 1)

    def found() -> list[str]:
        reply = crawler.get("/api/store/products", params={"q": title})
        assert reply.status_code == 200, reply.text
        return [item["title"] for item in reply.json()["items"]]

    assert found() == [title]
    assert found() == [title]  # the second search may come from the cache
    row = session.get(Product, product.id)
    row.active = False
    session.add(row)
    session.commit()
    assert found() == []
