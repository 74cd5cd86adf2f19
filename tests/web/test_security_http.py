"""Web security on the running shop (``keyshop run``), over HTTP: headers, cookies set by
the server, CORS, the websocket's Origin check, and the limits behind a trusted proxy.

The shop runs with ``KEYSHOP_TRUSTED_PROXIES=127.0.0.1`` (the test plays the proxy and
its clients) and ``KEYSHOP_SESSION_DAYS=7`` (the cookie must follow the setting).
"""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from core.services import accounts, ratelimit
from tests.factories import make_keys, make_product
from tests.support.shop import SHARED_SHOP_ENV

pytestmark = pytest.mark.timeout(900)

EVIL = "https://evil.example"
PASSWORD = "correct horse battery"
SESSION_DAYS = int(SHARED_SHOP_ENV["KEYSHOP_SESSION_DAYS"])


@pytest.fixture
def shop(shop) -> str:
    """The pass's one shop (tests/web/conftest.py), by its URL."""
    return shop.url


@pytest.fixture
def fast(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")


def cookie_attributes(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    attrs = {"": parts[0]}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        attrs[name.lower()] = value
    return attrs


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    out = {}
    for header in response.headers.get_list("set-cookie"):
        attrs = cookie_attributes(header)
        out[attrs[""].split("=", 1)[0]] = attrs
    return out


# -- headers ----------------------------------------------------------------------------------


def test_pages_and_api_send_the_security_headers(shop):
    home = httpx.get(shop + "/", timeout=10)
    assert home.status_code == 200
    csp = home.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "object-src 'none'" in csp
    assert home.headers["x-frame-options"] == "DENY"
    assert home.headers["x-content-type-options"] == "nosniff"
    assert home.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in home.headers  # plain HTTP, embedded mode
    portal = httpx.get(shop + "/orders/KS-TEST-0000", timeout=10)
    assert portal.headers["referrer-policy"] == "no-referrer"  # its links carry tokens
    assert portal.headers["x-frame-options"] == "DENY"  # the key portal is never framed
    assert "frame-ancestors 'none'" in portal.headers["content-security-policy"]
    api = httpx.get(shop + "/api/store/products", timeout=10)
    assert api.headers["x-content-type-options"] == "nosniff"


# -- cookies ----------------------------------------------------------------------------------


def test_an_order_link_becomes_an_http_only_cookie(shop):
    response = httpx.get(shop + "/orders/KS-ABCD-EFGH?token=abc.123.def&x=1", timeout=10)
    assert response.status_code == 303
    assert response.headers["location"] == "/orders/KS-ABCD-EFGH?x=1"  # the token is gone
    cookie = set_cookies(response)["ks_order_KS-ABCD-EFGH"]
    assert cookie[""] == "ks_order_KS-ABCD-EFGH=abc.123.def"
    assert "httponly" in cookie and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert "secure" not in cookie  # plain HTTP in embedded mode; production adds it
    assert response.headers["referrer-policy"] == "no-referrer"


def test_a_reset_link_becomes_a_short_lived_http_only_cookie(shop, test_settings):
    response = httpx.get(shop + "/reset-password?token=abc.123.def", timeout=10)
    assert response.status_code == 303 and response.headers["location"] == "/reset-password"
    cookie = set_cookies(response)["ks_reset"]
    assert "httponly" in cookie and cookie["samesite"] == "Lax"
    assert cookie["max-age"] == str(test_settings.password_reset_minutes * 60)


def test_the_session_cookie_is_set_by_the_server_with_the_configured_lifetime(shop, fast):
    signed = accounts.create_account(
        email=f"sec-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD
    )
    response = httpx.post(
        shop + "/api/session", json={"token": signed.token}, headers={"Origin": shop}, timeout=10
    )
    assert response.status_code == 204
    cookie = set_cookies(response)["ks_session"]
    assert cookie[""] == f"ks_session={signed.token}"
    assert "httponly" in cookie and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["max-age"] == str(SESSION_DAYS * 86_400)  # KEYSHOP_SESSION_DAYS, not 30

    # a page load renews it, as the session slides with use
    page = httpx.get(shop + "/", cookies={"ks_session": signed.token}, timeout=10)
    assert set_cookies(page)["ks_session"]["max-age"] == str(SESSION_DAYS * 86_400)

    # sign-out through the cookie ends the session and clears the cookie
    out = httpx.post(
        shop + "/api/session/sign-out",
        headers={"Origin": shop},
        cookies={"ks_session": signed.token},
        timeout=10,
    )
    assert out.status_code == 204
    assert set_cookies(out)["ks_session"]["max-age"] == "0"
    assert accounts.customer_for_token(token=signed.token) is None


@pytest.mark.parametrize("origin", [EVIL, None, "null"])
def test_the_session_routes_refuse_other_origins(shop, fast, origin):
    signed = accounts.create_account(
        email=f"sec-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD
    )
    headers = {"Origin": origin} if origin else {}
    response = httpx.post(shop + "/api/session", json={"token": signed.token}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers
    out = httpx.post(
        shop + "/api/session/sign-out", headers=headers, cookies={"ks_session": signed.token}
    )
    assert out.status_code == 403
    assert accounts.customer_for_token(token=signed.token) is not None  # not signed out


def test_a_forged_session_token_sets_no_cookie(shop):
    response = httpx.post(
        shop + "/api/session", json={"token": "A" * 43}, headers={"Origin": shop}, timeout=10
    )
    assert response.status_code == 401 and "set-cookie" not in response.headers


# -- CORS and the websocket ---------------------------------------------------------------------


def test_cors_never_reflects_a_foreign_origin(shop):
    preflight = httpx.options(
        shop + "/api/store/checkout",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.headers.get("access-control-allow-origin") not in (EVIL, "*")
    simple = httpx.get(
        shop + "/api/store/products",
        headers={"Origin": EVIL},
        cookies={"ks_session": "x" * 43},
        timeout=10,
    )
    assert simple.headers.get("access-control-allow-origin") not in (EVIL, "*")
    own = httpx.get(shop + "/api/store/products", headers={"Origin": shop}, timeout=10)
    assert own.headers.get("access-control-allow-origin") == shop


def websocket_handshake(shop: str, origin: str) -> str:
    """The status line the shop answers a websocket upgrade of ``/_event`` with."""
    parts = urlsplit(shop)
    request = (
        "GET /_event/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(request.encode())
        return conn.recv(4096).split(b"\r\n", 1)[0].decode()


def test_the_websocket_refuses_a_foreign_origin(shop):
    assert " 101 " in websocket_handshake(shop, shop) + " "
    refused = websocket_handshake(shop, EVIL)
    assert refused.startswith("HTTP/1.1 403")


# -- limits behind the proxy ---------------------------------------------------------------------


def checkout(shop: str, slug: str, forwarded_for: str) -> int:
    return httpx.post(
        shop + "/api/store/checkout",
        json={"email": "buyer@example.com", "lines": [{"slug": slug, "quantity": 1}]},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    ).status_code


def test_checkouts_are_counted_per_client_behind_the_trusted_proxy(shop, session):
    product = make_product(session, title="Proxy Limits", price_minor=500)
    make_keys(session, product, 30)
    _scope, limit, window = ratelimit.CHECKOUT_LIMIT
    # Windows are fixed: a run that straddles two of them resets the count half-way. Such
    # a run is seen (the window changed) and done again from fresh addresses, never slept
    # away; two straddles in a row cannot happen with a window longer than the run.
    for attempt in range(2):
        began = ratelimit.window_start_for(time.time(), window)
        alice, bob = f"203.0.113.{21 + 2 * attempt}", f"203.0.113.{22 + 2 * attempt}"
        codes = [checkout(shop, product.slug, alice) for _ in range(limit + 1)]
        if ratelimit.window_start_for(time.time(), window) == began:
            break
    assert codes == [201] * limit + [429]
    assert checkout(shop, product.slug, bob) == 201  # another customer behind the proxy
    assert checkout(shop, product.slug, f"198.51.100.1, {alice}") == 429  # forged left entry


# -- sign-up's verification link -----------------------------------------------------------------


def test_the_verification_link_signs_in_once(shop, fast, var_dir, queued_jobs):
    from core.mail import list_outbox, read_outbox_message
    from core.services.signup import send_account_email, sign_up

    email = f"verify-{uuid.uuid4().hex[:8]}@example.com"
    sign_up(email=email, password=PASSWORD)
    [(_name, args, kwargs)] = queued_jobs
    send_account_email(*args, **kwargs)  # what the worker does
    [info] = [i for i in list_outbox(var_dir / "outbox") if i.to == email]
    text = read_outbox_message(info.path).get_body(preferencelist=("plain",)).get_content()
    link = next(w for w in text.split() if "/api/account/verify?token=" in w)
    path = link.split("://", 1)[1].split("/", 1)[1]
    first = httpx.get(f"{shop}/{path}", timeout=10)
    assert first.status_code == 303 and first.headers["location"] == "/account"
    cookie = set_cookies(first)["ks_session"]
    assert "httponly" in cookie and cookie["max-age"] == str(SESSION_DAYS * 86_400)
    token = cookie[""].split("=", 1)[1]
    assert accounts.customer_for_token(token=token).verified
    again = httpx.get(f"{shop}/{path}", timeout=10)
    assert again.status_code == 303 and again.headers["location"] == "/signin"
    assert "set-cookie" not in again.headers
