"""The HTTP API beside the storefront: webhooks, health and image-key links.

A Starlette app. The Reflex app mounts it through ``api_transformer``; tests and
``keyshop api`` serve it with uvicorn on its own. Every route translates the request,
calls core, and answers JSON errors in the form ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.db import session_scope
from core.errors import DomainError
from core.services.webhooks import WebhookRejected, receive_webhook

log = logging.getLogger(__name__)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def webhook(request: Request) -> Response:
    source = request.path_params["source"]
    declared = request.headers.get("content-length")
    from core.config import get_settings

    limit = get_settings().webhook_max_bytes
    if declared and declared.isdigit() and int(declared) > limit:
        return error(400, "webhook_rejected", "body too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return error(400, "webhook_rejected", "body too large")
    try:
        from starlette.concurrency import run_in_threadpool

        receipt = await run_in_threadpool(
            receive_webhook,
            source=source,
            headers=dict(request.headers),
            body=body,
            remote_addr=request.client.host if request.client else None,
        )
    except WebhookRejected as exc:
        code = {401: "unauthenticated", 404: "unknown_source"}.get(exc.http_status, "bad_request")
        return error(exc.http_status, code, exc.message)
    except DomainError as exc:
        return error(exc.http_status, exc.code, exc.message)
    if source == "kinguin":
        return Response(status_code=204)  # Kinguin asks for an empty 2xx, 204 recommended
    return JSONResponse({"received": True, "duplicate": receipt.duplicate})


async def health(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    def check() -> dict[str, str]:
        status: dict[str, str] = {}
        try:
            with session_scope(write=False) as session:
                session.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:
            status["database"] = f"unreachable: {type(exc).__name__}"
        try:
            from tasks.queue import huey

            huey.pending_count()
            status["queue"] = "ok"
        except Exception as exc:
            status["queue"] = f"unreachable: {type(exc).__name__}"
        return status

    status = await run_in_threadpool(check)
    ok = all(v == "ok" for v in status.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", **status}, status_code=200 if ok else 503
    )


async def blob(request: Request) -> Response:
    """An image key through its signed, expiring link."""
    from starlette.concurrency import run_in_threadpool

    from core.blobs import get_blob_store

    name = request.path_params["name"]
    token = request.query_params.get("token", "")
    try:
        data, content_type = await run_in_threadpool(get_blob_store().open_link, name, token)
    except DomainError as exc:
        return error(exc.http_status, exc.code, exc.message)
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline",
        },
    )


def create_api() -> Starlette:
    import tasks  # noqa: F401  (plugs the queue into core.jobs)
    from web.api.security import ROUTES as SESSION_ROUTES
    from web.api.security import middleware
    from web.api.store import ROUTES as STORE_ROUTES

    return Starlette(
        middleware=middleware(),  # client address, cookies, headers: web/api/security.py
        routes=[
            Route("/api/webhooks/{source}", webhook, methods=["POST"]),
            Route("/api/health", health, methods=["GET"]),
            Route("/api/blobs/{name:path}", blob, methods=["GET"]),
            *SESSION_ROUTES,
            *STORE_ROUTES,
        ],
    )
