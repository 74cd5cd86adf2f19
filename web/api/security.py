"""The shop's front door: one ASGI middleware around every request the web process
answers (pages, the JSON API, webhooks and Reflex's websocket ``/_event``), and the two
HTTP routes that set and clear the session cookie.

Client address
    The request's client (``scope["client"]``) is rewritten to the address
    :func:`core.proxies.client_address` finds behind ``KEYSHOP_TRUSTED_PROXIES``, before
    anything reads it: Starlette's ``request.client`` and Reflex's
    ``router.session.client_ip`` then both name the real client, and every rate limit and
    audit event counts it.

Bearer secrets live in HttpOnly cookies, never in the Reflex state
    The session token (``ks_session``), a password-reset token (``ks_reset``) and
    order-access tokens (``ks_order_<number>``) are cookies JavaScript cannot read. Links
    that carry a token (``/orders/<n>?token=``, ``/pay/<n>?token=``,
    ``/reset-password?token=``) are answered here with the cookie and a 303 to the same
    page without the token, so no token stays in an address the Reflex state records.
    Reflex keeps the websocket's request headers in its state (in Redis with several
    workers), so on ``/_event`` this middleware takes those cookies out of the ``Cookie``
    header and passes them on *sealed* (AES-256-GCM under a key derived from
    ``KEYSHOP_SECRET_KEY``) in the ``x-keyshop-sealed`` header, which it always
    overwrites: the state holds only ciphertext that nothing accepts from outside, and
    handlers unseal the tokens in memory when they need them (:func:`browser_secrets`).
    A sign-in over the websocket hands its new token once to ``POST /api/session``
    (same origin only), which sets the cookie; ``POST /api/session/sign-out`` ends the
    session and clears it.

Cookies and headers
    Cookies: HttpOnly, SameSite=Lax, Path=/, Secure in production (or when
    ``KEYSHOP_PUBLIC_URL`` is https); the session cookie lives ``KEYSHOP_SESSION_DAYS``
    and is renewed with every page, like the session itself. Every HTTP answer gets a
    Content-Security-Policy (``frame-ancestors 'none'``), ``X-Frame-Options: DENY``,
    ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` (``same-origin``, and
    ``no-referrer`` on the key portal, payment and reset pages) and, in production,
    ``Strict-Transport-Security``.

Origins
    ``/_event`` (websocket or polling) and the session routes refuse a foreign
    ``Origin`` (403): only the shop's own (``KEYSHOP_PUBLIC_URL``, or the host the request
    was sent to). CORS (Reflex's middleware) allows only ``KEYSHOP_PUBLIC_URL``'s origin
    (``rxconfig.py``), never a reflected one.

The middleware is pure ASGI (no BaseHTTPMiddleware: it must see websockets and must not
buffer streamed answers) and is registered once, in :func:`web.api.app.create_api`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import get_settings
from core.i18n import split_path
from core.proxies import client_address

SESSION_COOKIE: Final = "ks_session"
RESET_COOKIE: Final = "ks_reset"
ORDER_COOKIE_PREFIX: Final = "ks_order_"
SEALED_HEADER: Final = "x-keyshop-sealed"
EVENT_PATH: Final = "/_event"
MAX_TOKEN: Final = 512
MAX_ORDER_COOKIES: Final = 20

_ORDER_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,24}$")
_TOKEN = re.compile(rf"^[A-Za-z0-9_.=-]{{1,{MAX_TOKEN}}}$")
_HANDOFF = re.compile(r"^/(orders|pay|receipts)/([A-Za-z0-9-]{1,24})/?$")
_NO_REFERRER = re.compile(
    r"^/(orders|pay|receipts)/|^/reset-password|^/api/account/verify|^/api/oidc/"
)
_SEAL_AAD: Final = b"keyshop browser secrets v1"


# -- sealing the browser's secrets for the Reflex state ----------------------------------


@dataclass(frozen=True)
class BrowserSecrets:
    """The bearer tokens the browser's HttpOnly cookies hold (empty when absent)."""

    session: str = field(default="", repr=False)
    reset: str = field(default="", repr=False)
    orders: Mapping[str, str] = field(default_factory=dict, repr=False)

    def order_token(self, number: str) -> str | None:
        return self.orders.get(number) or None


