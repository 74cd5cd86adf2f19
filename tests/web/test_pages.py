"""Server-filled pages (web/api/pages.py) around a stand-in for Reflex's static frontend:
what the filler puts into the shell, which status it answers, what it leaves alone."""

from __future__ import annotations

import json
import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.factories import make_keys, make_product
from web.api.pages import fill_pages

SHELL = (
    '<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/>'
    '<meta content="keyshop: game keys delivered in seconds" name="description"/>'
    '<title>keyshop</title></head><body><div id="root"></div></body></html>'
)


async def frontend(request: Request) -> Response:
    """Reflex's static frontend as far as the filler sees it: a shell for the routes it
    knows (the SPA fallback for dynamic ones), its 404 page for the rest, files as files."""
    path = request.url.path
    if path.startswith("/assets/"):
        return PlainTextResponse("console.log(1)", media_type="text/javascript")
    if path.startswith("/api/"):
        return PlainTextResponse("api", status_code=200)
    known = re.match(r"^/(|games|games/[^/]+|cart|signin|orders/[^/]+)/?$", path)
    return HTMLResponse(SHELL, status_code=200 if known else 404, headers={"etag": '"x"'})


@pytest.fixture
def client(engine):
    app = Starlette(routes=[Route("/{path:path}", frontend)])
    with TestClient(fill_pages(app)) as c:
        yield c


def json_ld(text: str) -> dict:
    match = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
    assert match, "no JSON-LD"
    return json.loads(match.group(1))


def test_product_page_has_its_metadata_and_content(client, session, test_settings):
    product = make_product(
        session,
        slug="emberwake-steam",
        title="Emberwake <Deluxe>",
        description="A lantern-lit roguelike across a sunken city. " * 8,
        publisher="Cinder Forge",
        price_minor=2499,
        currency="EUR",
    )
    make_keys(session, product, 2)
    response = client.get("/games/emberwake-steam")
    assert response.status_code == 200
    text = response.text
    assert "<title>Emberwake &lt;Deluxe&gt; (Steam) · keyshop</title>" in text
    assert text.count("<title>") == 1
    assert "keyshop: game keys delivered in seconds" not in text  # the shell's own
    base = test_settings.public_url.rstrip("/")
    assert f'<link rel="canonical" href="{base}/games/emberwake-steam"/>' in text
    assert '<meta property="og:type" content="product"/>' in text
    description = re.search(r'<meta name="description" content="([^"]*)"/>', text)
    assert description and description.group(1).startswith("A lantern-lit roguelike")
    assert len(description.group(1)) <= 160
    ld = json_ld(text)
    assert ld["@type"] == "Product" and ld["name"] == "Emberwake <Deluxe>"
    assert ld["brand"]["name"] == "Cinder Forge"
    assert ld["offers"] == {
        "@type": "Offer",
        "url": f"{base}/games/emberwake-steam",
        "price": "24.99",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/InStock",
        "itemCondition": "https://schema.org/NewCondition",
    }
    body = text.split("<body>", 1)[1]
    assert "<h1>Emberwake &lt;Deluxe&gt;</h1>" in body and "€24.99" in body
    assert "sunken city" in body
    assert '<div id="root">' in body  # the app's own markup is still there
    assert response.headers["cache-control"] == "no-cache" and "etag" not in response.headers


def test_script_in_a_title_cannot_close_the_json_ld(client, session):
    make_product(session, slug="evil-title", title="</script><script>alert(1)</script>")
    text = client.get("/games/evil-title").text
    assert "</script><script>alert(1)" not in text
    assert json_ld(text)["name"] == "</script><script>alert(1)</script>"


def test_out_of_stock_and_preorder_offers(client, session):
    make_product(session, slug="no-stock")
    assert json_ld(client.get("/games/no-stock").text)["offers"]["availability"] == (
        "https://schema.org/OutOfStock"
    )


def test_unknown_product_and_unknown_path_are_404_with_navigation(client, session):
    for path in ("/games/no-such-game", "/no/such/page", "/games/a/b"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert '<meta name="robots" content="noindex, follow"/>' in response.text
        assert '<a href="/games">Browse all games</a>' in response.text
    inactive = make_product(session, slug="retired", active=False)
    assert inactive.id is not None
    assert client.get("/games/retired").status_code == 404


def test_catalogue_and_home_list_products(client, session):
    make_product(session, slug="listed-one", title="Listed One", featured=True)
    catalogue = client.get("/games")
    assert catalogue.status_code == 200
    assert '<a href="/games/listed-one">Listed One</a>' in catalogue.text
    assert "<title>Games · keyshop</title>" in catalogue.text
    search = client.get("/games?q=Listed")
    assert '<meta name="robots" content="noindex, follow"/>' in search.text
    home = client.get("/")
    assert '<a href="/games/listed-one">Listed One</a>' in home.text


def test_private_pages_are_not_indexed(client):
    cart = client.get("/cart")
    assert cart.status_code == 200
    assert '<meta name="robots" content="noindex, follow"/>' in cart.text
    assert "<title>keyshop</title>" in cart.text  # the page's own prerendered title stays
    signin = client.get("/signin")
    assert "noindex" not in signin.text


def test_head_and_gzip(client, session):
    make_product(session, slug="headed")
    head = client.head("/games/headed")
    assert head.status_code == 200 and head.content == b""
    zipped = client.get("/games/headed", headers={"accept-encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "application/ld+json" in zipped.text  # httpx decompresses


def test_files_and_api_pass_through(client):
    asset = client.get("/assets/app.js")
    assert asset.text == "console.log(1)"
    assert client.get("/api/anything").text == "api"


def test_sitemap_and_robots(client, session, test_settings):
    make_product(session, slug="in-sitemap")
    make_product(session, slug="not-in-sitemap", active=False)
    sitemap = client.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert sitemap.headers["content-type"].startswith("application/xml")
    base = test_settings.public_url.rstrip("/")
    assert f"<loc>{base}/games/in-sitemap</loc>" in sitemap.text
    assert "not-in-sitemap" not in sitemap.text
    robots = client.get("/robots.txt")
    assert f"Sitemap: {base}/sitemap.xml" in robots.text
    assert "Disallow: /orders/" in robots.text


def test_the_bench_baseline_header_gets_the_bare_shell(client, session):
    make_product(session, slug="bare")
    bare = client.get("/games/bare", headers={"x-keyshop-shell": "1"})
    assert bare.text == SHELL
