"""The links in the back-in-stock e-mails (core/services/stock_alerts.py).

GET  /api/stock-alerts/confirm?token=...       double opt-in: confirm, then the product page
GET  /api/stock-alerts/unsubscribe?token=...   the link in the e-mail: stop, then the page
POST /api/stock-alerts/unsubscribe?token=...   RFC 8058 one-click (mail clients), 200
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from core.db import session_scope
from core.errors import DomainError
from core.services.stock_alerts import confirm_stock_alert, unsubscribe_stock_alert
from web.api.http import LenientQueryRoute, error_response, fallback_routes

router = APIRouter(route_class=LenientQueryRoute, tags=["stock alerts"])
Token = Annotated[str, Query(description="the signed token from the e-mail", max_length=512)]


def _page(slug: str | None, outcome: str) -> RedirectResponse:
    where = f"/games/{slug}" if slug else "/games"
    return RedirectResponse(f"{where}?stock_alert={outcome}", status_code=303)


@router.get(
    "/api/stock-alerts/confirm",
    operation_id="confirm_stock_alert",
    summary="Confirm a back-in-stock request (the link in the confirmation e-mail)",
    response_class=Response,
    responses={
        303: {"description": "confirmed: on to the product page"},
        403: error_response("the link is forged, expired, or its request is gone"),
    },
)
async def confirm(token: Token = "") -> Response:
    def work() -> str:
        with session_scope() as session:
            return confirm_stock_alert(session=session, token=token).slug

    try:
        slug = await run_in_threadpool(work)
    except DomainError:
        return _page(None, "invalid")
    return _page(slug, "confirmed")


async def _unsubscribe(token: str) -> str | None:
    def work() -> str | None:
        with session_scope() as session:
            product = unsubscribe_stock_alert(session=session, token=token)
            return product.slug if product is not None else None

    return await run_in_threadpool(work)


@router.get(
    "/api/stock-alerts/unsubscribe",
    operation_id="unsubscribe_stock_alert",
    summary="Stop a back-in-stock request (the link in the e-mail): one click",
    response_class=Response,
    responses={303: {"description": "stopped (or already gone): on to the product page"}},
)
async def unsubscribe(token: Token = "") -> Response:
    try:
        slug = await _unsubscribe(token)
    except DomainError:
        return _page(None, "invalid")
    return _page(slug, "unsubscribed")


@router.post(
    "/api/stock-alerts/unsubscribe",
    operation_id="unsubscribe_stock_alert_one_click",
    summary="RFC 8058 one-click unsubscribe, posted by mail clients",
    response_class=Response,
    responses={
        200: {"description": "stopped (or already gone)"},
        403: error_response("the link is forged or expired"),
    },
)
async def unsubscribe_one_click(token: Token = "") -> Response:
    try:
        await _unsubscribe(token)
    except DomainError as exc:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.http_status)
    return Response(status_code=200)


fallback_routes(router)