def _seal_key() -> bytes:
    from core.signing import secret_key

    return hmac.new(secret_key(), b"keyshop seal key\x00", hashlib.sha256).digest()


def seal(secrets: BrowserSecrets) -> str:
    """The sealed form of ``secrets`` (what ``x-keyshop-sealed`` carries)."""
    plain = json.dumps(
        {"s": secrets.session, "r": secrets.reset, "o": dict(secrets.orders)},
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(_seal_key()).encrypt(nonce, plain, _SEAL_AAD)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(text: str | None) -> BrowserSecrets:
    """The secrets in a sealed header; empty ones for anything else."""
    if not text:
        return BrowserSecrets()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        plain = AESGCM(_seal_key()).decrypt(raw[:12], raw[12:], _SEAL_AAD)
        data = json.loads(plain)
        orders = {str(k): str(v) for k, v in dict(data.get("o") or {}).items()}
        return BrowserSecrets(str(data.get("s") or ""), str(data.get("r") or ""), orders)
    except (ValueError, InvalidTag, TypeError, AttributeError):
        return BrowserSecrets()


def browser_secrets(headers: Mapping[str, str]) -> BrowserSecrets:
    """The browser's tokens, from the request headers of a Reflex state's router."""
    return unseal(headers.get(SEALED_HEADER))


def secrets_from_cookies(cookies: Mapping[str, str]) -> BrowserSecrets:
    """Pick the shop's secret cookies out of a request's cookies."""
    orders: dict[str, str] = {}
    for name, value in cookies.items():
        number = name[len(ORDER_COOKIE_PREFIX) :]
        if (
            name.startswith(ORDER_COOKIE_PREFIX)
            and _ORDER_NUMBER.match(number)
            and _TOKEN.match(value)
            and len(orders) < MAX_ORDER_COOKIES
        ):
            orders[number] = value
    session = cookies.get(SESSION_COOKIE, "")
    reset = cookies.get(RESET_COOKIE, "")
    return BrowserSecrets(
        session if _TOKEN.match(session) else "", reset if _TOKEN.match(reset) else "", orders
    )


def _is_secret_cookie(name: str) -> bool:
    return name in (SESSION_COOKIE, RESET_COOKIE) or name.startswith(ORDER_COOKIE_PREFIX)


# -- cookies --------------------------------------------------------------------------------


def parse_cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def _secure() -> bool:
    settings = get_settings()
    return settings.env == "production" or settings.public_url.startswith("https://")


def cookie_header(name: str, value: str, *, max_age: int) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, Path=/, Secure in production."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if _secure():
        parts.append("Secure")
    return "; ".join(parts)


def session_cookie(token: str) -> str:
    return cookie_header(SESSION_COOKIE, token, max_age=get_settings().session_days * 86_400)


# -- origins and headers ---------------------------------------------------------------------


def public_origin() -> str:
    parts = urlsplit(get_settings().public_url)
    return f"{parts.scheme}://{parts.netloc}"


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """An ``Origin`` the shop answers: its public origin, or the very host the request
    was sent to (same origin). A missing Origin (not a browser's cross-site request)
    passes; callers that need one check it themselves."""
    if origin is None:
        return True
    if origin == public_origin():
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


def content_security_policy() -> str:
    ws = public_origin().replace("https://", "wss://").replace("http://", "ws://")
    return "; ".join(
        [
            "default-src 'self'",
            # Reflex's pages run inline bootstrap code and rx.call_script (eval)
            "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob: https:",
            "font-src 'self' data:",
            f"connect-src 'self' {ws}",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    headers = {
        "content-security-policy": content_security_policy(),
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer"
        if _NO_REFERRER.match(split_path(path)[1])
        else "same-origin",
        "permissions-policy": "camera=(), microphone=(), geolocation=()",
    }
    if get_settings().env == "production":
        headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers, lower-case names; a repeated header joined with commas
    (cookies with ``; ``)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or []:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        glue = "; " if name == "cookie" else ", "
        out[name] = f"{out[name]}{glue}{value}" if name in out else value
    return out


# -- the middleware ---------------------------------------------------------------------------


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = self._with_client(scope)
        headers = _headers(scope)
        path: str = scope.get("path", "")
        if path.startswith(EVENT_PATH):
            if not origin_allowed(headers.get("origin"), headers.get("host")):
                await self._refuse(scope, receive, send)
                return
            scope = self._sealed(scope, headers)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "GET":
            handoff = self._handoff(path, scope.get("query_string", b"").decode("latin-1"))
            if handoff is not None:
                await handoff(scope, receive, self._with_headers(send, path, headers))
                return
        await self.app(scope, receive, self._with_headers(send, path, headers))

    @staticmethod
    def _with_client(scope: Scope) -> Scope:
        trusted = get_settings().proxies
        if not trusted.enabled:
            return scope
        peer = scope.get("client")
        address = client_address(
            peer=peer[0] if peer else None, headers=_headers(scope), trusted=trusted
        )
        if address is None:
            return scope
        new: dict[str, Any] = dict(scope)
        new["client"] = (address, peer[1] if peer else 0)
        return new

    @staticmethod
    def _sealed(scope: Scope, headers: Mapping[str, str]) -> Scope:
        """The scope with the secret cookies moved, sealed, into ``x-keyshop-sealed``
        (a client's own ``x-keyshop-sealed`` is dropped)."""
        cookies = parse_cookies(headers.get("cookie", ""))
        kept = "; ".join(f"{k}={v}" for k, v in cookies.items() if not _is_secret_cookie(k))
        raw = [
            (k, v)
            for k, v in scope.get("headers") or []
            if k.lower() not in (b"cookie", SEALED_HEADER.encode())
        ]
        if kept:
            raw.append((b"cookie", kept.encode("latin-1")))
        raw.append((SEALED_HEADER.encode(), seal(secrets_from_cookies(cookies)).encode()))
        new: dict[str, Any] = dict(scope)
        new["headers"] = raw
        return new

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        await Response("foreign origin", status_code=403)(scope, receive, send)

    @staticmethod
    def _handoff(path: str, query: str) -> ASGIApp | None:
        """For a page link carrying a token: the answer that moves the token into a
        cookie and sends the browser to the same page without it."""
        params = parse_qsl(query, keep_blank_values=True)
        token = next((v for k, v in params if k == "token"), None)
        _language, page = split_path(path)  # the same pages under /de (core.i18n)
        order = _HANDOFF.match(page)
        reset = page.rstrip("/") == "/reset-password"
        if token is None or not (order or reset):
            return None
        rest = urlencode([(k, v) for k, v in params if k != "token"])
        response = Response(
            status_code=303, headers={"Location": path + ("?" + rest if rest else ""), **_NO_STORE}
        )
        if _TOKEN.match(token):  # anything else is dropped: the page then says not found
            settings = get_settings()
            set_cookie = (
                cookie_header(
                    ORDER_COOKIE_PREFIX + order.group(2),
                    token,
                    max_age=settings.session_days * 86_400,
                )
                if order
                else cookie_header(
                    RESET_COOKIE, token, max_age=settings.password_reset_minutes * 60
                )
            )
            response.raw_headers.append((b"set-cookie", set_cookie.encode("latin-1")))
        return response

    @staticmethod
    def _with_headers(send: Send, path: str, headers: Mapping[str, str]) -> Send:
        renew = parse_cookies(headers.get("cookie", "")).get(SESSION_COOKIE)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or [])
                present = {k.lower() for k, _ in raw}
                raw.extend(h for h in security_headers(path) if h[0] not in present)
                content_type = dict(raw).get(b"content-type", b"")
                if renew and _TOKEN.match(renew) and content_type.startswith(b"text/html"):
                    # the session slides with use: so does its cookie
                    raw.append((b"set-cookie", session_cookie(renew).encode("latin-1")))
                message = {**message, "headers": raw}
            await send(message)

        return wrapped


_NO_STORE: Final = {"Cache-Control": "no-store"}


def middleware() -> list[Middleware]:
    """What :func:`web.api.app.create_api` registers."""
    return [Middleware(SecurityMiddleware)]


# -- the session cookie's routes ------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is not None and origin_allowed(origin, request.headers.get("host"))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=_NO_STORE
    )


async def start_session(request: Request) -> Response:
    """``POST /api/session`` ``{"token": ...}``: set the HttpOnly session cookie for a
    session the websocket just opened (sign-in, sign-up, reset). Same origin only."""
    from core.services.accounts import customer_for_token

    if not _same_origin(request):
        return _error(403, "forbidden", "foreign origin")
    body = await request.body()
    try:
        token = json.loads(body)["token"] if len(body) <= 1024 else None
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str) or not _TOKEN.match(token):
        return _error(400, "bad_request", 'send {"token": "..."}')
    if await run_in_threadpool(lambda: customer_for_token(token=token)) is None:
        return _error(401, "unauthenticated", "no such session")
    response = Response(status_code=204, headers=_NO_STORE)
    response.raw_headers.append((b"set-cookie", session_cookie(token).encode("latin-1")))
    clear = cookie_header(RESET_COOKIE, "", max_age=0)  # a used reset link is done
    response.raw_headers.append((b"set-cookie", clear.encode("latin-1")))
    return response


