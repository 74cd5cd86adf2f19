"""Simulated Kinguin eCommerce API (docs/providers.md §1), mounted at ``/kinguin``.

Choices where the real API is undocumented:

- The same ``orderExternalId`` twice: knob ``duplicate_reference``. ``conflict``
  (default) answers ``409`` ``ConstraintViolation`` naming ``orderExternalId``;
  ``existing`` answers ``200`` with the existing order; ``duplicate`` places and
  charges a second order (Kinguin withdrew its de-duplication promise in 2024).
- Knobs ``fail_lookups`` (order searches answer 503) and ``drop_before_charge`` (the
  next N order requests are dropped before anything happens) stage the two sides of a
  lost answer.
- A product in the ``out_of_stock`` knob answers ``404`` on ``GET /v2/products/{id}``
  ("can return 404 when product is not available") and ``ProductUnavailable`` on order.
  A price below the cheapest offer or a quantity above the stock is also
  ``ProductUnavailable`` (``400``).
- New orders start ``processing`` with no keys and complete asynchronously: after
  ``late_keys_seconds`` (default :data:`DEFAULT_PROCESSING_SECONDS`; ``0`` completes at
  once), or for a pre-order ``preorder_release_seconds``, every key appears, the order
  turns ``completed`` and an ``order.status`` webhook goes to ``webhook_target``.
- One product line per order; at most 9 units (the documented per-offer limit).
- ``textQty`` is 0 for an image-keys product (``qty`` counts it); a ``keyType: text``
  order for it answers ``ProductUnavailable``, an order without ``keyType`` gets image
  keys.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.providers.http import parse_datetime
from core.providers.registry import SIMULATOR_KINGUIN_API_KEY, SIMULATOR_KINGUIN_WEBHOOK_SECRET
from keyshop.simulators.common import DropConnection, gate, read_json, survive_disconnect
from keyshop.simulators.state import (
    ProviderState,
    SimError,
    SimOrder,
    SimProduct,
    iso,
    money,
    utcnow,
)

NAME = "kinguin"
MAX_LIMIT = 100
DEFAULT_PROCESSING_SECONDS = 1.0

SEED_PRODUCTS = [
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c1",
        "Starfall Vanguard",
        Decimal("22.10"),
        40,
        "Steam",
        "REGION FREE",
        kinguin_id=100001,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c2",
        "Starfall Vanguard",
        Decimal("26.40"),
        25,
        "Xbox",
        "REGION FREE",
        kinguin_id=100002,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c3",
        "Hollow Tide",
        Decimal("13.50"),
        30,
        "GOG",
        "REGION FREE",
        kinguin_id=100003,
        image_keys=True,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c4",
        "Emberwake Chronicles",
        Decimal("31.00"),
        0,
        "Steam",
        "EUROPE",
        kinguin_id=100004,
        preorder=True,
        release_date=date(2031, 3, 14),
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c5",
        "Neon Drift Syndicate",
        Decimal("34.90"),
        12,
        "PlayStation",
        "EUROPE",
        kinguin_id=100005,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c6",
        "Quiet Meridian",
        Decimal("10.20"),
        50,
        "Nintendo",
        "EUROPE",
        kinguin_id=100006,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c7",
        "Iron Orchard",
        Decimal("20.00"),
        4,
        "Xbox",
        "UNITED STATES",
        kinguin_id=100007,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c8",
        "Ashen Lighthouse",
        Decimal("11.90"),
        70,
        "Epic Games",
        "REGION FREE",
        kinguin_id=100008,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2c9",
        "Copperline Express",
        Decimal("7.95"),
        90,
        "Steam",
        "REGION FREE",
        kinguin_id=100009,
    ),
    SimProduct(
        "5c9b5f6b2539a4e8f17ae2ca",
        "Paper Lantern Odyssey",
        Decimal("18.60"),
        0,
        "Nintendo",
        "EUROPE",
        kinguin_id=100010,
    ),
]
SEED_BALANCE = Decimal("1000.00")
# GET /v1/regions answers [{id, name}] (KG api/products/v1/README.md); the product's
# regionId is the id of its regionalLimitations here.
REGIONS = [
    {"id": 1, "name": "EUROPE"},
    {"id": 2, "name": "UNITED STATES"},
    {"id": 3, "name": "REGION FREE"},
]

_ORDER_ALPHABET = string.ascii_uppercase + string.digits


def _order_id() -> str:
    return "".join(secrets.choice(_ORDER_ALPHABET) for _ in range(11))


def new_state(knobs: dict[str, Any] | None = None) -> ProviderState:
    # New orders are processing and complete later (KG api/order/v2/README.md): keys
    # after DEFAULT_PROCESSING_SECONDS unless the knob says otherwise (0: at once).
    knobs = {
        "webhook_secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET,
        "late_keys_seconds": DEFAULT_PROCESSING_SECONDS,
        **(knobs or {}),
    }
    state = ProviderState(
        NAME, products=SEED_PRODUCTS, balance=SEED_BALANCE, order_id=_order_id, knobs=knobs
    )
    state.on_release = _on_release
    state.on_stock_change = _on_stock_change
    return state


# -- bodies ----------------------------------------------------------------------------


def error(request: Request, status: int, kind: str, detail: str, **context: Any) -> JSONResponse:
    body = {
        "kind": kind,
        "status": status,
        "title": kind,
        "detail": detail,
        "path": request.url.path,
        "method": request.method,
        "trace": secrets.token_hex(8),
        "timestamp": iso(utcnow()),
        **context,
    }
    return JSONResponse(body, status_code=status)


def offer_id_of(product_id: str, kinguin_id: int) -> str:
    """The simulated single offer of a product (a 24-hex-digit id, like Kinguin's)."""
    return f"{product_id[:16]}0ffe{kinguin_id:04d}"[:24]


def product_json(state: ProviderState, product: SimProduct) -> dict[str, Any]:
    qty = state.visible_stock(product)
    offer_id = offer_id_of(product.external_id, product.kinguin_id)
    preorder = state.is_preorder(product)
    return {
        "kinguinId": product.kinguin_id,
        "productId": product.external_id,
        # KG api/products/v1/README.md: name carries the platform suffix, originalName not
        "name": f"{product.name} {product.platform} CD Key",
        "originalName": product.name,
        "platform": product.platform,
        "regionId": next((r["id"] for r in REGIONS if r["name"] == product.region), 3),
        "regionalLimitations": product.region,
        "countryLimitation": [],
        "price": money(product.price),
        "qty": qty,
        "textQty": 0 if product.image_keys else qty,
        "totalQty": qty,
        "cheapestOfferId": [offer_id],
        "offersCount": 1,
        "offers": [
            {
                "offerId": offer_id,
                "name": product.name,
                "price": money(product.price),
                "qty": qty,
                "availableQty": qty,
                "textQty": 0 if product.image_keys else qty,
                "availableTextQty": 0 if product.image_keys else qty,
                "merchantName": "Simulated Merchant",
                "isPreorder": preorder,
                "releaseDate": product.release_date.isoformat() if product.release_date else None,
            }
        ],
        "isPreorder": preorder,
        "releaseDate": product.release_date.isoformat() if product.release_date else None,
        "activationDetails": "Redeem the key in the platform's client.",
        "images": {
            "cover": {"url": product.cover_url, "thumbnail": product.cover_url}
            if product.cover_url
            else None,
            "screenshots": [],
        },
        "updatedAt": iso(product.updated_at),
    }


def order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "orderId": order.order_id,
        "orderExternalId": order.reference,
        "status": order.status,
        "totalPrice": money(order.total),
        "requestTotalPrice": money((order.request_price or order.unit_price) * order.quantity),
        "paymentPrice": money(order.total),
        "totalQty": order.quantity,
        "isPreorder": order.preorder,
        "preorderReleaseDate": None,
        "createdAt": iso(order.created_at),
        "products": [
            {
                "kinguinId": order.kinguin_id,
                "productId": order.product_id,
                "offerId": offer_id_of(order.product_id, order.kinguin_id),
                "qty": order.quantity,
                "name": order.product_name,
                "price": money(order.unit_price),
                "requestPrice": money(order.request_price or order.unit_price),
                "totalPrice": money(order.total),
                "keyType": None if order.preorder else "text",
                "isPreorder": order.preorder,
                "releaseDate": None,
                "keys": [
                    {
                        "id": k.key_id,
                        "status": "RETURNED"
                        if order.returned and k.released
                        else ("DELIVERED" if k.released else "PROCESSING"),
                    }
                    for k in order.keys
                ],
            }
        ],
    }


