"""The JSON store API: the catalogue, checkout and order status for other programs.

    GET  /api/store/products            search, filters, sort, paging
    GET  /api/store/products/{slug}     one product (availability, region, activation)
    POST /api/store/checkout            e-mail and lines → order number, token, payment URL
    GET  /api/store/orders/{number}     the order with its access token (never a key)
    GET  /api/openapi.json              the OpenAPI 3.1 description of every /api route

Each route only translates: it checks the request strictly (unknown query parameters,
repeated ones, non-numbers, bodies that are not the documented JSON are refused), calls a
``core`` service in the thread pool and shapes the answer. Errors are DESIGN §6 JSON,
``{"error": {"code": ..., "message": ...}}``: 400 a malformed request, 404 nothing there
(or not yours), 405 wrong method, 413 body too large, 415 not JSON, 422 a well-formed
request the shop refuses (with ``problems`` for a cart), 429 too many requests (every
request counts against its client address's limit, a checkout also against the
checkout limit: ``core.services.ratelimit``).

Keys are never part of any answer: the order's keys appear masked, and are revealed
only in the key portal (``core.services.portal.reveal_order_key``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.db import get_engine, session_scope
from core.errors import DomainError
from core.services import catalogue, checkout, portal, ratelimit, storefront
from core.services.catalogue import ProductHit

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
MAX_PARAM_CHARS: Final = 200
NO_STORE: Final = {"Cache-Control": "no-store"}

SEARCH_PARAMS: Final = frozenset(
    {"q", "platform", "region", "genre", "min_price", "max_price", "in_stock", "sort", "page",
     "per_page"}
)  # fmt: skip
BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status,
        headers=NO_STORE,
    )  # fmt: skip


def domain_error(exc: DomainError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, checkout.CartRejected):
        extra["problems"] = exc.problems
    field = exc.data.get("field") if isinstance(exc.data, dict) else None
    if isinstance(field, str):
        extra["field"] = field
    response = error(exc.http_status, exc.code, exc.message, **extra)
    retry_after = exc.data.get("retry_after") if isinstance(exc.data, dict) else None
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response


def _single_statement_reads() -> Engine:
    """The engine for a read that is one statement (the product search): on PostgreSQL in
    autocommit, so the search is one round trip instead of BEGIN, query and COMMIT (one
    statement sees one snapshot either way)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def blocking(call: Callable[[], Any]) -> Any:
    """Run blocking work in the thread pool."""
    return await run_in_threadpool(call)


async def _limit(request: Request) -> None:
    """Every store API request counts against its client's limit (RateLimited, 429)."""
    ip = request.client.host if request.client else None
    await blocking(lambda: ratelimit.check_store_api(ip=ip))


