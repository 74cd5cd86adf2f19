"""Kinguin client against the simulator (and MockTransport for exact spellings)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from core.providers.base import (
    Absent,
    Found,
    InsufficientBalance,
    OutOfStock,
    ProviderAuthError,
    ProviderClient,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderTransientError,
    PurchaseResult,
    Unclear,
)
from core.providers.kinguin import (
    KinguinClient,
    OrderStatusEvent,
    OtherEvent,
    ProductUpdateEvent,
    WebhookPayloadError,
    parse_webhook,
    verify_webhook,
)
from core.providers.registry import SIMULATOR_KINGUIN_API_KEY, SIMULATOR_KINGUIN_WEBHOOK_SECRET
from keyshop.simulators import SimulatorServer
from tests.providers.conftest import CLIENT_TIMEOUT, HELD, Receiver

P = "kinguin"
TEXT = "5c9b5f6b2539a4e8f17ae2c1"
IMAGE = "5c9b5f6b2539a4e8f17ae2c3"
PREORDER = "5c9b5f6b2539a4e8f17ae2c4"
FEW = "5c9b5f6b2539a4e8f17ae2c7"  # stock 4
EMPTY = "5c9b5f6b2539a4e8f17ae2ca"  # stock 0
NOW = datetime.now(UTC)


def found_purchase(client: KinguinClient, reference: str) -> PurchaseResult:
    lookup = client.find_purchase(reference=reference, placed_at=NOW)
    assert isinstance(lookup, Found), lookup
    return lookup.purchase


def buy(
    client: KinguinClient, reference: str, product: str = TEXT, quantity: int = 1, **kw: object
):
    return client.purchase(
        reference=reference,
        external_id=product,
        quantity=quantity,
        max_unit_cost_minor=kw.pop("max_unit_cost_minor", 5000),  # type: ignore[arg-type]
        currency="EUR",
        **kw,  # type: ignore[arg-type]
    )


def test_client_satisfies_the_protocol(kg: KinguinClient) -> None:
    assert isinstance(kg, ProviderClient)
    assert kg.name == "kinguin"
    assert SIMULATOR_KINGUIN_API_KEY not in repr(kg)


def test_bad_api_key_is_an_auth_error(sim: SimulatorServer) -> None:
    client = KinguinClient(sim.provider_url(P), "not-the-key", CLIENT_TIMEOUT)
    with pytest.raises(ProviderAuthError) as info:
        client.balance()
    assert "Invalid authentication data" in str(info.value)
    assert "not-the-key" not in str(info.value)


# -- catalogue --------------------------------------------------------------------------------


def test_list_offers_pages_through_everything(sim: SimulatorServer, kg: KinguinClient) -> None:
    for n in range(195):
        sim.add_product(P, external_id=f"extra{n:019d}", name=f"Extra {n}", price="3.10", stock=n)
    offers = list(kg.list_offers())
    assert len(offers) == 205
    assert len({o.external_id for o in offers}) == 205
    text = next(o for o in offers if o.external_id == TEXT)
    assert (text.cost_minor, text.stock, text.currency, text.region) == (
        2210,
        40,
        "EUR",
        "REGION FREE",
    )
    assert text.updated_at is not None and text.updated_at.tzinfo is not None


def test_list_offers_updated_since(sim: SimulatorServer, kg: KinguinClient) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)  # the change below comes after it
    sim.add_product(P, external_id=TEXT, stock=7)
    offers = list(kg.list_offers(updated_since=since))
    # sent to the second (floored): products changed earlier in that second may come too
    assert (TEXT, 7) in [(o.external_id, o.stock) for o in offers]
    assert list(kg.list_offers(updated_since=datetime.now(UTC) + timedelta(hours=1))) == []


def test_updated_since_is_sent_in_a_documented_format() -> None:
    """Documented formats only: Y-m-d, Y-m-d H:i:s, Y-m-dTH:i:s, Y-m-dTH:i:s.uZ,
    Y-m-dTH:i:sP (KG api/products/v1/README.md; providers.md, Corrections). Python's
    isoformat() with microseconds and +00:00 is none of them."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["updatedSince"])
        return httpx.Response(200, json={"results": [], "item_count": 0})

    client = KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))
    since = datetime(2026, 12, 5, 7, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert list(client.list_offers(updated_since=since)) == []
    assert sent == ["2026-12-05T05:30:15"]  # UTC, no fraction, no offset


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2026-12-05", True),
        ("2026-12-05 05:30:15", True),
        ("2026-12-05T05:30:15", True),
        ("2026-12-05T05:30:15.123Z", True),
        ("2026-12-05T05:30:15+00:00", True),
        ("2026-12-05T05:30:15.123456+00:00", False),
        ("yesterday", False),
    ],
)
def test_simulator_accepts_only_the_documented_updated_since_formats(
    sim: SimulatorServer, value: str, accepted: bool
) -> None:
    with httpx.Client(timeout=2) as http:
        answer = http.get(
            sim.provider_url(P) + "/v1/products",
            params={"updatedSince": value},
            headers={"X-Api-Key": SIMULATOR_KINGUIN_API_KEY},
        )
    assert (answer.status_code == 200) == accepted, answer.text