def _unavailable_body() -> dict[str, Any]:
    return {
        "kind": "Http",
        "status": 503,
        "title": "Service Unavailable",
        "detail": "Service temporarily unavailable (simulated)",
    }


async def _guarded(state: ProviderState, request: Request) -> Response | None:
    early = await gate(state, _unavailable_body)
    if early is not None:
        return early
    if not secrets.compare_digest(request.headers.get("x-api-key", ""), SIMULATOR_KINGUIN_API_KEY):
        return JSONResponse(
            {
                "kind": "Authorization",
                "status": 401,
                "detail": "Invalid authentication data.",
                "type": "Unauthorized",
            },
            status_code=401,
        )
    return None


# KG api/products/v1/README.md: updatedSince/updatedTo in one of these formats only.
_TIME_FORMATS = [
    re.compile(r"\d{4}-\d{2}-\d{2}"),
    re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"),
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"),
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,6}Z"),
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}"),
]


def _documented_time(value: str | None) -> datetime | None:
    if not value or not any(f.fullmatch(value) for f in _TIME_FORMATS):
        return None
    return parse_datetime(value.replace(" ", "T"))


def _page(request: Request) -> tuple[int, int] | None:
    try:
        page = int(request.query_params.get("page") or 1)
        limit = int(request.query_params.get("limit") or 25)
    except ValueError:
        return None
    if page < 1 or not 1 <= limit <= MAX_LIMIT:
        return None
    return page, limit


