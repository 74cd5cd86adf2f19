"""The HTTP API beside the storefront: webhooks, health, image-key links, the store API.

A FastAPI app. The Reflex app mounts it through ``api_transformer``; tests and
``keyshop api`` serve it with uvicorn on its own. Every route translates the request,
calls core, and answers JSON errors in the form ``{"error": {"code", "message"}}``
(``web.api.http``). The OpenAPI document at ``/api/openapi.json`` is generated from the
routes and their pydantic models.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.db import is_database_unavailable, session_scope
from core.errors import DatabaseUnavailable, DomainError
from core.services.webhooks import WebhookRejected, receive_webhook
from web.api.http import LenientQueryRoute, error_response, fallback_routes

log = logging.getLogger(__name__)
router = APIRouter(route_class=LenientQueryRoute)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class WebhookReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received: bool
    duplicate: bool = Field(description="it had been received before")


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded"]
    database: str = Field(description="ok, or unreachable: <error>")
    queue: str = Field(description="ok, or unreachable: <error>")
    worker: Literal["ok", "stale", "absent", "unknown"] = Field(
        description="the workers' heartbeat; does not change the status code"
    )
    worker_last_seen_seconds: int | None


@router.post(
    "/api/webhooks/{source}",
    operation_id="webhook",
    summary="Inbound webhooks: Stripe, NOWPayments, Kinguin, CodesWholesale",
    description="Authenticated by each source's own rule (Stripe-Signature, NOWPayments' "
    "x-nowpayments-sig, Kinguin's secret header, CodesWholesale's signature), stored raw, "
    "de-duplicated and acted on at most once.",
    tags=["webhooks"],
    response_model=WebhookReceipt,
    responses={
        200: {"description": "stored (duplicate: it had been received before)"},
        204: {"description": "stored (Kinguin asks for an empty answer)"},
        400: error_response("malformed or too large"),
        401: error_response("authentication failed; nothing changed"),
        404: error_response("unknown source"),
        503: error_response("not stored: the database cannot be reached; the sender retries"),
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
    },
)
async def webhook(
    source: Annotated[
        str,
        Path(
            description="who sends it",
            json_schema_extra={"examples": ["stripe", "nowpayments", "kinguin", "codeswholesale"]},
        ),
    ],
    request: Request,
) -> Response:
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
    except DBAPIError as exc:
        if not is_database_unavailable(exc):
            raise
        # not stored: the sender's retry (Stripe, Kinguin and CodesWholesale all retry a 5xx)
        log.warning("webhook from %s: database unavailable (%s)", source, type(exc.orig).__name__)
        unavailable = DatabaseUnavailable()
        answer = error(unavailable.http_status, unavailable.code, unavailable.message)
        answer.headers["Retry-After"] = str(unavailable.retry_after)
        return answer
    if source == "kinguin":
        return Response(status_code=204)  # Kinguin asks for an empty 2xx, 204 recommended
    return JSONResponse({"received": True, "duplicate": receipt.duplicate})


@router.get(
    "/api/health",
    operation_id="health",
    summary="Database and queue reachability; when a worker was last seen",
    tags=["meta"],
    response_model=Health,
    responses={503: {"model": Health, "description": "database or queue unreachable"}},
)
async def health() -> Response:
    """The web tier's health, and what it knows of the workers.

    ``status`` and the HTTP status are the web's own: 503 while the database or the queue
    is unreachable (the container health check restarts or withholds traffic on that).
    A missing worker does not make the web unhealthy (restarting the web would not bring
    a worker back): it is reported beside, in ``worker`` (``ok``, ``stale``: no heartbeat
    for ``KEYSHOP_WORKER_STALE_SECONDS``, ``absent``: none ever on this queue, or
    ``unknown`` when the queue cannot be read) and ``worker_last_seen_seconds``, for
    monitoring to alert on."""
    from starlette.concurrency import run_in_threadpool

    def check() -> dict[str, str | int | None]:
        import time

        from core.config import get_settings
        from core.jobs import worker_presence
        from tasks.consumer import last_heartbeat
        from tasks.queue import huey

        status: dict[str, str | int | None] = {}
        try:
            with session_scope(write=False) as session:
                session.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 (the health check reports every failure)
            status["database"] = f"unreachable: {type(exc).__name__}"
        try:
            huey.pending_count()
            beat = last_heartbeat(huey)
            status["queue"] = "ok"
        except Exception as exc:  # noqa: BLE001 (the health check reports every failure)
            status["queue"] = f"unreachable: {type(exc).__name__}"
            status["worker"], status["worker_last_seen_seconds"] = "unknown", None
        else:
            presence = worker_presence(
                beat, now=time.time(), stale_after=get_settings().worker_stale_seconds
            )
            status["worker"] = presence.state
            status["worker_last_seen_seconds"] = presence.seconds_since
        return status

    status = await run_in_threadpool(check)
    ok = status["database"] == "ok" and status["queue"] == "ok"
    return JSONResponse(
        {"status": "ok" if ok else "degraded", **status}, status_code=200 if ok else 503
    )


@router.get(
    "/api/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    description="The text exposition format: every process's counters (provider calls, "
    "webhooks, order transitions, paid → fulfilled latency, claims, imports) and the shop's "
    "state read at scrape time (orders by status, the oldest paid order waiting, stock per "
    "product, queue depth, the workers' heartbeat). With KEYSHOP_METRICS_TOKEN set it "
    "needs `Authorization: Bearer <token>`; without, only clients on loopback may scrape.",
    tags=["meta"],
    response_class=Response,
    responses={
        200: {"description": "the metrics", "content": {"text/plain": {"schema": {}}}},
        403: error_response("no or a wrong token, or not on loopback without one"),
    },
)
async def metrics(request: Request) -> Response:
    import hmac
    import ipaddress

    from starlette.concurrency import run_in_threadpool

    from core import metrics as shop_metrics
    from core.config import get_settings, reveal
    from tasks.jobs import queue_depth, worker_heartbeat

    token = reveal(get_settings().metrics_token)
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error(403, "forbidden", "a valid metrics token is needed")
    else:
        host = request.client.host if request.client else ""
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            return error(403, "forbidden", "set KEYSHOP_METRICS_TOKEN to scrape from afar")
    collector = shop_metrics.ShopCollector(
        queue_depth=queue_depth, worker_heartbeat=worker_heartbeat
    )
    body = await run_in_threadpool(shop_metrics.exposition, collector)
    return Response(body, media_type=shop_metrics.CONTENT_TYPE)


@router.get(
    "/api/blobs/{name:path}",
    operation_id="blob",
    summary="An image key through its signed, expiring link",
    description="The name may contain slashes (keys/<uuid>.png). Links are handed out by the "
    "key portal and expire after 15 minutes.",
    tags=["keys"],
    response_class=Response,
    responses={
        200: {
            "description": "the image",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        403: error_response("the link is not valid or has expired"),
        404: error_response("no such blob"),
    },
)
async def blob(
    name: Annotated[str, Path(description="the blob's name")],
    token: Annotated[str, Query(description="the link's signature")] = "",
) -> Response:
    """An image key through its signed, expiring link."""
    from starlette.concurrency import run_in_threadpool

    from core.blobs import get_blob_store

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


@router.get(
    "/api/covers/{name:path}",
    operation_id="cover",
    summary="A product's uploaded cover image at one storefront size",
    description="Public: <product id>/<cover id>/card.webp (300x400) or page.webp "
    "(600x800). A new upload gets a new address, so an answer never changes and is "
    "cached for a year.",
    tags=["store"],
    response_class=Response,
    responses={
        200: {
            "description": "the image",
            "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
        },
        404: error_response("no such cover"),
    },
)
async def cover(name: Annotated[str, Path(description="the cover's name and size")]) -> Response:
    """An uploaded product cover (core.services.catalogue.covers)."""
    from starlette.concurrency import run_in_threadpool

    from core.services.catalogue.covers import CONTENT_TYPE, read_cover

    try:
        data = await run_in_threadpool(read_cover, name)
    except DomainError as exc:
        return error(exc.http_status, exc.code, exc.message)
    return Response(
        data,
        media_type=CONTENT_TYPE,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/api/receipts/{number}.pdf",
    operation_id="receiptPdf",
    summary="The receipt (invoice) of a paid order as a PDF",
    description="Opened like the order page: the order's access link (its cookie, or "
    "?token=) or the signed-in customer it belongs to.",
    tags=["orders"],
    response_class=Response,
    responses={
        200: {
            "description": "the receipt",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        404: error_response("unknown order, a wrong token, or no receipt yet (not paid)"),
    },
)
async def receipt_pdf(
    number: Annotated[str, Path(description="the order number")],
    request: Request,
    token: Annotated[str, Query(description="the order's access token")] = "",
) -> Response:
    """A paid order's receipt as a PDF (core.services.invoices)."""
    from starlette.concurrency import run_in_threadpool

    from core.services.accounts import customer_for_token
    from core.services.invoices import receipt_pdf as render_pdf
    from core.services.invoices import view_receipt
    from web.api.security import secrets_from_cookies

    secrets = secrets_from_cookies(request.cookies)
    number = number[:24].upper()

    def work() -> bytes:
        who = customer_for_token(token=secrets.session) if secrets.session else None
        receipt = view_receipt(
            number=number,
            access_token=token or secrets.order_token(number),
            customer_id=who.id if who else None,
        )
        return render_pdf(receipt)

    try:
        data = await run_in_threadpool(work)
    except DomainError as exc:
        return error(exc.http_status, exc.code, exc.message)
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="receipt-{number}.pdf"',
        },
    )


fallback_routes(router)


def create_api() -> FastAPI:
    import tasks  # noqa: F401  (plugs the queue into core.jobs)
    from core import tracing

    tracing.configure(service="keyshop-web")  # on only with KEYSHOP_OTLP_ENDPOINT
    from web.api.security import ROUTES as SESSION_ROUTES
    from web.api.security import middleware
    from web.api.store import router as store_router

    app = FastAPI(
        openapi_url=None,  # the document: web.api.store
        docs_url=None,
        redoc_url=None,
        middleware=middleware(),  # client address, cookies, headers: web/api/security.py
    )
    app.include_router(router)
    # The session cookie's and sign-in routes (web/api/security.py) take the request and
    # answer a redirect or an empty reply; they are in the document like every /api route.
    for route in SESSION_ROUTES:
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=sorted((route.methods or set()) - {"HEAD"}),
            response_model=None,
            tags=["accounts"],
        )
    app.include_router(store_router)
    from web.api.stock_alerts import router as stock_alerts_router

    app.include_router(stock_alerts_router)
    return app