def test_offer_title_is_the_original_name(sim: SimulatorServer, kg: KinguinClient) -> None:
    """name carries the platform suffix ("... Steam CD Key"); the base title is
    originalName (KG api/products/v1/README.md; providers.md, Corrections)."""
    offer = kg.get_offer(TEXT)
    assert offer.name != offer.title and offer.name.startswith(offer.title)
    assert offer.title == "Starfall Vanguard" and offer.name == "Starfall Vanguard Steam CD Key"


def test_get_offer_and_unavailable_product(sim: SimulatorServer, kg: KinguinClient) -> None:
    assert kg.get_offer(PREORDER).is_preorder
    with pytest.raises(OutOfStock):
        kg.get_offer("no-such-product")


def test_balance(kg: KinguinClient) -> None:
    assert kg.balance().amount_minor == 100000
    buy(kg, "k-balance", quantity=2)
    assert kg.balance().amount_minor == 100000 - 2 * 2210


# -- purchases --------------------------------------------------------------------------------


def test_purchase_text_keys(kg: KinguinClient) -> None:
    result = buy(kg, "k-text", quantity=3)
    assert result.state == "completed" and not result.preorder
    assert result.reference == "k-text" and result.quantity == 3
    assert result.total_cost_minor == 3 * 2210
    assert len(result.keys) == 3 and all(k.code and not k.image for k in result.keys)


def test_purchase_image_keys_are_decoded_bytes(sim: SimulatorServer, kg: KinguinClient) -> None:
    # image keys come only without keyType: a pre-order (ordered without it)
    sim.add_product(
        P,
        external_id="img-pre",
        name="Pictured",
        price="5.00",
        stock=3,
        preorder=True,
        image_keys=True,
    )
    sim.control(P, preorder_release_seconds=0.1)
    placed = buy(kg, "k-image", product="img-pre")
    deadline = time.monotonic() + 15
    result = kg.fetch_keys(provider_order_id=placed.provider_order_id, reference="k-image")
    while not result.keys and time.monotonic() < deadline:
        time.sleep(0.05)
        result = kg.fetch_keys(provider_order_id=placed.provider_order_id, reference="k-image")
    (key,) = result.keys
    assert key.image is not None and key.image.startswith(b"\x89PNG")
    assert key.image_type == "image/png" and key.code is None


def test_text_stock_is_text_qty(sim: SimulatorServer, kg: KinguinClient) -> None:
    """keyType text guarantees text keys; the stock for that is textQty, not qty
    (KG features/KeyType.md, api/products/v1/README.md; providers.md, Corrections)."""
    offer = kg.get_offer(IMAGE)  # image keys only: qty 30, textQty 0
    assert offer.stock == 0
    assert kg.get_offer(TEXT).stock == 40


def test_a_text_key_order_for_an_image_only_product_is_refused(
    sim: SimulatorServer, kg: KinguinClient
) -> None:
    with pytest.raises(OutOfStock):
        buy(kg, "k-image-text", product=IMAGE)
    assert sim.orders(P) == []


def test_at_most_nine_units_per_order(sim: SimulatorServer, kg: KinguinClient) -> None:
    """At most 9 units per offer in one order (KG api/order/v2/README.md)."""
    assert kg.max_units_per_purchase == 9
    with pytest.raises(ProviderRejected):
        buy(kg, "k-ten", quantity=10)
    assert sim.orders(P) == []


