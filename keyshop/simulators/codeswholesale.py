"""Simulated CodesWholesale API v2 (docs/providers.md §2), mounted at ``/codeswholesale``.

Choices where the real API is undocumented (the clients must cope either way):

- Tokens live ``token_ttl_seconds`` (default 300 s); an unknown or expired token gets
  ``401 {"error": "invalid_token"}``. Credentials are read from an ``Authorization:
  Basic`` header (the official SDK's way, with ``scope``; counted in
  ``stats.basic_auth_headers``), the form body or the query string (community SDKs).
- A product listed in the ``out_of_stock`` knob is "not in the price list":
  ``404`` code ``20001``. A real shortage (stock below the quantity) becomes pre-ordered
  codes when ``allowPreOrder`` is true, else ``400`` "Not enough quantity in stock".
- The same ``orderId`` (our reference) twice places and charges a second order by
  default (knob ``duplicate_reference``: ``duplicate``; ``existing`` answers the first
  order, ``conflict`` a 409): no source says CW de-duplicates (providers.md,
  Corrections), so the simulator assumes it does not.
- Several ``products[]`` lines per order, all or nothing (CWSDK ``OrderRequest``).
- Order ``status`` is ``Completed`` or ``Processing`` (CW's real values are unconfirmed).
- Codes carry ``links`` with ``rel=self`` (absolute, to ``/v2/codes/{codeId}``), and
  repeated slashes in a path are tolerated (``/v2//orders``), as the SDK's requests
  show the real server does (CWSDK ``Code.php``, ``Order::getOrder``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.providers.codeswholesale_postbacks import postback_hash
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_ID,
    SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
    SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
    SIMULATOR_PATHS,
)
from keyshop.simulators.common import DropConnection, gate, read_json, survive_disconnect
from keyshop.simulators.state import (
    ProviderState,
    SimError,
    SimKey,
    SimOrder,
    SimProduct,
    iso,
    money,
)

NAME = "codeswholesale"

# Stable ids. The first four are CodesWholesale's own sandbox test products (§2.4).
SEED_PRODUCTS = [
    SimProduct(
        "ffe2274d-5469-4b0f-b57b-f8d21b09c24c",
        "Starfall Vanguard",
        Decimal("21.50"),
        50,
        "Steam",
        "WORLDWIDE",
    ),
    SimProduct(
        "6313677f-5219-47e4-a067-7401f55c5a3a",
        "Hollow Tide",
        Decimal("12.90"),
        30,
        "GOG",
        "WORLDWIDE",
        image_keys=True,
    ),
    SimProduct(
        "33e3e81d-2b78-475a-8886-9848116f5133",
        "Emberwake Chronicles",
        Decimal("29.99"),
        0,
        "Steam",
        "EU",
        preorder=True,
        release_date=date(2031, 3, 14),
    ),
    SimProduct(
        "04aeaf1e-f7b5-4ba9-ba19-91003a04db0a",
        "Neon Drift Syndicate",
        Decimal("33.00"),
        20,
        "PlayStation",
        "EU",
        always_low_balance=True,
    ),
    SimProduct(
        "0c4a6f1e-3b7d-4e52-9a41-5d2f8c6b7e01",
        "Quiet Meridian",
        Decimal("9.80"),
        40,
        "Nintendo",
        "EU",
    ),
    SimProduct(
        "1d5b7a2f-4c8e-4f63-8b52-6e3a9d7c8f02", "Iron Orchard", Decimal("19.40"), 0, "Xbox", "US"
    ),
    SimProduct(
        "2e6c8b3a-5d9f-4a74-9c63-7f4b0e8d9a03",
        "Ashen Lighthouse",
        Decimal("11.25"),
        60,
        "Epic Games",
        "WORLDWIDE",
    ),
    SimProduct(
        "3f7d9c4b-6e0a-4b85-8d74-8a5c1f9e0b04",
        "Copperline Express",
        Decimal("7.60"),
        80,
        "Steam",
        "WORLDWIDE",
    ),
    SimProduct(
        "4a8e0d5c-7f1b-4c96-9e85-9b6d2a0f1c05",
        "Gloamreach",
        Decimal("24.00"),
        15,
        "Battle.net",
        "EU",
    ),
    SimProduct(
        "5b9f1e6d-8a2c-4da7-8f96-0c7e3b1a2d06",
        "Clockwork Harvest",
        Decimal("14.70"),
        3,
        "Steam",
        "WORLDWIDE",
    ),
]
SEED_BALANCE = Decimal("1000.00")


def new_state(knobs: dict[str, Any] | None = None) -> ProviderState:
    state = ProviderState(
        NAME,
        products=SEED_PRODUCTS,
        balance=SEED_BALANCE,
        order_id=lambda: str(uuid.uuid4()),
        knobs=knobs,
    )
    state.on_release = _on_release
    state.on_stock_change = _on_stock_change
    return state


# -- bodies ----------------------------------------------------------------------------


def error(status: int, message: str, code: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "status": status,
        "message": message,
        "developerMessage": message,
        "moreInfo": None,
    }
    if code is not None:
        body["code"] = code
    return JSONResponse(body, status_code=status)


def _unavailable_body() -> dict[str, Any]:
    return {"status": 503, "message": "Service temporarily unavailable (simulated)"}


_SPELLINGS = {
    "v2": ("status", {"text": "Text code", "image": "Image code", "preorder": "Pre-ordered code"}),
    "v1": ("codeType", {"text": "CODE_TEXT", "image": "CODE_IMAGE", "preorder": "CODE_PREORDER"}),
    "v3": ("codeType", {"text": "CODE_TEXT", "image": "CODE_IMAGE", "preorder": "PRE_ORDER"}),
}


def code_json(state: ProviderState, key: SimKey, *, with_code: bool = True) -> dict[str, Any]:
    field_name, values = _SPELLINGS[state.knobs.code_spelling]
    kind = "preorder" if not key.released else key.kind
    return {
        "codeId": key.key_id,
        field_name: values[kind],
        "code": (key.code or "") if with_code else "",
        "filename": key.filename if key.released and key.kind == "image" else None,
        # CWSDK Code.php / Resource.php: an empty code is fetched through rel=self
        "links": [{"rel": "self", "href": f"{state.base_url}/v2/codes/{key.key_id}"}],
    }


def order_json(state: ProviderState, order: SimOrder, *, with_codes: bool = True) -> dict[str, Any]:
    empty = state.knobs.empty_codes
    lines = state.members(order)
    return {
        "orderId": order.order_id,
        "clientOrderId": order.reference,
        "totalPrice": money(sum((line.total for line in lines), Decimal(0))),
        "status": "Completed" if all(line.complete for line in lines) else "Processing",
        "createdOn": iso(order.created_at),
        "products": [
            {
                "productId": line.product_id,
                "name": line.product_name,
                "unitPrice": money(line.unit_price),
                "codes": [
                    code_json(state, k, with_code=with_codes and not empty) for k in line.keys
                ],
            }
            for line in lines
        ],
    }


def product_json(state: ProviderState, product: SimProduct) -> dict[str, Any]:
    return {
        "productId": product.external_id,
        "identifier": product.external_id[:8],
        "name": product.name,
        "platform": product.platform,
        "regions": [product.region],
        "languages": ["en"],
        "quantity": state.visible_stock(product),
        "prices": [
            {"from": 1, "to": 9, "value": money(product.price)},
            {"from": 10, "to": None, "value": money(product.price * Decimal("0.97"))},
        ],
        "releaseDate": product.release_date.isoformat() if product.release_date else None,
        "images": [{"format": "MEDIUM", "image": product.cover_url}] if product.cover_url else [],
        "links": [],
    }


# -- auth ------------------------------------------------------------------------------


def _authorised(state: ProviderState, request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    with state.lock:
        expiry = state.tokens.get(token)
    if not token or expiry is None or expiry < time.monotonic():
        return JSONResponse(
            {"error": "invalid_token", "error_description": "Invalid access token"}, status_code=401
        )
    return None


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


async def _guarded(state: ProviderState, request: Request) -> Response | None:
    state.base_url = f"{request.url.scheme}://{request.url.netloc}{SIMULATOR_PATHS[NAME]}"
    return await gate(state, _unavailable_body) or _authorised(state, request)


# -- routes ----------------------------------------------------------------------------


def routes(state: ProviderState) -> list[Route]:
    async def token(request: Request) -> Response:
        state.count("token_requests")
        if request.headers.get("authorization", "").lower().startswith("basic "):
            state.count("basic_auth_headers")
        early = await gate(state, _unavailable_body)
        if early is not None:
            return early
        raw = (await request.body()).decode("utf-8", "replace")
        params = dict(request.query_params) | dict(parse_qsl(raw))
        basic = _basic_credentials(request.headers.get("authorization", ""))
        if basic is not None:  # the official SDK's way (CWSDK GrantTypeBase::getToken)
            params["client_id"], params["client_secret"] = basic
        if params.get("grant_type") != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                status_code=400,
            )
        if not (
            secrets.compare_digest(params.get("client_id", ""), SIMULATOR_CODESWHOLESALE_CLIENT_ID)
            and secrets.compare_digest(
                params.get("client_secret", ""), SIMULATOR_CODESWHOLESALE_CLIENT_SECRET
            )
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Bad client credentials"},
                status_code=401,
            )
        ttl = state.knobs.token_ttl_seconds
        value = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[value] = time.monotonic() + ttl
            state.stats["tokens_issued"] += 1
        if state.knobs.token_shape == "wrapper":
            return JSONResponse(
                {
                    "value": value,
                    "expiresIn": ttl,
                    "expiration": None,
                    "tokenType": "bearer",
                    "expired": False,
                }
            )
        return JSONResponse(
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": ttl,
                "scope": "administration",
            }
        )

    async def products(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        with state.lock:
            items = [
                product_json(state, p)
                for p in sorted(state.products.values(), key=lambda p: p.external_id)
            ]
        size = state.knobs.page_size
        if size <= 0:
            return JSONResponse({"items": items})
        start = int(request.query_params.get("continuationToken") or 0)
        page = items[start : start + size]
        following = start + size
        return JSONResponse(
            {"items": page, "continuationToken": str(following) if following < len(items) else None}
        )

    async def product(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        pid = request.path_params["product_id"]
        with state.lock:
            found = state.products.get(pid)
            body = product_json(state, found) if found and not state.is_unavailable(pid) else None
        if body is None:
            return error(404, "Product not found in the price list", 20001)
        return JSONResponse(body)

    async def account(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        with state.lock:
            balance = state.balance
        return JSONResponse(
            {
                "fullName": "keyshop simulator",
                "email": "simulator@keyshop.invalid",
                "currentBalance": money(balance),
                "currentCredit": 0.0,
                "totalToUse": money(balance),
            }
        )

    async def create_order(request: Request) -> Response:
        state.count("order_requests")
        if (early := await _guarded(state, request)) is not None:
            return early
        body = await read_json(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("products"), list)
            or not body["products"]
            or not all(isinstance(item, dict) for item in body["products"])
        ):
            return error(400, "Expected entries in products", 40001)
        reference = str(body.get("orderId") or "") or str(uuid.uuid4())
        # several products[] lines in one order (CWSDK OrderRequest, CWFW PurchaseCode)
        lines: list[tuple[str, int, Decimal | None]] = []
        for line in body["products"]:
            try:
                quantity = int(line.get("quantity", 1))
                max_price = Decimal(str(line["price"])) if line.get("price") is not None else None
            except (TypeError, ValueError, InvalidOperation):
                return error(400, "Invalid quantity or price", 40001)
            if quantity < 1:
                return error(400, "Quantity less than 1", 40002)
            lines.append((str(line.get("productId") or ""), quantity, max_price))
        if state.take_drop_before_charge():
            return DropConnection()

        async def finish() -> Response:
            if state.knobs.timeout > 0:
                generation = state.generation
                await asyncio.sleep(state.knobs.timeout)
                if state.generation != generation:  # reset while hanging: forget this request
                    return DropConnection()
            existing = state.order_for(reference)
            mode = state.knobs.duplicate_reference or "duplicate"
            if existing is not None and mode == "existing":
                return JSONResponse(order_json(state, existing))
            if existing is not None and mode == "conflict":
                return error(409, "Order with this orderId already exists")
            try:
                order = state.place_lines(
                    reference=reference,
                    lines=lines,
                    shortfall_as_preorder=bool(body.get("allowPreOrder", False)),
                )
            except SimError as exc:
                if exc.kind == "unavailable":
                    return error(404, "Product not found in the price list", 20001)
                if exc.kind == "balance":
                    return error(400, "Balance too low", 10002)
                if exc.kind == "stock":
                    return error(400, "Not enough quantity in stock")
                if exc.kind == "price":
                    return error(400, "Product price is higher than the price to validate")
                return error(400, exc.message)
            if state.knobs.crash_after_charge:
                return DropConnection()
            return JSONResponse(order_json(state, order))

        return await survive_disconnect(finish())

    async def order_history(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        if state.knobs.fail_lookups:
            return JSONResponse(_unavailable_body(), status_code=503)
        try:
            start = date.fromisoformat(request.query_params.get("startFrom") or "1970-01-01")
            end = date.fromisoformat(request.query_params.get("endOn") or "9999-12-31")
        except ValueError:
            return error(400, "startFrom and endOn must be YYYY-MM-DD", 40001)
        if end - start > timedelta(days=31):
            return error(400, "The date range may span at most 31 days", 40001)
        with state.lock:
            items = [
                {k: v for k, v in order_json(state, o, with_codes=False).items() if k != "products"}
                for o in state.orders.values()
                if o.part_of is None and start <= o.created_at.date() <= end
            ]
        return JSONResponse({"items": items})

    async def order_detail(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        with state.lock:
            order = state.orders.get(request.path_params["order_id"])
            if order is not None and order.part_of is not None:
                order = None  # a line's own id is not an order id
            body = order_json(state, order) if order else None
        if body is None:
            return error(404, "Order not found", 50001)
        return JSONResponse(body)

    async def code(request: Request) -> Response:
        if (early := await _guarded(state, request)) is not None:
            return early
        code_id = request.path_params["code_id"]
        with state.lock:
            key = next(
                (k for o in state.orders.values() for k in o.keys if k.key_id == code_id), None
            )
            body = code_json(state, key) if key else None
        if body is None:
            return error(404, "Code not found", 50002)
        return JSONResponse(body)

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/v2/products", products, methods=["GET"]),
        Route("/v2/products/{product_id}", product, methods=["GET"]),
        Route("/v2/accounts/current", account, methods=["GET"]),
        Route("/v2/orders", create_order, methods=["POST"]),
        Route("/v2/orders", order_history, methods=["GET"]),
        Route("/v2/orders/{order_id}", order_detail, methods=["GET"]),
        Route("/v2/codes/{code_id}", code, methods=["GET"]),
    ]


# -- postbacks -------------------------------------------------------------------------


def auth_hash() -> str:
    return postback_hash(
        SIMULATOR_CODESWHOLESALE_CLIENT_ID, SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE
    )


def _on_release(state: ProviderState, payload: Any) -> None:
    order, released = payload
    for key in released:
        state.deliver(
            "PREORDER",
            {},
            {
                "type": "PREORDER",
                "authHash": auth_hash(),
                "orderId": order.part_of or order.order_id,
                "codeId": key.key_id,
            },
        )


def _on_stock_change(state: ProviderState, product: Any) -> None:
    with state.lock:
        body = product_json(state, product)
    prices = [
        {
            "priceRangeLabel": f"{p['from']}-{p['to']}" if p["to"] else f"{p['from']}+",
            "price": p["value"],
        }
        for p in body["prices"]
    ]
    state.deliver(
        "STOCK",
        {},
        {
            "type": "STOCK",
            "authHash": auth_hash(),
            "products": [
                {"productId": body["productId"], "quantity": body["quantity"], "prices": prices}
            ],
        },
    )