def _endpoint(*methods: str) -> Callable[[Callable[[Request], Any]], Callable[[Request], Any]]:
    """Make a route handler: the method is checked here (a JSON 405 with ``Allow``, also
    when Reflex mounts its own app behind ours and would otherwise take the request),
    BadRequest and DomainError become the JSON errors. No methods: any method."""
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    def decorate(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            if methods and request.method not in allowed:
                response = error(405, "method_not_allowed", f"use {' or '.join(methods)} here")
                response.headers["Allow"] = ", ".join(sorted(allowed))
                return response
            try:
                await _limit(request)
                return await handler(request)  # type: ignore[no-any-return]
            except BadRequest as exc:
                return error(exc.status, exc.code, exc.message)
            except DomainError as exc:
                return domain_error(exc)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        wrapped.methods = methods  # type: ignore[attr-defined]  # what it really answers
        return wrapped

    return decorate


# -- shaping answers --------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def hit_json(hit: ProductHit) -> dict[str, Any]:
    return {
        "slug": hit.slug,
        "title": hit.title,
        "platform": hit.platform,
        "region": hit.region,
        "genre": hit.genre,
        "publisher": hit.publisher,
        "price_minor": hit.price_minor,
        "currency": hit.currency,
        "list_price_minor": hit.list_price_minor,
        "discount_percent": hit.discount_percent,
        "is_preorder": hit.is_preorder,
        "release_date": hit.release_date.isoformat() if hit.release_date else None,
        "featured": hit.featured,
        "cover_url": hit.cover_url,
        "in_stock": hit.in_stock,
        "low_stock": hit.low_stock,
        "url": f"/api/store/products/{hit.slug}",
    }


def order_json(view: portal.OrderView) -> dict[str, Any]:
    """The order page as JSON. KeyView carries no code, so nothing here can leak one."""
    data = _jsonable(asdict(view))
    data["is_final"] = view.is_final
    for line in data["lines"]:
        for key in line["keys"]:
            assert set(key) == {"id", "kind", "status", "masked", "revealed", "reported"}
    return data  # type: ignore[no-any-return]


# -- request parsing --------------------------------------------------------------------


def _query(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadRequest(
                f"unknown query parameter {name!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if name in params:
            raise BadRequest(f"query parameter {name!r} given more than once")
        if len(value) > MAX_PARAM_CHARS:
            raise BadRequest(f"query parameter {name!r} is too long")
        params[name] = value
    return params


def _int(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadRequest(f"{name} must be a whole number")
    return int(value)


def _bool(params: dict[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    found = BOOLEANS.get(value.lower())
    if found is None:
        raise BadRequest(f"{name} must be true or false")
    return found


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest(
            "send the body as application/json", status=415, code="unsupported_media_type"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest("the body is too large", status=413, code="payload_too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest("the body is too large", status=413, code="payload_too_large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[" * 100_000
        raise BadRequest("the body is not valid JSON") from None


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, status=422, code="invalid_input")


def _checkout_request(data: Any) -> tuple[str, list[checkout.CartLine]]:
    if not isinstance(data, dict):
        raise _invalid('the body must be a JSON object: {"email": ..., "lines": [...]}')
    unknown = sorted(set(data) - {"email", "lines"})
    if unknown:
        raise _invalid(f"unknown field(s): {', '.join(unknown)}")
    email, lines = data.get("email"), data.get("lines")
    if not isinstance(email, str):
        raise _invalid("email must be a string")
    if not isinstance(lines, list):
        raise _invalid('lines must be a list of {"slug": ..., "quantity": n}')
    if len(lines) > 100:
        raise _invalid("too many lines")
    cart: list[checkout.CartLine] = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or set(line) != {"slug", "quantity"}:
            raise _invalid(f'lines[{i}] must be exactly {{"slug": ..., "quantity": n}}')
        slug, quantity = line["slug"], line["quantity"]
        if not isinstance(slug, str) or not slug:
            raise _invalid(f"lines[{i}].slug must be a non-empty string")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise _invalid(f"lines[{i}].quantity must be a whole number")
        cart.append(checkout.CartLine(slug=slug, quantity=quantity))
    return email, cart


def _access_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BadRequest("Authorization must be 'Bearer <access token>'")
        return value.strip()
    return request.query_params.get("token")


# -- routes ------------------------------------------------------------------------------


@_endpoint("GET")
async def list_products(request: Request) -> Response:
    params = _query(request, SEARCH_PARAMS)
    min_price, max_price = _int(params, "min_price"), _int(params, "max_price")
    in_stock = _bool(params, "in_stock")
    page, per_page = _int(params, "page"), _int(params, "per_page")
    sort = params.get("sort") or "relevance"

    def search() -> catalogue.SearchPage:
        with session_scope(write=False, engine=_single_statement_reads()) as session:
            return catalogue.search_products(
                session=session,
                query=params.get("q"),
                platform=params.get("platform") or None,
                region=params.get("region") or None,
                genre=params.get("genre") or None,
                min_price_minor=min_price,
                max_price_minor=max_price,
                in_stock=in_stock,
                sort=sort,
                page=page if page is not None else 1,
                per_page=per_page if per_page is not None else 24,
            )

    found = await blocking(search)
    return JSONResponse(
        {
            "items": [hit_json(h) for h in found.items],
            "total": found.total,
            "total_is_exact": found.total_is_exact,
            "page": found.page,
            "per_page": found.per_page,
            "pages": found.pages,
            "has_next": found.has_next,
        }
    )


@_endpoint("GET")
async def get_product(request: Request) -> Response:
    _query(request, frozenset())
    slug = request.path_params["slug"]

    def detail() -> storefront.ProductDetail:
        with session_scope(write=False) as session:
            return storefront.product_detail(session=session, slug=slug)

    return JSONResponse(_jsonable(asdict(await blocking(detail))))


@_endpoint("POST")
async def create_checkout(request: Request) -> Response:
    _query(request, frozenset())
    email, lines = _checkout_request(await _json_body(request))
    ip = request.client.host if request.client else None
    await blocking(lambda: ratelimit.check_checkout(ip=ip))
    result = await blocking(lambda: checkout.place_order(email=email, lines=lines, ip=ip))
    status_url = f"/api/store/orders/{result.number}"
    return JSONResponse(
        {**asdict(result), "status_url": status_url},
        status_code=201,
        headers={**NO_STORE, "Location": status_url},
    )


@_endpoint("GET")
async def get_order(request: Request) -> Response:
    token = _access_token(request)
    extra = set(request.query_params) - {"token"}
    if extra:
        raise BadRequest(f"unknown query parameter {sorted(extra)[0]!r}; allowed: token")
    number = request.path_params["number"]

    def view() -> portal.OrderView:
        with session_scope(write=False) as session:
            order = portal.open_order(session=session, number=number, access_token=token)
            return portal.order_view(session=session, order=order)

    return JSONResponse(order_json(await blocking(view)), headers=NO_STORE)


@_endpoint("GET")
async def openapi(request: Request) -> Response:
    from web.api.openapi import openapi_document

    return JSONResponse(openapi_document())


@_endpoint()
async def not_found(request: Request) -> Response:
    raise BadRequest("no such store API route", status=404, code="not_found")


# Routes take every method and check it themselves (see _endpoint).
ANY: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
ROUTES: Final = [
    Route("/api/store/products", list_products, methods=ANY),
    Route("/api/store/products/{slug}", get_product, methods=ANY),
    Route("/api/store/checkout", create_checkout, methods=ANY),
    Route("/api/store/orders/{number}", get_order, methods=ANY),
    Route("/api/openapi.json", openapi, methods=ANY),
    Route("/api/store/{rest:path}", not_found, methods=ANY),
]