async def end_session(request: Request) -> Response:
    """``POST /api/session/sign-out``: end the cookie's session and clear the cookie."""
    from core.services.accounts import sign_out

    if not _same_origin(request):
        return _error(403, "forbidden", "foreign origin")
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await run_in_threadpool(lambda: sign_out(token=token))
    response = Response(status_code=204, headers=_NO_STORE)
    clear = cookie_header(SESSION_COOKIE, "", max_age=0)
    response.raw_headers.append((b"set-cookie", clear.encode("latin-1")))
    return response


async def verify_email(request: Request) -> Response:
    """``GET /api/account/verify?token=``: the sign-up e-mail's link. Verifies the
    address, signs in (the session cookie) and goes to the account; a bad or used link
    goes to the sign-in page."""
    from core.services.signup import InvalidVerificationLink
    from core.services.signup import verify_email as verify

    token = request.query_params.get("token", "")
    ip = request.client.host if request.client else None
    agent = (request.headers.get("user-agent") or "")[:400] or None
    try:
        signed = await run_in_threadpool(lambda: verify(token=token, ip=ip, user_agent=agent))
    except InvalidVerificationLink:
        return Response(status_code=303, headers={"Location": "/signin", **_NO_STORE})
    response = Response(status_code=303, headers={"Location": "/account", **_NO_STORE})
    response.raw_headers.append((b"set-cookie", session_cookie(signed.token).encode("latin-1")))
    return response


