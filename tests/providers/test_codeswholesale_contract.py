"""CodesWholesale contract tests: the client fed the documented requests and responses,
no simulator involved, so a change that drifts from the documented contract fails here.

Every fixture is transcribed from shared/docs/providers.md §2 (which cites the official
PHP SDK ``codeswholesale/codeswholesale-sdk-php`` at 039ae99, the extension framework
and community SDKs); the source of each is named in its comment. Elided ids in the
documentation ("6313677f-…") are completed with the sandbox product ids of §2.4.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import httpx
import pytest

from core.providers.base import Found, InsufficientBalance, OutOfStock, ProviderRejected
from core.providers.codeswholesale import CodesWholesaleClient
from core.providers.codeswholesale_postbacks import (
    PreorderPostback,
    StockPostback,
    parse_postback,
    verify_postback,
)

NOW = datetime(2026, 12, 5, tzinfo=UTC)
IMAGE_PRODUCT = "6313677f-5219-47e4-a067-7401f55c5a3a"  # CWSDK examples/V1/create-order.php

# Java AccessToken.java / C# TokenResponse.cs: access_token, token_type, expires_in
TOKEN = {"access_token": "documented-token", "token_type": "bearer", "expires_in": 3600}
# fefrik/codeswholesale-v3 TokenNormalizer.php: the wrapper shape
TOKEN_WRAPPER = {
    "value": "wrapped-token",
    "expiresIn": 3600,
    "expiration": None,
    "tokenType": "bearer",
    "expired": False,
}
# CWSDK Resource/OrderRequest.php, ProductEntryRequest.php: POST /v2/orders
ORDER_REQUEST = {
    "allowPreOrder": True,
    "orderId": "<your own order id>",
    "products": [{"productId": IMAGE_PRODUCT, "quantity": 2, "price": 9.99}],
}
# CWSDK Order.php, ProductResponse.php, Code.php: the order answer
ORDER = {
    "orderId": "cw-order-1",
    "clientOrderId": "<your own order id>",
    "totalPrice": 19.98,
    "status": "Completed",
    "createdOn": "2024-06-18T10:00:00Z",
    "products": [
        {
            "productId": IMAGE_PRODUCT,
            "unitPrice": 9.99,
            "codes": [
                {
                    "codeId": "c1",
                    "code": "iVBORw0KGgo=",
                    "filename": "c1.png",
                    "links": [],
                    "status": "Image code",
                },
                {
                    "codeId": "c2",
                    "code": "",
                    "filename": None,
                    "links": [
                        {"rel": "self", "href": "https://api.codeswholesale.com/v2/codes/c2"}
                    ],
                    "status": "Pre-ordered code",
                },
            ],
        }
    ],
}
# CWSDK Client.php: GET /v2/accounts/current
ACCOUNT = {
    "fullName": "Shop",
    "email": "shop@example.com",
    "currentBalance": 123.45,
    "currentCredit": 0,
    "totalToUse": 123.45,
}
# CWSDK Resource/Product.php: a price-list product
PRODUCT = {
    "productId": IMAGE_PRODUCT,
    "identifier": "ABC",
    "name": "Documented Game",
    "platform": "Steam",
    "regions": ["WORLDWIDE"],
    "languages": ["Multilanguage"],
    "quantity": 7,
    "prices": [{"from": 1, "to": 9, "value": 9.99}, {"from": 10, "to": None, "value": 9.49}],
    "images": [{"format": "SMALL", "image": "https://img"}],
    "releaseDate": "2014-01-01",
    "links": [],
}


def client(routes: dict[tuple[str, str], httpx.Response], seen: list[httpx.Request] | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json=TOKEN)
        key = (request.method, request.url.path)
        if key not in routes:
            raise AssertionError(f"undocumented request {key}")
        return routes[key]

    return CodesWholesaleClient(
        "https://api.codeswholesale.com",
        "id",
        "secret",
        "sig",
        1.0,
        transport=httpx.MockTransport(handler),
    )


def test_create_order_sends_the_documented_request_and_reads_the_answer() -> None:
    seen: list[httpx.Request] = []
    cw = client({("POST", "/v2/orders"): httpx.Response(200, json=ORDER)}, seen)
    result = cw.purchase(
        reference="<your own order id>",
        external_id=IMAGE_PRODUCT,
        quantity=2,
        max_unit_cost_minor=999,
        currency="EUR",
        allow_preorder=True,
    )
    sent = json.loads(next(r for r in seen if r.url.path == "/v2/orders").content)
    assert sent == ORDER_REQUEST
    assert (
        next(r for r in seen if r.url.path == "/v2/orders").headers["authorization"]
        == "Bearer documented-token"
    )
    assert (result.provider_order_id, result.reference, result.total_cost_minor) == (
        "cw-order-1",
        "<your own order id>",
        1998,
    )
    assert result.state == "pending" and result.preorder  # one code is still a pre-order
    [image] = result.keys
    assert (
        image.image is not None
        and image.image.startswith(b"\x89PNG")
        and image.image_type == "image/png"
    )


def test_the_wrapper_token_shape_is_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json=TOKEN_WRAPPER)
        assert request.headers["authorization"] == "Bearer wrapped-token"
        return httpx.Response(200, json=ACCOUNT)

    cw = CodesWholesaleClient(
        "https://api.codeswholesale.com",
        "id",
        "secret",
        "sig",
        1.0,
        transport=httpx.MockTransport(handler),
    )
    assert cw.balance().amount_minor == 12345


def test_price_list_product() -> None:
    offer = client(
        {("GET", f"/v2/products/{IMAGE_PRODUCT}"): httpx.Response(200, json=PRODUCT)}
    ).get_offer(IMAGE_PRODUCT)
    assert (offer.name, offer.cost_minor, offer.stock, offer.region) == (
        "Documented Game",
        999,
        7,
        "WORLDWIDE",
    )
    assert offer.cover_url == "https://img"


def test_history_lookup_matches_the_client_order_id() -> None:
    # CWSDK Order::getHistory: GET /v2/orders?startFrom=YYYY-MM-DD&endOn=YYYY-MM-DD
    history = {"items": [{k: v for k, v in ORDER.items() if k != "products"}]}
    found = client(
        {
            ("GET", "/v2/orders"): httpx.Response(200, json=history),
            ("GET", "/v2/orders/cw-order-1"): httpx.Response(200, json=ORDER),
            ("GET", "/v2/codes/c2"): httpx.Response(
                200, json={"codeId": "c2", "code": "", "status": "Pre-ordered code"}
            ),
        }
    ).find_purchase(reference="<your own order id>", placed_at=NOW)
    assert isinstance(found, Found) and found.purchase.provider_order_id == "cw-order-1"


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [  # CWSDK examples/create-order.php; CWFW src/Errors/Errors.php
        (400, 10002, InsufficientBalance),
        (404, 20001, OutOfStock),
        (400, 40002, ProviderRejected),
    ],
)
def test_documented_error_codes(status: int, code: int, error: type) -> None:
    body = {
        "status": status,
        "code": code,
        "message": "documented",
        "developerMessage": "",
        "moreInfo": None,
    }
    cw = client({("POST", "/v2/orders"): httpx.Response(status, json=body)})
    with pytest.raises(error):
        cw.purchase(
            reference="r",
            external_id=IMAGE_PRODUCT,
            quantity=1,
            max_unit_cost_minor=999,
            currency="EUR",
        )


def test_postbacks() -> None:
    # CWSDK Client::handle(), Util/HashingUtil.php: authHash = sha256(clientId + signature)
    auth = hashlib.sha256(b"idsig").hexdigest()
    assert verify_postback({"type": "STOCK", "authHash": auth}, "id", "sig")
    # CWFW stock handler: products[{productId, quantity, prices[{priceRangeLabel, price}]}]
    stock = parse_postback(
        {
            "type": "STOCK",
            "authHash": auth,
            "products": [
                {
                    "productId": IMAGE_PRODUCT,
                    "quantity": 5,
                    "prices": [
                        {"priceRangeLabel": "100+", "price": 8.5},
                        {"priceRangeLabel": "1-9", "price": 9.99},
                    ],
                }
            ],
        }
    )
    assert isinstance(stock, StockPostback) and str(stock.products[0].unit_price()) == "9.99"
    # CWSDK AssignedPreOrder (v2 reads orderId)
    pre = parse_postback({"type": "PREORDER", "authHash": auth, "orderId": "cw-order-1"})
    assert isinstance(pre, PreorderPostback) and pre.order_id == "cw-order-1"