def test_preorder_processing_then_keys_then_order_status_webhook(
    sim: SimulatorServer, kg: KinguinClient, receiver: Receiver
) -> None:
    # released when the test says so: a timer would race the purchase on a loaded machine
    sim.control(P, webhook_target=receiver.url, preorder_release_seconds=HELD)
    # the simulator refuses keyType on a pre-order, so this also proves the client left it out
    result = buy(kg, "k-pre", product=PREORDER)
    assert (result.state, result.preorder, result.keys) == ("pending", True, [])
    sim.release(P, result.provider_order_id)
    call = receiver.wait_for(lambda c: c.headers.get("X-Event-Name") == "order.status")
    assert verify_webhook(call.headers, SIMULATOR_KINGUIN_WEBHOOK_SECRET)
    event = parse_webhook(call.headers, json.dumps(call.body).encode())
    assert isinstance(event, OrderStatusEvent)
    assert (event.order_id, event.order_external_id, event.status) == (
        result.provider_order_id,
        "k-pre",
        "completed",
    )
    assert event.updated_at is not None and event.updated_at.tzinfo is not None
    later = kg.fetch_keys(provider_order_id=result.provider_order_id, reference="k-pre")
    assert later.state == "completed" and len(later.keys) == 1


def test_late_keys_fill_the_keys_endpoint(
    sim: SimulatorServer, kg: KinguinClient, receiver: Receiver
) -> None:
    sim.control(P, webhook_target=receiver.url, late_keys_seconds=HELD, webhook_secret="s3cret")
    result = buy(kg, "k-late", quantity=2)
    assert result.state == "pending" and not result.keys and not result.preorder
    sim.release(P, result.provider_order_id)
    call = receiver.wait_for(lambda c: c.body.get("orderExternalId") == "k-late")
    assert call.headers["X-Event-Secret"] == "s3cret"
    assert not verify_webhook(call.headers, SIMULATOR_KINGUIN_WEBHOOK_SECRET)
    found = found_purchase(kg, "k-late")
    assert found.state == "completed" and len(found.keys) == 2


def test_preorder_refused_when_not_allowed(sim: SimulatorServer, kg: KinguinClient) -> None:
    with pytest.raises(ProviderRejected):
        buy(kg, "k-nopre", product=PREORDER, allow_preorder=False)
    assert sim.orders(P) == []


def test_out_of_stock(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, out_of_stock=[TEXT])
    with pytest.raises(OutOfStock):
        buy(kg, "k-oos")  # 404 on the product
    with pytest.raises(OutOfStock):
        buy(kg, "k-empty", product=EMPTY)  # ProductUnavailable on the order
    with pytest.raises(OutOfStock):
        buy(kg, "k-short", product=FEW, quantity=5)
    with pytest.raises(OutOfStock):
        buy(kg, "k-price", product=FEW, max_unit_cost_minor=1999)  # cheapest offer is 20.00
    assert sim.orders(P) == []


def test_low_balance(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, balance="5.00")
    with pytest.raises(InsufficientBalance):
        buy(kg, "k-low")
    assert sim.orders(P) == []


def test_503_is_transient(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, error_rate=1.0)
    with pytest.raises(ProviderTransientError) as info:
        kg.balance()
    assert type(info.value) is ProviderTransientError
    with pytest.raises(ProviderTransientError) as info:
        buy(kg, "k-503")  # the product lookup fails first: nothing was ordered
    assert type(info.value) is ProviderTransientError


def test_error_rate_is_seeded(sim: SimulatorServer, kg: KinguinClient) -> None:
    def pattern() -> list[bool]:
        sim.control(P, error_rate=0.5, seed=7)
        out = []
        for _ in range(12):
            try:
                kg.balance()
                out.append(True)
            except ProviderTransientError:
                out.append(False)
        return out

    first = pattern()
    assert first == pattern() and True in first and False in first


def test_hang_is_an_unknown_outcome(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, timeout=3.0)
    with pytest.raises(ProviderOutcomeUnknown):
        buy(kg, "k-hang")
    # the provider finished the order after our timeout: asking by reference finds it
    deadline = time.monotonic() + 15
    lookup = kg.find_purchase(reference="k-hang", placed_at=NOW)
    while not isinstance(lookup, Found) and time.monotonic() < deadline:
        time.sleep(0.1)
        lookup = kg.find_purchase(reference="k-hang", placed_at=NOW)
    assert isinstance(lookup, Found) and lookup.purchase.state == "completed"
    assert len(sim.orders(P)) == 1


