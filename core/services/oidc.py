"""Sign in with an OpenID Connect provider (Google, or any issuer configured with
``KEYSHOP_OIDC_ISSUER``, ``KEYSHOP_OIDC_CLIENT_ID`` and ``KEYSHOP_OIDC_CLIENT_SECRET``).

The authorization code flow with PKCE (authlib's OAuth 2 client):

1. :func:`begin_login` makes a random ``state``, ``nonce`` and PKCE verifier, and returns
   the provider's authorization URL and a signed, ten-minute *login ticket* holding them;
   the web edge keeps the ticket in an HttpOnly cookie (web/api/oidc.py).
2. :func:`finish_login` checks that the ``state`` coming back is the ticket's, exchanges
   the code (with the verifier and the client secret) at the token endpoint, and verifies
   the ID token (joserfc): signature against the issuer's published keys, ``iss``,
   ``aud``, ``exp`` and the ticket's ``nonce``.

Accounts are linked **only on an e-mail address the provider has verified**
(``email_verified`` true); anything else is refused (:class:`OidcRefused`). Then:

- no account with that address: one is created, verified, without a password;
- a verified account: it is signed in;
- an unverified account (someone signed up with the address and never proved it): the
  provider just proved the address belongs to this person, so the account is verified,
  its password is removed and its sessions ended (whoever set that password never owned
  the address), and it is signed in. Guest orders with the address join the account.

Every sign-in leaves an audit event naming the issuer and the subject. The provider's
configuration (``/.well-known/openid-configuration``) and keys are fetched with httpx,
outside any transaction.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import update
from sqlmodel import col, select

from core.config import get_settings, reveal
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.models import Customer, CustomerSession
from core.models.base import utcnow
from core.services.accounts import (
    SIGN_IN_LIMITS,
    SignedIn,
    _attach_guest_orders,
    _check_display_name,
    _rate,
    _start_session,
)
from core.services.audit import Actor, record_audit
from core.services.customers import normalise_email
from core.signing import InvalidToken, check_token, make_token

TICKET_PURPOSE: Final = "oidc-login"
TICKET_SECONDS: Final = 600
SCOPE: Final = "openid email profile"
TIMEOUT: Final = 10.0


class OidcRefused(DomainError):
    """The provider's answer cannot sign anyone in (message says why, never a token)."""

    code = "oidc_refused"
    http_status = 400


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def redirect_uri() -> str:
    return f"{get_settings().public_url}/api/oidc/callback"


@functools.lru_cache(maxsize=4)
def _discover(issuer: str) -> Provider:
    try:
        doc = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT).json()
        provider = Provider(
            issuer=str(doc["issuer"]),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
        )
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise OidcRefused(
            f"the sign-in provider could not be reached ({type(exc).__name__})"
        ) from None
    if provider.issuer.rstrip("/") != issuer.rstrip("/"):
        raise OidcRefused("the sign-in provider names another issuer than configured")
    return provider


def provider() -> Provider:
    settings = get_settings()
    if not settings.oidc_enabled or not settings.oidc_issuer:
        raise OidcRefused("sign-in with a provider is not configured")
    return _discover(settings.oidc_issuer)


def _client() -> OAuth2Client:
    settings = get_settings()
    return OAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=reveal(settings.oidc_client_secret),
        scope=SCOPE,
        redirect_uri=redirect_uri(),
        code_challenge_method="S256",
        timeout=TIMEOUT,
    )


# -- the flow ------------------------------------------------------------------------------


def begin_login() -> tuple[str, str]:
    """(the provider's authorization URL, the login ticket to keep in a cookie)."""
    found = provider()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    with _client() as client:
        url, _ = client.create_authorization_url(
            found.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
        )
    ticket = make_token(
        TICKET_PURPOSE,
        json.dumps({"state": state, "nonce": nonce, "verifier": verifier}),
        ttl_seconds=TICKET_SECONDS,
    )
    return url, ticket


