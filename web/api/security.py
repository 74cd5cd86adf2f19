"""The shop's front door: one ASGI middleware around every request the web process
answers (pages, the JSON API, webhooks and Reflex's websocket ``/_event``).

Client address
    The request's client (``scope["client"]``) is rewritten to the address
    :func:`core.proxies.client_address` finds behind ``KEYSHOP_TRUSTED_PROXIES``, before
    anything reads it: Starlette's ``request.client`` and Reflex's
    ``router.session.client_ip`` then both name the real client, and every rate limit and
    audit event counts it.

The middleware is pure ASGI (no BaseHTTPMiddleware: it must see websockets and must not
buffer streamed answers) and is registered once, in :func:`web.api.app.create_api`.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import get_settings
from core.proxies import client_address


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers, lower-case names; a repeated header joined with commas."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or []:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = self._with_client(scope)
        await self.app(scope, receive, send)

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


def middleware() -> list[Middleware]:
    """What :func:`web.api.app.create_api` registers."""
    return [Middleware(SecurityMiddleware)]
