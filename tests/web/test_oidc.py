"""Sign in with an OpenID Connect provider, against a real one running on loopback
(oidc-provider-mock, built on authlib): the whole authorization-code flow over HTTP
through the shop's API app, the provider's own authorization form, token endpoint and
keys. Linking happens only on an e-mail address the provider has verified."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from core.models import AuditEvent, Customer
from core.services import oidc
from core.services.accounts import (
    InvalidCredentials,
    create_account,
    customer_for_token,
    sign_in,
)
from tests.factories import fresh, make_order, make_product

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def shop(provider_url, test_settings, monkeypatch, session) -> Iterator[TestClient]:
    from web.api.app import create_api

    monkeypatch.setattr(test_settings, "password_hashing", "fast")
    monkeypatch.setattr(test_settings, "oidc_issuer", provider_url)
    monkeypatch.setattr(test_settings, "oidc_client_id", "keyshop-test")
    monkeypatch.setattr(test_settings, "oidc_client_secret", "s3cret-of-the-client")
    oidc._discover.cache_clear()
    with TestClient(create_api(), base_url=test_settings.public_url) as client:
        yield client
    oidc._discover.cache_clear()


def person(provider_url: str, **claims: object) -> str:
    sub = f"user-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{provider_url}/users/{sub}", json=claims, timeout=10).raise_for_status()
    return sub


def sign_in_at_provider(shop: TestClient, sub: str) -> httpx.Response:
    """Start at the shop, approve as ``sub`` in the provider's form, come back."""
    start = shop.get("/api/oidc/login", follow_redirects=False)
    assert start.status_code == 303
    assert "ks_oidc" in start.headers["set-cookie"] and "HttpOnly" in start.headers["set-cookie"]
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    approved = httpx.post(authorize, data={"sub": sub}, follow_redirects=False, timeout=10)
    assert approved.status_code in (302, 303), approved.text[:300]
    back = urlsplit(approved.headers["location"])
    assert back.path == "/api/oidc/callback"
    return shop.get(f"{back.path}?{back.query}", follow_redirects=False)


def session_token(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("ks_session=") and "Max-Age=0" not in header:
            return header.split(";", 1)[0].split("=", 1)[1]
    return None


def test_a_new_customer_signs_in_and_gets_a_verified_account(shop, provider_url, session):
    email = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    product = make_product(session)
    guest = make_order(session, [(product, 1)], email=email)
    sub = person(provider_url, email=email, email_verified=True, name="Olive Id")
    back = sign_in_at_provider(shop, sub)
    assert back.status_code == 303 and back.headers["location"] == "/account"
    token = session_token(back)
    info = customer_for_token(token=token)
    assert info.email == email and info.verified and info.display_name == "Olive Id"
    customer = fresh(session).exec(select(Customer).where(Customer.email == email)).one()
    assert customer.password_hash is None
    assert fresh(session).get(type(guest), guest.id).customer_id == customer.id
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.signed_in_oidc")
    ).one()
    assert event.data["issuer"] == provider_url and event.data["subject"] == sub


def test_an_unverified_address_is_never_linked(shop, provider_url, session):
    email = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    owner = create_account(email=email, password=PASSWORD)
    sub = person(provider_url, email=email, email_verified=False)
    back = sign_in_at_provider(shop, sub)
    assert back.headers["location"].startswith("/signin") and session_token(back) is None
    assert customer_for_token(token=owner.token) is not None  # untouched


def test_a_verified_address_takes_over_an_unverified_sign_up(shop, provider_url, session):
    """Someone signed up with the address and never proved it: the provider's proof wins,
    and the squatter's password and sessions end."""
    email = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    squatter = create_account(email=email, password=PASSWORD)
    sub = person(provider_url, email=email, email_verified=True)
    token = session_token(sign_in_at_provider(shop, sub))
    assert customer_for_token(token=token).id == squatter.customer_id
    assert customer_for_token(token=squatter.token) is None
    with pytest.raises(InvalidCredentials):
        sign_in(email=email, password=PASSWORD)


def test_a_forged_state_or_a_replayed_code_signs_nobody_in(shop, provider_url, session):
    sub = person(
        provider_url, email=f"oidc-{uuid.uuid4().hex[:8]}@example.com", email_verified=True
    )
    start = shop.get("/api/oidc/login", follow_redirects=False)
    approved = httpx.post(start.headers["location"], data={"sub": sub}, follow_redirects=False)
    back = urlsplit(approved.headers["location"])
    params = parse_qs(back.query)
    forged = shop.get(
        f"{back.path}?code={params['code'][0]}&state=not-the-state", follow_redirects=False
    )
    assert forged.headers["location"].startswith("/signin") and session_token(forged) is None
    # the callback from another browser (no ticket cookie) is refused too
    stranger = TestClient(shop.app, base_url=str(shop.base_url))
    foreign = stranger.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert foreign.headers["location"].startswith("/signin") and session_token(foreign) is None


def test_without_configuration_there_is_no_provider_sign_in(test_settings, monkeypatch, session):
    from web.api.app import create_api

    monkeypatch.setattr(test_settings, "oidc_issuer", None)
    client = TestClient(create_api())
    response = client.get("/api/oidc/login", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/signin")
