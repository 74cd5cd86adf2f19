"""Pieces both simulated APIs share: the per-request gate (latency, injected 503s),
the hang, and the dropped connection."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from keyshop.simulators.state import ProviderState

SERVER_SEND = "keyshop.server_send"


async def gate(state: ProviderState, error_body: Callable[[], dict[str, Any]]) -> Response | None:
    """Apply ``latency_ms`` and ``error_rate``; a response means "answer this instead"."""
    latency = state.knobs.latency_ms
    if latency > 0:
        await asyncio.sleep(latency / 1000)
    if state.inject_error():
        return JSONResponse(error_body(), status_code=503)
    return None


_background: set[asyncio.Task[Any]] = set()


async def survive_disconnect(work: Awaitable[Response]) -> Response:
    """Finish ``work`` even if the client goes away meanwhile, as a real provider keeps
    processing an order whose caller died (a killed worker, a dropped connection)."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return await asyncio.shield(task)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


class DropConnection(Response):
    """A "response" that sends nothing and aborts the TCP connection, as a provider
    that crashed after committing the order would. Works with uvicorn's h11 and
    httptools protocols (through the server ``send`` that :class:`KeepServerSend`
    stored in the scope); anywhere else it hangs for ``fallback_seconds`` instead,
    which a client with a shorter timeout sees the same way."""

    def __init__(self, fallback_seconds: float = 60.0) -> None:
        super().__init__()
        self.fallback_seconds = fallback_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server_send = scope.get(SERVER_SEND)
        cycle = getattr(server_send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            await asyncio.sleep(self.fallback_seconds)
            return
        transport.abort()
        await asyncio.sleep(0.05)  # let connection_lost mark the cycle disconnected


class KeepServerSend:
    """Outermost ASGI wrapper: remembers the server's own ``send`` in the scope, and
    collapses repeated slashes in the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND] = send
            if "//" in scope["path"]:  # tolerated, as CodesWholesale's server does
                path = re.sub("/{2,}", "/", scope["path"])
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


Handler = Callable[[Request], Awaitable[Response]]