def finish_login(
    *,
    code: str,
    state: str,
    ticket: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Sign in with the provider's answer (see the module docstring). OidcRefused for a
    missing or expired ticket, a state that is not the ticket's, a refused code, an ID
    token that does not verify, or an e-mail address the provider has not verified."""
    try:
        saved = json.loads(check_token(TICKET_PURPOSE, ticket or ""))
    except (InvalidToken, ValueError):
        raise OidcRefused("this sign-in took too long or did not start here; try again") from None
    if not (isinstance(state, str) and hmac.compare_digest(state, str(saved.get("state")))):
        raise OidcRefused("this sign-in did not start here; try again")
    if not isinstance(code, str) or not code or len(code) > 2048:
        raise OidcRefused("the sign-in provider sent no code")
    if ip:
        _rate(SIGN_IN_LIMITS["ip"], ip)
    found = provider()
    try:
        with _client() as client:
            token = client.fetch_token(
                found.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=saved["verifier"],
            )
    except Exception as exc:  # noqa: BLE001 (authlib raises its OAuthError, httpx its own)
        raise OidcRefused(f"the sign-in provider refused the code ({type(exc).__name__})") from None
    claims = _verified_claims(found, str(token.get("id_token") or ""), str(saved["nonce"]))
    if claims.get("email_verified") is not True or not claims.get("email"):
        raise OidcRefused(
            "your sign-in provider has not verified your e-mail address, so it cannot be "
            "linked to an account here"
        )
    return sign_in_with_verified_email(
        email=str(claims["email"]),
        name=str(claims.get("name") or ""),
        issuer=found.issuer,
        subject=str(claims["sub"]),
        ip=ip,
        user_agent=user_agent,
    )


def _verified_claims(found: Provider, id_token: str, nonce: str) -> dict[str, Any]:
    try:
        keys = KeySet.import_key_set(httpx.get(found.jwks_uri, timeout=TIMEOUT).json())
        decoded = jwt.decode(id_token, keys)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": found.issuer},
            aud={"essential": True, "value": get_settings().oidc_client_id or ""},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, httpx.HTTPError, ValueError) as exc:
        raise OidcRefused(
            f"the sign-in provider's answer did not verify ({type(exc).__name__})"
        ) from None
    return dict(decoded.claims)


def sign_in_with_verified_email(
    *,
    email: str,
    name: str,
    issuer: str,
    subject: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Sign in (creating or linking the account) for an e-mail address an OpenID
    Connect provider has verified. Call only with a verified address."""
    address = normalise_email(email)
    try:
        display = _check_display_name(name[:120])
    except InvalidInput:
        display = ""
    now = utcnow()
    with session_scope() as session:
        customer = session.exec(select(Customer).where(Customer.email == address)).first()
        if customer is None:
            customer = Customer(email=address, password_hash=None, display_name=display)
            customer.verified_at = now
            session.add(customer)
            session.flush()
            how = "created"
        elif customer.verified_at is None:
            # whoever set this account's password never proved the address: drop it
            customer.verified_at, customer.password_hash = now, None
            session.add(customer)
            session.execute(
                update(CustomerSession)
                .where(
                    col(CustomerSession.customer_id) == customer.id,
                    col(CustomerSession.revoked_at).is_(None),
                )
                .values(revoked_at=now)
            )
            how = "linked an unverified account"
        else:
            how = "linked"
        assert customer.id is not None
        session.flush()
        attached = _attach_guest_orders(session, customer)
        token = _start_session(session, customer.id, ip, user_agent)
        record_audit(
            session=session,
            actor=Actor.customer(customer.id, ip=ip, user_agent=user_agent),
            action="customer.signed_in_oidc",
            object_type="customer",
            object_id=customer.id,
            data={
                "issuer": issuer,
                "subject": subject[:200],
                "account": how,
                "guest_orders_attached": attached,
            },
        )
        return SignedIn(customer.id, customer.email, customer.display_name, token)
