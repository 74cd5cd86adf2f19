"""``GET /api/oidc/login`` and ``GET /api/oidc/callback``: sign in with an OpenID Connect
provider (core.services.oidc). The login ticket (state, nonce, PKCE verifier; signed,
ten minutes) lives in the HttpOnly ``ks_oidc`` cookie; a successful callback sets the
session cookie and goes to ``/account``, anything else goes back to ``/signin``."""

from __future__ import annotations

import logging
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web.api.security import cookie_header, session_cookie

log = logging.getLogger(__name__)

TICKET_COOKIE: Final = "ks_oidc"
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _redirect(location: str, *cookies: str) -> Response:
    response = Response(status_code=303, headers={"Location": location, **_NO_STORE})
    for cookie in cookies:
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    return response


async def login(request: Request) -> Response:
    from core.services.oidc import OidcRefused, begin_login

    try:
        url, ticket = await run_in_threadpool(begin_login)
    except OidcRefused as exc:
        log.warning("OpenID Connect sign-in not started: %s", exc.message)
        return _redirect("/signin?oidc=unavailable")
    return _redirect(url, cookie_header(TICKET_COOKIE, ticket, max_age=600))


async def callback(request: Request) -> Response:
    from core.services.oidc import OidcRefused, finish_login

    clear = cookie_header(TICKET_COOKIE, "", max_age=0)  # a ticket serves once
    if "error" in request.query_params:
        return _redirect("/signin?oidc=cancelled", clear)
    ip = request.client.host if request.client else None
    agent = (request.headers.get("user-agent") or "")[:400] or None
    try:
        signed = await run_in_threadpool(
            lambda: finish_login(
                code=request.query_params.get("code", ""),
                state=request.query_params.get("state", ""),
                ticket=request.cookies.get(TICKET_COOKIE, ""),
                ip=ip,
                user_agent=agent,
            )
        )
    except OidcRefused as exc:
        log.info("OpenID Connect sign-in refused: %s", exc.message)
        return _redirect("/signin?oidc=refused", clear)
    return _redirect("/account", clear, session_cookie(signed.token))


ROUTES: Final = [
    Route("/api/oidc/login", login, methods=["GET"]),
    Route("/api/oidc/callback", callback, methods=["GET"]),
]
