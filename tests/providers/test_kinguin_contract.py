"""Kinguin contract tests: the client fed the documented requests and responses, no
simulator involved, so a change that drifts from the documented contract fails here.

Every fixture is transcribed from shared/docs/providers.md §1 (which cites Kinguin's
documentation repository ``kinguinltdhk/Kinguin-eCommerce-API`` at 1430fa2); the file
named in each comment is the KG source. Elided ids in the documentation ("5c9b…") are
filled in with ids of the same shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from core.providers.base import (
    Absent,
    Found,
    InsufficientBalance,
    OutOfStock,
    ProviderAuthError,
    ProviderRejected,
    ProviderTransientError,
)
from core.providers.kinguin import (
    KinguinClient,
    OrderStatusEvent,
    ProductUpdateEvent,
    parse_webhook,
)

NOW = datetime(2026, 12, 5, tzinfo=UTC)

# KG api/products/v1/README.md, Product and Offer fields
PRODUCT = {
    "kinguinId": 1949,
    "productId": "5c9b5f6b2539a4e8f17ae2c1",
    "name": "Counter-Strike: Source Steam CD Key",
    "originalName": "Counter-Strike: Source",
    "platform": "Steam",
    "regionId": 3,
    "regionalLimitations": "REGION FREE",
    "countryLimitation": [],
    "price": 5.79,
    "qty": 12,
    "textQty": 10,
    "totalQty": 14,
    "cheapestOfferId": ["5f7e3c1d2b4a5e6f7a8b9c0d"],
    "offers": [
        {
            "offerId": "5f7e3c1d2b4a5e6f7a8b9c0d",
            "name": "Counter-Strike: Source Steam CD Key",
            "price": 5.79,
            "qty": 12,
            "availableQty": 12,
            "textQty": 10,
            "availableTextQty": 10,
            "merchantName": "Merchant",
            "isPreorder": False,
            "releaseDate": "2004-11-01",
        }
    ],
    "offersCount": 1,
    "isPreorder": False,
    "releaseDate": "2004-11-01",
    "images": {
        "screenshots": [],
        "cover": {
            "url": "https://static.kinguin.net/media/images/products/cover.jpg",
            "thumbnail": "https://static.kinguin.net/media/images/products/cover-thumb.jpg",
        },
    },
    "updatedAt": "2024-06-18T10:00:00+00:00",
}
# KG api/order/v2/README.md, "Place an order" request example
ORDER_REQUEST = {
    "products": [
        {
            "productId": "5c9b5f6b2539a4e8f17ae2c1",
            "qty": 1,
            "price": 5.79,
            "keyType": "text",
            "offerId": "5f7e3c1d2b4a5e6f7a8b9c0d",
        }
    ],
    "orderExternalId": "my-unique-ref",
}
# KG api/order/v2/README.md and api/order/v1/README.md, Order object
ORDER = {
    "orderId": "PHS84FJAG5U",
    "orderExternalId": "my-unique-ref",
    "status": "completed",
    "totalPrice": 5.79,
    "requestTotalPrice": 5.79,
    "paymentPrice": 5.79,
    "totalQty": 1,
    "isPreorder": False,
    "preorderReleaseDate": None,
    "createdAt": "2024-06-18T10:00:00+00:00",
    "products": [
        {
            "kinguinId": 1949,
            "productId": "5c9b5f6b2539a4e8f17ae2c1",
            "offerId": "5f7e3c1d2b4a5e6f7a8b9c0d",
            "qty": 1,
            "name": "Counter-Strike: Source Steam CD Key",
            "price": 5.79,
            "requestPrice": 5.79,
            "totalPrice": 5.79,
            "keyType": "text",
            "isPreorder": False,
            "releaseDate": "2004-11-01",
            "keys": [{"id": "k1", "status": "DELIVERED"}],
        }
    ],
}
# KG api/order/v2/README.md, GET /v2/order/{orderId}/keys
KEYS = [
    {
        "id": "k1",
        "serial": "AAAAA-BBBBB-CCCCC",
        "type": "text/plain",
        "name": "Counter-Strike: Source Steam CD Key",
        "kinguinId": 1949,
        "offerId": "5f7e3c1d2b4a5e6f7a8b9c0d",
        "productId": "5c9b5f6b2539a4e8f17ae2c1",
    }
]
# KG api/README.md, bad key
UNAUTHORIZED = {
    "kind": "Authorization",
    "status": 401,
    "detail": "Invalid authentication data.",
    "type": "Unauthorized",
}


def client(routes: dict[tuple[str, str], httpx.Response], seen: list[httpx.Request] | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        key = (request.method, request.url.path)
        if key not in routes:
            raise AssertionError(f"undocumented request {key}")
        return routes[key]

    return KinguinClient(
        "https://gateway.kinguin.net/esa/api", "key", 1.0, transport=httpx.MockTransport(handler)
    )


def test_place_an_order_sends_the_documented_request_and_reads_the_order() -> None:
    seen: list[httpx.Request] = []
    kg = client(
        {
            ("GET", "/esa/api/v2/products/5c9b5f6b2539a4e8f17ae2c1"): httpx.Response(
                200, json=PRODUCT
            ),
            ("POST", "/esa/api/v2/order"): httpx.Response(201, json=ORDER),
            ("GET", "/esa/api/v2/order/PHS84FJAG5U/keys"): httpx.Response(200, json=KEYS),
        },
        seen,
    )
    result = kg.purchase(
        reference="my-unique-ref",
        external_id="5c9b5f6b2539a4e8f17ae2c1",
        quantity=1,
        max_unit_cost_minor=579,
        currency="EUR",
    )
    sent = json.loads(next(r for r in seen if r.method == "POST").content)
    documented = ORDER_REQUEST["products"][0]
    line = sent["products"][0]
    assert sent["orderExternalId"] == ORDER_REQUEST["orderExternalId"]
    assert set(line) <= set(documented)  # offerId is optional (not for wholesale)
    assert {k: line[k] for k in ("productId", "qty", "price", "keyType")} == {
        k: documented[k] for k in ("productId", "qty", "price", "keyType")
    }
    assert all(r.headers["X-Api-Key"] == "key" for r in seen)
    assert (result.provider_order_id, result.state, result.total_cost_minor) == (
        "PHS84FJAG5U",
        "completed",
        579,
    )
    assert [k.code for k in result.keys] == ["AAAAA-BBBBB-CCCCC"]


def test_product_fields() -> None:
    offer = client(
        {
            ("GET", "/esa/api/v2/products/5c9b5f6b2539a4e8f17ae2c1"): httpx.Response(
                200, json=PRODUCT
            )
        }
    ).get_offer("5c9b5f6b2539a4e8f17ae2c1")
    assert (offer.name, offer.title, offer.cost_minor, offer.stock) == (
        "Counter-Strike: Source Steam CD Key",
        "Counter-Strike: Source",
        579,
        10,
    )  # textQty
    assert (offer.platform, offer.region) == ("Steam", "REGION FREE")
    assert offer.cover_url == "https://static.kinguin.net/media/images/products/cover.jpg"


def test_balance() -> None:
    # KG api/balance/v1/README.md
    kg = client({("GET", "/esa/api/v1/balance"): httpx.Response(200, json={"balance": 12.45})})
    assert kg.balance().amount_minor == 1245


def test_order_search_by_external_id() -> None:
    # KG api/order/v1/README.md: GET /v1/order searches by orderExternalId
    found = client(
        {
            ("GET", "/esa/api/v1/order"): httpx.Response(
                200, json={"results": [ORDER], "item_count": 1}
            ),
            ("GET", "/esa/api/v2/order/PHS84FJAG5U/keys"): httpx.Response(200, json=KEYS),
        }
    ).find_purchase(reference="my-unique-ref", placed_at=NOW)
    assert isinstance(found, Found) and found.purchase.provider_order_id == "PHS84FJAG5U"
    empty = client(
        {("GET", "/esa/api/v1/order"): httpx.Response(200, json={"results": [], "item_count": 0})}
    )
    assert isinstance(empty.find_purchase(reference="my-unique-ref", placed_at=NOW), Absent)


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [  # KG api/ErrorsCodes.md
        (401, "Authorization", ProviderAuthError),
        (400, "InsufficientBalance", InsufficientBalance),
        (400, "ProductUnavailable", OutOfStock),
        (400, "ConstraintViolation", ProviderRejected),
        (422, "OrderFailed", ProviderRejected),
        (400, "Preorder", ProviderRejected),
        (409, "ResourceLock", ProviderTransientError),
    ],
)
def test_documented_error_kinds(status: int, kind: str, error: type) -> None:
    body = (
        UNAUTHORIZED
        if kind == "Authorization"
        else {"kind": kind, "status": status, "title": kind, "detail": "documented error"}
    )
    kg = client({("GET", "/esa/api/v1/balance"): httpx.Response(status, json=body)})
    with pytest.raises(error):
        kg.balance()


def test_webhook_bodies() -> None:
    # KG features/Webhooks.md
    update = parse_webhook(
        {"X-Event-Name": "product.update"},
        {
            "kinguinId": 1949,
            "productId": "5c9b5f6b2539a4e8f17ae2c1",
            "qty": 12,
            "textQty": 10,
            "cheapestOfferId": ["5f7e3c1d2b4a5e6f7a8b9c0d"],
            "updatedAt": "2024-06-18T10:00:00+00:00",
        },
    )
    assert isinstance(update, ProductUpdateEvent) and (update.qty, update.text_qty) == (12, 10)
    status = parse_webhook(
        {"X-Event-Name": "order.status"},
        {
            "orderId": "PHS84FJAG5U",
            "orderExternalId": "my-unique-ref",
            "status": "completed",
            "updatedAt": "2024-06-18T10:00:00+00:00",
        },
    )
    assert isinstance(status, OrderStatusEvent) and status.order_external_id == "my-unique-ref"


def test_key_returns() -> None:
    # KG features/ReturnKeys.md: POST /v2/order/{orderId}/keys/return → [{id, status}]
    kg = client(
        {
            ("POST", "/esa/api/v2/order/PHS84FJAG5U/keys/return"): httpx.Response(
                200, json=[{"id": "k1", "status": "RETURNED"}]
            )
        }
    )
    assert kg.return_keys(provider_order_id="PHS84FJAG5U") == ["k1"]