# -- routes ----------------------------------------------------------------------------


def routes(state: ProviderState) -> list[Route]:
    async def products(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        paging = _page(request)
        if paging is None:
            return error(
                request,
                400,
                "ConstraintViolation",
                f"page must be >= 1 and limit between 1 and {MAX_LIMIT}",
                propertyPath="limit",
            )
        page, limit = paging
        q = request.query_params
        since = _documented_time(q.get("updatedSince"))
        until = _documented_time(q.get("updatedTo"))
        if (q.get("updatedSince") and since is None) or (q.get("updatedTo") and until is None):
            return error(
                request,
                400,
                "ConstraintViolation",
                "updatedSince/updatedTo: one of Y-m-d, Y-m-d H:i:s, Y-m-dTH:i:s, "
                "Y-m-dTH:i:s.uZ, Y-m-dTH:i:sP",
                propertyPath="updatedSince",
            )
        wanted_ids = {v for v in (q.get("productId") or "").split(",") if v}
        if q.get("name") is not None and len(q["name"]) < 3:
            return error(
                request,
                400,
                "ConstraintViolation",
                "name must have at least 3 characters",
                propertyPath="name",
            )
        with state.lock:
            items = sorted(state.products.values(), key=lambda p: p.kinguin_id)
            if since:
                items = [p for p in items if p.updated_at >= since]
            if until:
                items = [p for p in items if p.updated_at <= until]
            if wanted_ids:
                items = [p for p in items if p.external_id in wanted_ids]
            if q.get("name"):  # KG: at least 3 characters, matched within name
                needle = q["name"].lower()
                items = [p for p in items if needle in f"{p.name} {p.platform} CD Key".lower()]
            if q.get("platform"):
                items = [p for p in items if p.platform.lower() == q["platform"].lower()]
            if q.get("isPreorder") in ("yes", "no"):
                items = [p for p in items if state.is_preorder(p) == (q["isPreorder"] == "yes")]
            total = len(items)
            results = [product_json(state, p) for p in items[(page - 1) * limit : page * limit]]
        return JSONResponse({"results": results, "item_count": total})

    async def product_v2(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        pid = request.path_params["product_id"]
        with state.lock:
            found = state.products.get(pid)
            body = product_json(state, found) if found and not state.is_unavailable(pid) else None
        if body is None:
            return error(request, 404, "ProductUnavailable", "Product not found or not available")
        return JSONResponse(body)

    async def product_v1(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        kid = request.path_params["kinguin_id"]
        with state.lock:
            found = next((p for p in state.products.values() if str(p.kinguin_id) == kid), None)
            body = (
                product_json(state, found)
                if found and not state.is_unavailable(found.external_id)
                else None
            )
        if body is None:
            return error(request, 404, "ProductUnavailable", "Product not found or not available")
        return JSONResponse(body)

    async def regions(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        return JSONResponse(REGIONS)

    async def balance(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        with state.lock:
            return JSONResponse({"balance": money(state.balance)})

    async def create_order(request: Request) -> Response:
        state.count("order_requests")
        if (early := await _guarded(state, request)) is not None:
            return early
        body = await read_json(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("products"), list)
            or not body["products"]
        ):
            return error(
                request,
                400,
                "ConstraintViolation",
                "products must not be empty",
                propertyPath="products",
            )
        if len(body["products"]) != 1:
            return error(
                request,
                400,
                "ConstraintViolation",
                "The simulator takes one product per order",
                propertyPath="products",
            )
        line = body["products"][0]
        reference = str(body.get("orderExternalId") or "")
        try:
            qty = int(line.get("qty"))
            price = Decimal(str(line["price"]))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            return error(
                request,
                400,
                "ConstraintViolation",
                "qty and price are required",
                propertyPath="products[0]",
            )
        if not 1 <= qty <= 9:
            return error(
                request,
                400,
                "ConstraintViolation",
                "qty must be between 1 and 9",
                propertyPath="products[0].qty",
                invalidValue=qty,
            )
        key_type = line.get("keyType")
        if key_type is not None and key_type != "text":
            return error(
                request,
                400,
                "ConstraintViolation",
                "keyType accepts only text",
                propertyPath="products[0].keyType",
            )
        if state.take_drop_before_charge():
            return DropConnection()
        if reference:
            existing = state.order_for(reference)
            mode = state.knobs.duplicate_reference or "conflict"
            if existing is not None and mode == "existing":
                return JSONResponse(order_json(existing), status_code=200)
            if existing is not None and mode == "conflict":
                return error(
                    request,
                    409,
                    "ConstraintViolation",
                    "Order with this orderExternalId already exists",
                    propertyPath="orderExternalId",
                    invalidValue=reference,
                )
        with state.lock:
            product = state.products.get(str(line.get("productId") or ""))
            preorder = product is not None and state.is_preorder(product)
            image_only = product is not None and product.image_keys
        if preorder and key_type is not None:
            return error(request, 400, "Preorder", "keyType is not allowed for a pre-order")
        if image_only and key_type == "text":  # textQty 0: no offer has text keys
            return error(
                request, 400, "ProductUnavailable", "No offer matches the given price and quantity"
            )

        async def finish() -> Response:
            if state.knobs.timeout > 0:
                generation = state.generation
                await asyncio.sleep(state.knobs.timeout)
                if state.generation != generation:  # reset while hanging: forget this request
                    return DropConnection()
                if (
                    reference
                    and state.order_for(reference) is not None
                    and (state.knobs.duplicate_reference or "conflict") != "duplicate"
                ):
                    return error(
                        request,
                        409,
                        "ConstraintViolation",
                        "Order with this orderExternalId already exists",
                        propertyPath="orderExternalId",
                    )
            try:
                order = state.place_order(
                    reference=reference or _order_id(),
                    product_id=str(line.get("productId") or ""),
                    quantity=qty,
                    max_unit_price=price,
                    shortfall_as_preorder=False,
                )
            except SimError as exc:
                if exc.kind in ("unavailable", "stock", "price"):
                    return error(
                        request,
                        400,
                        "ProductUnavailable",
                        "No offer matches the given price and quantity",
                    )
                if exc.kind == "balance":
                    return error(request, 400, "InsufficientBalance", "Insufficient balance")
                return error(request, 400, "ConstraintViolation", exc.message)
            if state.knobs.crash_after_charge:
                return DropConnection()
            return JSONResponse(order_json(order), status_code=201)

        return await survive_disconnect(finish())

    async def search_orders(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        if state.knobs.fail_lookups:
            return JSONResponse(_unavailable_body(), status_code=503)
        paging = _page(request)
        if paging is None:
            return error(
                request,
                400,
                "ConstraintViolation",
                f"page must be >= 1 and limit between 1 and {MAX_LIMIT}",
            )
        page, limit = paging
        q = request.query_params
        with state.lock:
            found = sorted(state.orders.values(), key=lambda o: o.created_at)
            if q.get("orderExternalId"):
                found = [o for o in found if o.reference == q["orderExternalId"]]
            if q.get("orderId"):
                found = [o for o in found if o.order_id == q["orderId"]]
            if q.get("status"):
                found = [o for o in found if o.status == q["status"]]
            results = [order_json(o) for o in found[(page - 1) * limit : page * limit]]
        return JSONResponse({"results": results, "item_count": len(found)})

    async def get_order(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        with state.lock:
            order = state.orders.get(request.path_params["order_id"])
            body = order_json(order) if order else None
        if body is None:
            return error(request, 404, "OrderNotFound", "Order not found")
        return JSONResponse(body)

    async def keys(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        paging = _page(request)
        if paging is None:
            return error(
                request,
                400,
                "ConstraintViolation",
                f"page must be >= 1 and limit between 1 and {MAX_LIMIT}",
            )
        page, limit = paging
        with state.lock:
            order = state.orders.get(request.path_params["order_id"])
            if order is None:
                return error(request, 404, "OrderNotFound", "Order not found")
            released = [k for k in order.keys if k.released]
            items = [
                {
                    "id": k.key_id,
                    "serial": k.code,
                    "type": "image/png" if k.kind == "image" else "text/plain",
                    "name": order.product_name,
                    "kinguinId": order.kinguin_id,
                    "offerId": offer_id_of(order.product_id, order.kinguin_id),
                    "productId": order.product_id,
                }
                for k in released[(page - 1) * limit : page * limit]
            ]
        return JSONResponse(items)

    async def return_keys(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        order, refused = state.return_keys(request.path_params["order_id"])
        if order is None:
            return error(request, 404, "OrderNotFound", "Order not found")
        if refused is not None:
            return error(request, 400, "NoKeysToReturn", refused)
        return JSONResponse(
            [{"id": k.key_id, "status": "RETURNED"} for k in order.keys if k.released]
        )

    return [
        Route("/v1/products", products, methods=["GET"]),
        Route("/v1/products/{kinguin_id}", product_v1, methods=["GET"]),
        Route("/v2/products/{product_id}", product_v2, methods=["GET"]),
        Route("/v1/regions", regions, methods=["GET"]),
        Route("/v1/balance", balance, methods=["GET"]),
        Route("/v2/order", create_order, methods=["POST"]),
        Route("/v1/order", search_orders, methods=["GET"]),
        Route("/v1/order/{order_id}", get_order, methods=["GET"]),
        Route("/v2/order/{order_id}/keys", keys, methods=["GET"]),
        Route("/v2/order/{order_id}/keys/return", return_keys, methods=["POST"]),
    ]


# -- webhooks --------------------------------------------------------------------------


def _headers(state: ProviderState, event: str) -> dict[str, str]:
    return {"X-Event-Name": event, "X-Event-Secret": state.knobs.webhook_secret}


def _on_release(state: ProviderState, payload: Any) -> None:
    order, _released = payload
    body = {
        "orderId": order.order_id,
        "orderExternalId": order.reference,
        "status": order.status,
        "updatedAt": iso(order.updated_at),
    }
    state.deliver("order.status", _headers(state, "order.status"), body)


def _on_stock_change(state: ProviderState, product: Any) -> None:
    with state.lock:
        data = product_json(state, product)
    body = {
        k: data[k]
        for k in ("kinguinId", "productId", "qty", "textQty", "cheapestOfferId", "updatedAt")
    }
    state.deliver("product.update", _headers(state, "product.update"), body)