def test_crash_after_charge_then_find_purchase(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, crash_after_charge=True)
    with pytest.raises(ProviderOutcomeUnknown):
        buy(kg, "k-crash", quantity=2)
    sim.control(P, crash_after_charge=False)
    found = found_purchase(kg, "k-crash")
    assert found.state == "completed" and len(found.keys) == 2
    assert [o["reference"] for o in sim.orders(P)] == ["k-crash"]
    assert kg.balance().amount_minor == 100000 - 2 * 2210
    assert isinstance(kg.find_purchase(reference="k-never", placed_at=NOW), Absent)


def test_a_failed_lookup_is_unclear_never_absent(sim: SimulatorServer, kg: KinguinClient) -> None:
    sim.control(P, fail_lookups=True)
    assert isinstance(kg.find_purchase(reference="k-never", placed_at=NOW), Unclear)
    sim.control(P, fail_lookups=False, error_rate=1.0)
    assert isinstance(kg.find_purchase(reference="k-never", placed_at=NOW), Unclear)


def test_reference_exists_but_lookup_is_empty_is_an_unknown_outcome() -> None:
    """Kinguin says the orderExternalId exists, yet the search finds nothing: an order
    may exist, so this is an unknown outcome, never a rejection (providers.md,
    Corrections: KG duplicate orderExternalId)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/products/"):
            return httpx.Response(200, json={"productId": "p1", "price": 5.0, "isPreorder": False})
        if request.url.path == "/v2/order":
            return httpx.Response(
                400,
                json={
                    "kind": "ConstraintViolation",
                    "status": 400,
                    "detail": "Order with this orderExternalId already exists",
                    "propertyPath": "orderExternalId",
                },
            )
        if request.url.path == "/v1/order":
            return httpx.Response(200, json={"results": [], "item_count": 0})
        raise AssertionError(request.url.path)

    client = KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))
    with pytest.raises(ProviderOutcomeUnknown, match="came back empty"):
        buy(client, "k-dup", product="p1")


def test_search_answering_other_orders_is_unclear() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"orderId": "O1", "orderExternalId": "x"}]})

    client = KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))
    assert isinstance(client.find_purchase(reference="mine", placed_at=NOW), Unclear)


@pytest.mark.parametrize("mode", ["conflict", "existing"])
def test_same_reference_twice_buys_once(sim: SimulatorServer, kg: KinguinClient, mode: str) -> None:
    sim.control(P, duplicate_reference=mode)
    first = buy(kg, "k-twice")
    second = buy(kg, "k-twice")
    assert first.provider_order_id == second.provider_order_id
    assert [k.code for k in first.keys] == [k.code for k in second.keys]
    assert len(sim.orders(P)) == 1


# -- error mapping (exact bodies) ------------------------------------------------------------


def _mock(status: int, body: object, *, product_status: int = 200) -> KinguinClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/v2/products/"):
            if product_status != 200:
                return httpx.Response(product_status, json=body)
            return httpx.Response(
                200,
                json={"productId": "p1", "name": "P", "price": 5.0, "qty": 3, "isPreorder": False},
            )
        return httpx.Response(status, json=body)

    return KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"kind": "ProductUnavailable", "status": 400, "detail": "No offers"}, OutOfStock),
        (
            400,
            {"kind": "InsufficientBalance", "status": 400, "detail": "Not enough funds"},
            InsufficientBalance,
        ),
        (
            400,
            {"kind": "BalanceRequired", "status": 400, "detail": "Balance required"},
            InsufficientBalance,
        ),
        (
            401,
            {
                "kind": "Authorization",
                "status": 401,
                "detail": "Invalid authentication data.",
                "type": "Unauthorized",
            },
            ProviderAuthError,
        ),
        (
            400,
            {
                "kind": "ConstraintViolation",
                "status": 400,
                "detail": "qty",
                "propertyPath": "products[0].qty",
            },
            ProviderRejected,
        ),
        (
            400,
            {"kind": "Preorder", "status": 400, "detail": "Only one pre-order"},
            ProviderRejected,
        ),
        (400, {"kind": "OrderNotSupported", "status": 400, "detail": "legacy"}, ProviderRejected),
        (
            429,
            {"kind": "Http", "status": 429, "detail": "Too Many Requests"},
            ProviderTransientError,
        ),
        (500, {"kind": "Error", "status": 500, "detail": "Internal"}, ProviderOutcomeUnknown),
        (503, {"kind": "Http", "status": 503, "detail": "Unavailable"}, ProviderOutcomeUnknown),
    ],
)
def test_order_error_bodies(status: int, body: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        buy(_mock(status, body), "k-x", product="p1")
    assert type(info.value) is error


def test_order_failed_keeps_the_detail() -> None:
    body = {
        "kind": "OrderFailed",
        "status": 422,
        "detail": "There was a problem with placing order",
    }
    with pytest.raises(ProviderRejected) as info:
        buy(_mock(422, body), "k-failed", product="p1")
    assert "There was a problem with placing order" in str(info.value)


def test_404_on_the_product_is_out_of_stock() -> None:
    with pytest.raises(OutOfStock):
        buy(
            _mock(404, {"kind": "Http", "status": 404, "detail": "Not Found"}, product_status=404),
            "k-404",
            product="p1",
        )


def test_find_purchase_accepts_a_bare_list() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/order":
            return httpx.Response(
                200,
                json=[
                    {"orderId": "O1", "orderExternalId": "other"},
                    {
                        "orderId": "O2",
                        "orderExternalId": "mine",
                        "status": "canceled",
                        "totalQty": 1,
                    },
                ],
            )
        raise AssertionError("a canceled order has no keys to fetch")

    client = KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))
    found = found_purchase(client, "mine")
    assert found.provider_order_id == "O2" and found.state == "failed"


def test_keys_are_paged() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/order/O1":
            return httpx.Response(
                200,
                json={
                    "orderId": "O1",
                    "orderExternalId": "r",
                    "status": "completed",
                    "totalQty": 150,
                },
            )
        page = int(request.url.params["page"])
        assert request.url.params["limit"] == "100"
        count = 100 if page == 1 else 50
        return httpx.Response(
            200,
            json=[
                {"id": f"{page}-{n}", "serial": f"S{page}{n}", "type": "text/plain"}
                for n in range(count)
            ],
        )

    client = KinguinClient("https://kg.test", "key", 1.0, transport=httpx.MockTransport(handler))
    result = client.fetch_keys(provider_order_id="O1", reference="r")
    assert result.state == "completed" and len(result.keys) == 150


# -- webhooks ---------------------------------------------------------------------------------


def test_verify_webhook() -> None:
    assert verify_webhook({"X-Event-Secret": "abc"}, "abc")
    assert verify_webhook({"x-event-secret": "abc"}, "abc")
    assert verify_webhook(httpx.Headers({"X-EVENT-SECRET": "abc"}), "abc")
    assert not verify_webhook({"X-Event-Secret": "abd"}, "abc")
    assert not verify_webhook({}, "abc")
    assert not verify_webhook({"X-Event-Secret": ""}, "")
    assert not verify_webhook({"X-Event-Secret": "abc"}, None)


def test_parse_webhook() -> None:
    event = parse_webhook(
        {"X-Event-Name": "product.update"},
        b'{"kinguinId": 5, "productId": "p5", "qty": 2, "textQty": 1, "cheapestOfferId": ["o1"], "updatedAt": "2024-06-18T10:00:00+00:00"}',
    )
    assert isinstance(event, ProductUpdateEvent)
    assert (
        event.kinguin_id,
        event.product_id,
        event.qty,
        event.text_qty,
        event.cheapest_offer_ids,
    ) == (5, "p5", 2, 1, ["o1"])
    assert event.updated_at == datetime(2024, 6, 18, 10, tzinfo=UTC)
    status = parse_webhook(
        {"x-event-name": "order.status"},
        {
            "orderId": "O",
            "orderExternalId": "r",
            "status": "refunded",
            "updatedAt": "2024-06-18T10:00:00Z",
        },
    )
    assert (
        isinstance(status, OrderStatusEvent)
        and status.status == "refunded"
        and status.updated_at is not None
    )
    other = parse_webhook({"X-Event-Name": "order.complete"}, b"{}")  # deprecated name
    assert isinstance(other, OtherEvent) and other.name == "order.complete"
    with pytest.raises(WebhookPayloadError):
        parse_webhook({"X-Event-Name": "order.status"}, b"not json")


def test_product_update_webhook_on_stock_change(
    sim: SimulatorServer, kg: KinguinClient, receiver: Receiver
) -> None:
    sim.control(P, webhook_target=receiver.url, notify_stock=True)
    buy(kg, "k-stock", quantity=2)
    call = receiver.wait_for(lambda c: c.headers.get("X-Event-Name") == "product.update")
    event = parse_webhook(call.headers, call.body)
    assert isinstance(event, ProductUpdateEvent) and (event.product_id, event.qty) == (TEXT, 38)


# -- secrets ----------------------------------------------------------------------------------


def test_key_codes_and_api_key_never_in_errors_or_logs(
    sim: SimulatorServer, kg: KinguinClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    codes = [k.code for k in buy(kg, "k-secret", quantity=3).keys]
    codes += [k.code for k in buy(kg, "k-secret").keys]
    messages = []
    for knobs in ({"crash_after_charge": True}, {"balance": "0"}, {"timeout": 3.0}):
        sim.reset(P)
        sim.control(P, **knobs)
        with pytest.raises(Exception) as info:
            buy(kg, "k-secret-2")
        messages.append(str(info.value))
    text = caplog.text + "\n".join(messages) + json.dumps(sim.orders(P))
    assert codes and all(c and c not in text for c in codes)
    assert SIMULATOR_KINGUIN_API_KEY not in text


def _products(sim: SimulatorServer, **params: str) -> httpx.Response:
    with httpx.Client(timeout=2) as http:
        return http.get(
            sim.provider_url(P) + "/v1/products",
            params=params,
            headers={"X-Api-Key": SIMULATOR_KINGUIN_API_KEY},
        )


def test_simulator_filters_by_name_and_platform(sim: SimulatorServer) -> None:
    """GET /v1/products filters name (at least 3 characters) and platform
    (KG api/products/v1/README.md)."""
    names = {
        (p["originalName"], p["platform"])
        for p in _products(sim, name="Starfall").json()["results"]
    }
    assert names == {("Starfall Vanguard", "Steam"), ("Starfall Vanguard", "Xbox")}
    xbox = _products(sim, name="Starfall", platform="Xbox").json()["results"]
    assert [p["platform"] for p in xbox] == ["Xbox"]
    assert _products(sim, name="St").status_code == 400


def test_simulator_regions_and_offer_ids(sim: SimulatorServer, kg: KinguinClient) -> None:
    with httpx.Client(timeout=2) as http:
        regions = http.get(
            sim.provider_url(P) + "/v1/regions", headers={"X-Api-Key": SIMULATOR_KINGUIN_API_KEY}
        ).json()
    assert {"id", "name"} <= set(regions[0]) and "REGION FREE" in {r["name"] for r in regions}
    product = _products(sim, productId=TEXT).json()["results"][0]
    assert product["regionId"] in {r["id"] for r in regions}
    placed = buy(kg, "k-offer")
    with httpx.Client(timeout=2) as http:
        order = http.get(
            sim.provider_url(P) + f"/v1/order/{placed.provider_order_id}",
            headers={"X-Api-Key": SIMULATOR_KINGUIN_API_KEY},
        ).json()
    assert order["products"][0]["offerId"] == product["cheapestOfferId"][0]


def test_orders_complete_asynchronously_by_default() -> None:
    """New orders are processing and complete later (KG api/order/v2/README.md)."""
    with SimulatorServer() as fresh_sim:
        client = KinguinClient(fresh_sim.provider_url(P), SIMULATOR_KINGUIN_API_KEY, 2.0)
        try:
            placed = buy(client, "k-async")
            assert (placed.state, placed.keys) == ("pending", [])
            deadline = time.monotonic() + 5
            later = client.fetch_keys(
                provider_order_id=placed.provider_order_id, reference="k-async"
            )
            while later.state != "completed" and time.monotonic() < deadline:
                time.sleep(0.1)
                later = client.fetch_keys(
                    provider_order_id=placed.provider_order_id, reference="k-async"
                )
            assert later.state == "completed" and len(later.keys) == 1
        finally:
            client.close()


def test_key_returns(sim: SimulatorServer, kg: KinguinClient) -> None:
    """POST /v2/order/{orderId}/keys/return: once per order, within 24 hours, never a
    pre-order; the balance is refunded (KG features/ReturnKeys.md)."""
    before = kg.balance().amount_minor
    placed = buy(kg, "k-return", quantity=2)
    assert kg.balance().amount_minor == before - 2 * 2210
    returned = kg.return_keys(provider_order_id=placed.provider_order_id)
    assert sorted(returned) == sorted(k.external_id for k in placed.keys)
    assert kg.balance().amount_minor == before
    with pytest.raises(ProviderRejected, match="NoKeysToReturn"):
        kg.return_keys(provider_order_id=placed.provider_order_id)  # one request per order
    sim.control(P, return_window_seconds=0)
    late = buy(kg, "k-too-late")
    with pytest.raises(ProviderRejected, match="NoKeysToReturn"):
        kg.return_keys(provider_order_id=late.provider_order_id)
