"""Web security in process: the client address behind proxies and the limits counted on
it (JSON store API through Starlette's TestClient, storefront states directly).

The same guarantees on the running shop (``keyshop run``) are in
``tests/web/test_security_http.py``.
"""

from __future__ import annotations

import secrets
import time
import types
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.services import ratelimit
from tests.factories import make_keys, make_product
from web.api.security import SecurityMiddleware


@pytest.fixture(autouse=True)
def one_window(monkeypatch):
    """A rate-limit clock that stays in one window for the whole test."""
    frozen = time.time()
    monkeypatch.setattr(
        ratelimit, "time", types.SimpleNamespace(time=lambda: frozen, monotonic=time.monotonic)
    )


@pytest.fixture(scope="module")
def app():
    from web.api.app import create_api

    return create_api()


def client_from(app, peer: str) -> TestClient:
    return TestClient(app, client=(peer, 40000))


def random_ip() -> str:
    return f"198.51.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


@pytest.fixture
def product(session):
    product = make_product(session, title="Proxy Test Game", price_minor=1500)
    make_keys(session, product, 10)
    return product


def checkout(client: TestClient, product, **headers: str) -> int:
    response = client.post(
        "/api/store/checkout",
        json={"email": "buyer@example.com", "lines": [{"slug": product.slug, "quantity": 1}]},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    return response.status_code


# -- the client address -------------------------------------------------------------------


def scope_through(monkeypatch, test_settings, trusted: str, peer: str, **headers: str) -> dict:
    monkeypatch.setattr(test_settings, "trusted_proxies", trusted)
    seen: dict[str, Any] = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    scope = {
        "type": "websocket",
        "path": "/_event/",
        "client": (peer, 5000),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    import asyncio

    async def nothing():
        return {"type": "websocket.disconnect"}

    async def ignore(message):
        pass

    asyncio.run(SecurityMiddleware(inner)(scope, nothing, ignore))
    return seen


def test_the_websocket_sees_the_client_behind_a_trusted_proxy(monkeypatch, test_settings):
    seen = scope_through(
        monkeypatch, test_settings, "1", "10.0.0.5", x_forwarded_for="6.6.6.6, 203.0.113.9"
    )
    assert seen["client"][0] == "203.0.113.9"  # what Reflex's router.session.client_ip reads


def test_the_websocket_ignores_forwarding_headers_without_a_proxy(monkeypatch, test_settings):
    seen = scope_through(
        monkeypatch, test_settings, "", "198.51.100.3", x_forwarded_for="203.0.113.9"
    )
    assert seen["client"][0] == "198.51.100.3"


def test_the_websocket_ignores_an_untrusted_peers_headers(monkeypatch, test_settings):
    seen = scope_through(
        monkeypatch, test_settings, "10.0.0.0/8", "198.51.100.3", x_forwarded_for="203.0.113.9"
    )
    assert seen["client"][0] == "198.51.100.3"


# -- limits on the JSON store API ---------------------------------------------------------


def test_checkouts_are_limited_per_address_without_a_proxy(
    app, product, queued_jobs, monkeypatch, test_settings
):
    monkeypatch.setattr(test_settings, "trusted_proxies", "")
    monkeypatch.setattr(ratelimit, "CHECKOUT_LIMIT", ("checkout:ip", 2, 600))
    attacker, other = client_from(app, random_ip()), client_from(app, random_ip())
    # forged forwarding headers change nothing: the peer is counted
    assert [checkout(attacker, product, x_forwarded_for=random_ip()) for _ in range(3)] == [
        201,
        201,
        429,
    ]
    assert checkout(other, product) == 201


def test_checkouts_are_limited_per_client_behind_a_proxy(
    app, product, queued_jobs, monkeypatch, test_settings
):
    monkeypatch.setattr(test_settings, "trusted_proxies", "1")
    monkeypatch.setattr(ratelimit, "CHECKOUT_LIMIT", ("checkout:ip", 2, 600))
    proxy = client_from(app, "10.0.0.1")
    alice, bob = random_ip(), random_ip()
    assert [checkout(proxy, product, x_forwarded_for=alice) for _ in range(3)] == [201, 201, 429]
    # every customer behind the proxy has their own count
    assert checkout(proxy, product, x_forwarded_for=bob) == 201
    # a forged entry to the left of the proxy's own one changes nothing
    assert checkout(proxy, product, x_forwarded_for=f"{random_ip()}, {alice}") == 429


def test_store_api_requests_are_limited_per_address(app, session, monkeypatch, test_settings):
    monkeypatch.setattr(test_settings, "trusted_proxies", "")
    monkeypatch.setattr(ratelimit, "STORE_API_LIMIT", ("store-api:ip", 3, 60))
    api = client_from(app, random_ip())
    codes = [api.get("/api/store/products").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = api.get("/api/store/products")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client_from(app, random_ip()).get("/api/store/products").status_code == 200


# -- production: HSTS and Secure cookies ----------------------------------------------------


def test_production_adds_hsts_and_secure_cookies(app, monkeypatch, test_settings):
    monkeypatch.setattr(test_settings, "env", "production")
    client = client_from(app, random_ip())
    health = client.get("/api/store/products")
    assert health.headers["strict-transport-security"].startswith("max-age=63072000")
    link = client.get("/orders/KS-AAAA-BBBB?token=abc.1.def", follow_redirects=False)
    assert link.status_code == 303
    cookie = link.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_client_cannot_send_its_own_sealed_header(monkeypatch, test_settings):
    from web.api.security import SEALED_HEADER, BrowserSecrets, browser_secrets, seal

    forged = seal(BrowserSecrets(session="stolen-elsewhere-token-value-000"))
    seen = scope_through(
        monkeypatch, test_settings, "", "198.51.100.3", x_keyshop_sealed=forged, cookie="a=b"
    )
    headers = {k.decode(): v.decode() for k, v in seen["headers"]}
    assert headers[SEALED_HEADER] != forged  # replaced by what the cookies say: nothing
    assert browser_secrets(headers) == BrowserSecrets()
    assert headers["cookie"] == "a=b"


def test_secret_cookies_reach_the_websocket_only_sealed(monkeypatch, test_settings):
    from web.api.security import SEALED_HEADER, browser_secrets

    token = "S" * 43
    seen = scope_through(
        monkeypatch,
        test_settings,
        "",
        "198.51.100.3",
        cookie=f"theme=dark; ks_session={token}; ks_order_KS-1={token}; ks_reset={token}",
    )
    headers = {k.decode(): v.decode() for k, v in seen["headers"]}
    assert token not in repr(seen["headers"])
    assert headers["cookie"] == "theme=dark"
    found = browser_secrets(headers)
    assert (found.session, found.reset, found.order_token("KS-1")) == (token, token, token)
    assert SEALED_HEADER in headers