def _oidc_routes() -> list[Route]:
    from web.api.oidc import ROUTES as OIDC_ROUTES

    return list(OIDC_ROUTES)


ROUTES: Final = [
    *_oidc_routes(),
    Route("/api/account/verify", verify_email, methods=["GET"]),
    Route("/api/session", start_session, methods=["POST"]),
    Route("/api/session/sign-out", end_session, methods=["POST"]),
]


def handoff_script(token: str, next_path: str) -> str:
    """The browser code that hands a new session token to ``POST /api/session`` and then
    loads ``next_path`` (a full load, so the websocket reconnects with the cookie)."""
    return (
        'fetch("/api/session",{method:"POST",credentials:"same-origin",'
        'headers:{"Content-Type":"application/json"},'
        f"body:JSON.stringify({{token:{json.dumps(token)}}})}})"
        f".then(function(r){{window.location.assign(r.ok?{json.dumps(next_path)}:'/signin')}})"
    )


SIGN_OUT_SCRIPT: Final = (
    'fetch("/api/session/sign-out",{method:"POST",credentials:"same-origin"})'
    '.finally(function(){window.location.assign("/")})'
)


def load_script(url: str) -> str:
    """Browser code for a full page load of ``url`` (so a token in it goes through the
    handoff above, never into the Reflex router)."""
    return f"window.location.assign({json.dumps(url)})"
