"""CodesWholesale client against the simulator (and MockTransport for exact spellings)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

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
    Unclear,
)
from core.providers.codeswholesale import CodesWholesaleClient
from core.providers.codeswholesale_postbacks import (
    OtherPostback,
    PreorderPostback,
    ProductPostback,
    StockPostback,
    parse_postback,
    postback_hash,
    verify_postback,
)
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_ID as CLIENT_ID,
)
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_SECRET as CLIENT_SECRET,
)
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE as SIGNATURE,
)
from keyshop.simulators import SimulatorServer
from tests.providers.conftest import CLIENT_TIMEOUT, HELD, Receiver
from tests.support.waiting import wait_for

P = "codeswholesale"
NOW = datetime.now(UTC)
TEXT = "ffe2274d-5469-4b0f-b57b-f8d21b09c24c"
IMAGE = "6313677f-5219-47e4-a067-7401f55c5a3a"
PREORDER = "33e3e81d-2b78-475a-8886-9848116f5133"
LOW_BALANCE = "04aeaf1e-f7b5-4ba9-ba19-91003a04db0a"
FEW = "5b9f1e6d-8a2c-4da7-8f96-0c7e3b1a2d06"  # stock 3


def buy(
    client: CodesWholesaleClient,
    reference: str,
    product: str = TEXT,
    quantity: int = 1,
    **kw: object,
):
    return client.purchase(
        reference=reference,
        external_id=product,
        quantity=quantity,
        max_unit_cost_minor=kw.pop("max_unit_cost_minor", 5000),  # type: ignore[arg-type]
        currency="EUR",
        **kw,  # type: ignore[arg-type]
    )


def test_client_satisfies_the_protocol(cw: CodesWholesaleClient) -> None:
    assert isinstance(cw, ProviderClient)
    assert cw.name == "codeswholesale"
    assert CLIENT_SECRET not in repr(cw)


# -- OAuth -------------------------------------------------------------------------------


def test_token_credentials_go_in_the_body_first(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    cw.balance()
    stats = sim.stats(P)
    assert stats["token_requests"] == 1
    assert stats["basic_auth_headers"] == 0


def test_simulator_accepts_the_official_sdks_basic_auth_token_request(sim: SimulatorServer) -> None:
    """The official PHP SDK sends the credentials in an Authorization: Basic header with
    grant_type and scope in the form (CWSDK GrantTypeBase::getToken; providers.md,
    Corrections): a real endpoint accepts it, so the simulator must too."""
    basic = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)
    with httpx.Client(base_url=sim.provider_url(P), timeout=2) as http:
        answer = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "administration"},
            auth=basic,
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        assert (
            http.get(
                "/v2/accounts/current", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        wrong = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=httpx.BasicAuth(CLIENT_ID, "wrong"),
        )
        assert wrong.status_code == 401
    assert sim.stats(P)["basic_auth_headers"] == 2


def test_token_request_is_a_form_post_with_scope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t1", "expires_in": 3600})
        return httpx.Response(200, json={"currentBalance": 12.5})

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    assert client.balance().amount_minor == 1250
    token_request = seen[0]
    assert "authorization" not in token_request.headers
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(token_request.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "secret",
        "scope": "administration",
    }
    assert seen[1].headers["authorization"] == "Bearer t1"


def test_a_server_that_wants_basic_auth_gets_it() -> None:
    """Credentials in the body first (golang/oauth2 lists CW as needing them there); a
    server that refuses them as invalid_client is asked again the official SDK's way."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            if not request.headers.get("authorization", "").startswith("Basic "):
                return httpx.Response(401, json={"error": "invalid_client"})
            return httpx.Response(200, json={"access_token": "t2", "expires_in": 3600})
        return httpx.Response(200, json={"currentBalance": 1})

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    assert client.balance().amount_minor == 100
    assert [r.url.path for r in seen] == ["/oauth/token", "/oauth/token", "/v2/accounts/current"]
    basic = seen[1]
    assert basic.headers["authorization"] == httpx.BasicAuth("id", "secret")._auth_header
    assert dict(httpx.QueryParams(basic.content.decode())) == {
        "grant_type": "client_credentials",
        "scope": "administration",
    }
    client._token = None  # the next token request goes the way that worked
    client.balance()
    assert seen[3].headers["authorization"].startswith("Basic ")


def test_token_is_cached(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    cw.balance()
    list(cw.list_offers())
    cw.get_offer(TEXT)
    assert sim.stats(P)["tokens_issued"] == 1


def test_token_renewed_shortly_before_expiry(sim: SimulatorServer) -> None:
    now = [1000.0]  # the client's clock, moved by the test
    sim.control(P, token_ttl_seconds=300)  # renewed 30 s (10 %) before it expires
    cw = CodesWholesaleClient(
        sim.provider_url(P), CLIENT_ID, CLIENT_SECRET, SIGNATURE, CLIENT_TIMEOUT,
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        cw.balance()
        now[0] += 269
        cw.balance()
        assert sim.stats(P)["tokens_issued"] == 1
        now[0] += 2
        cw.balance()
        assert sim.stats(P)["tokens_issued"] == 2
    finally:
        cw.close()


def test_invalid_token_renews_once_and_retries(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    cw.balance()
    sim.control(P, revoke_tokens=True)
    result = buy(cw, "ref-after-revoke")
    assert result.state == "completed"
    assert sim.stats(P)["tokens_issued"] == 2
    assert len(sim.orders(P)) == 1


def test_wrapper_token_shape(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    sim.control(P, token_shape="wrapper")
    assert cw.balance().currency == "EUR"


def test_persistent_invalid_token_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"value": "t", "expiresIn": 60})
        return httpx.Response(
            401,
            json={
                "error": "invalid_token",
                "error_description": "The access token provided is invalid",
            },
        )

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ProviderAuthError):
        client.balance()


def test_bad_credentials_are_an_auth_error(sim: SimulatorServer) -> None:
    client = CodesWholesaleClient(
        sim.provider_url(P), CLIENT_ID, "wrong-secret", SIGNATURE, CLIENT_TIMEOUT
    )
    with pytest.raises(ProviderAuthError) as info:
        client.balance()
    assert "wrong-secret" not in str(info.value)


# -- catalogue and balance -------------------------------------------------------------------


def test_list_offers_reads_the_default_price_tier_and_stock(cw: CodesWholesaleClient) -> None:
    offers = {o.external_id: o for o in cw.list_offers()}
    assert len(offers) == 10
    text = offers[TEXT]
    assert (text.cost_minor, text.stock, text.currency, text.platform) == (2150, 50, "EUR", "Steam")
    assert offers[PREORDER].is_preorder and offers[PREORDER].release_date is not None


def test_list_offers_follows_continuation_tokens(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, page_size=3)
    ids = [o.external_id for o in cw.list_offers()]
    assert len(ids) == len(set(ids)) == 10


def test_get_offer_and_delisted_product(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    assert cw.get_offer(IMAGE).name == "Hollow Tide"
    sim.control(P, out_of_stock=[IMAGE])
    with pytest.raises(OutOfStock):
        cw.get_offer(IMAGE)


def test_balance_is_charged_per_order(cw: CodesWholesaleClient) -> None:
    before = cw.balance()
    assert before.amount_minor == 100000
    buy(cw, "ref-charge", quantity=2)
    assert cw.balance().amount_minor == 100000 - 2 * 2150


# -- purchases --------------------------------------------------------------------------------


def test_purchase_text_keys(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    result = buy(cw, "ref-text", quantity=2)
    assert result.state == "completed" and not result.preorder
    assert result.reference == "ref-text"
    assert result.quantity == 2 and result.total_cost_minor == 4300
    assert len(result.keys) == 2 and all(k.code and k.image is None for k in result.keys)
    assert len({k.code for k in result.keys}) == 2
    assert result.keys[0].code not in repr(result)


def test_purchase_image_keys_are_decoded_bytes(cw: CodesWholesaleClient) -> None:
    result = buy(cw, "ref-image", product=IMAGE)
    (key,) = result.keys
    assert key.code is None and key.image is not None
    assert key.image.startswith(b"\x89PNG") and key.image_type == "image/png"


@pytest.mark.parametrize("spelling", ["v1", "v2", "v3"])
def test_every_code_type_spelling(
    sim: SimulatorServer, cw: CodesWholesaleClient, spelling: str
) -> None:
    sim.control(P, code_spelling=spelling)
    assert buy(cw, f"ref-{spelling}-img", product=IMAGE).keys[0].image
    pending = buy(cw, f"ref-{spelling}-pre", product=PREORDER)
    assert pending.state == "pending" and pending.preorder and not pending.keys


def test_empty_code_is_fetched_from_the_codes_endpoint(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, empty_codes=True)
    result = buy(cw, "ref-empty", quantity=2)
    assert result.state == "completed"
    assert all(k.code for k in result.keys)
    assert sim.stats(P)["requests"] >= 1 + 1 + 2  # token, order, two code fetches


def test_preorder_pending_then_postback_then_keys(
    sim: SimulatorServer, cw: CodesWholesaleClient, receiver: Receiver
) -> None:
    # released when the test says so: a timer would race the purchase on a loaded machine
    sim.control(P, webhook_target=receiver.url, preorder_release_seconds=HELD)
    result = buy(cw, "ref-pre", product=PREORDER)
    assert (result.state, result.preorder, result.keys) == ("pending", True, [])
    sim.release(P, result.provider_order_id)
    call = receiver.wait_for(lambda c: c.body.get("type") == "PREORDER")
    assert verify_postback(call.body, CLIENT_ID, SIGNATURE)
    postback = parse_postback(call.body)
    assert isinstance(postback, PreorderPostback) and postback.order_id == result.provider_order_id
    later = cw.fetch_keys(provider_order_id=result.provider_order_id, reference="ref-pre")
    assert later.state == "completed" and len(later.keys) == 1 and later.keys[0].code


def test_late_keys_arrive_as_preordered_codes(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, late_keys_seconds=HELD)
    result = buy(cw, "ref-late")
    assert result.state == "pending"
    sim.release(P, result.provider_order_id)
    wait_for(
        lambda: (
            cw.fetch_keys(provider_order_id=result.provider_order_id, reference="ref-late").state
            == "completed"
        ),
        timeout=10,
        interval=0.05,
        what="the late keys",
    )


def test_out_of_stock(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    sim.control(P, out_of_stock=[TEXT])
    with pytest.raises(OutOfStock):
        buy(cw, "ref-oos")
    with pytest.raises(OutOfStock):
        buy(cw, "ref-short", product=FEW, quantity=5, allow_preorder=False)
    assert sim.orders(P) == []


def test_shortfall_becomes_preorder_when_allowed(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    result = buy(cw, "ref-shortfall", product=FEW, quantity=5)
    assert result.state == "pending" and result.preorder
    assert len(result.keys) == 3


def test_price_above_our_maximum_is_rejected(cw: CodesWholesaleClient) -> None:
    with pytest.raises(ProviderRejected):
        buy(cw, "ref-cheap", max_unit_cost_minor=100)


def test_low_balance(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    with pytest.raises(InsufficientBalance):
        buy(cw, "ref-sandbox-balance", product=LOW_BALANCE)
    sim.control(P, balance="1.00")
    with pytest.raises(InsufficientBalance):
        buy(cw, "ref-low")
    assert sim.orders(P) == []


def test_503_is_transient_and_on_ordering_an_unknown_outcome(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    cw.balance()  # token first
    sim.control(P, error_rate=1.0)
    with pytest.raises(ProviderTransientError) as info:
        cw.balance()
    assert type(info.value) is ProviderTransientError
    with pytest.raises(ProviderOutcomeUnknown):
        buy(cw, "ref-503")


def test_unreachable_provider_is_transient() -> None:
    client = CodesWholesaleClient(
        "http://127.0.0.1:9", CLIENT_ID, CLIENT_SECRET, SIGNATURE, CLIENT_TIMEOUT
    )
    with pytest.raises(ProviderTransientError) as info:
        buy(client, "ref-refused")
    assert type(info.value) is ProviderTransientError  # nothing was sent: not "unknown"


def test_hang_is_an_unknown_outcome_and_the_order_is_found_later(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    cw.balance()
    sim.control(P, timeout=3.0)
    with pytest.raises(ProviderOutcomeUnknown):
        buy(cw, "ref-hang")
    sim.control(P, timeout=0)
    deadline = time.monotonic() + 15
    lookup = cw.find_purchase(reference="ref-hang", placed_at=NOW)
    while not isinstance(lookup, Found) and time.monotonic() < deadline:
        time.sleep(0.1)
        lookup = cw.find_purchase(reference="ref-hang", placed_at=NOW)
    assert isinstance(lookup, Found) and lookup.purchase.state == "completed"
    assert len(sim.orders(P)) == 1


def test_crash_after_charge_then_find_purchase(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, crash_after_charge=True)
    with pytest.raises(ProviderOutcomeUnknown):
        buy(cw, "ref-crash", quantity=2)
    sim.control(P, crash_after_charge=False)
    lookup = cw.find_purchase(reference="ref-crash", placed_at=NOW)
    assert isinstance(lookup, Found)
    assert lookup.purchase.state == "completed" and len(lookup.purchase.keys) == 2
    assert [o["reference"] for o in sim.orders(P)] == ["ref-crash"]
    assert cw.balance().amount_minor == 100000 - 2 * 2150
    assert isinstance(cw.find_purchase(reference="never-bought", placed_at=NOW), Absent)


def test_a_failed_history_is_unclear_never_absent(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, fail_lookups=True)
    assert isinstance(cw.find_purchase(reference="never-bought", placed_at=NOW), Unclear)


def test_history_covers_the_attempt_in_windows() -> None:
    """An attempt 70 days ago is looked for in history windows reaching back to it."""
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        q = request.url.params
        seen.append((q["startFrom"], q["endOn"]))
        return httpx.Response(200, json={"items": []})

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    placed = NOW - timedelta(days=70)
    assert isinstance(client.find_purchase(reference="r", placed_at=placed), Absent)
    starts = [date.fromisoformat(a) for a, _ in seen]
    ends = [date.fromisoformat(b) for _, b in seen]
    assert starts[0] == placed.date() - timedelta(days=1) and ends[-1] >= NOW.date()
    assert all((b - a).days <= 31 for a, b in zip(starts, ends, strict=True))
    assert all(starts[n + 1] == ends[n] + timedelta(days=1) for n in range(len(seen) - 1))


def test_history_without_client_order_ids_is_unclear() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        return httpx.Response(200, json={"items": [{"orderId": "o1", "status": "Completed"}]})

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    assert isinstance(client.find_purchase(reference="r", placed_at=NOW), Unclear)


def test_same_reference_twice_is_a_second_order_by_default(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    """No source says CW de-duplicates a repeated order id: the simulator assumes not."""
    first = buy(cw, "ref-again")
    second = buy(cw, "ref-again")
    assert first.provider_order_id != second.provider_order_id
    assert len(sim.orders(P)) == 2


def test_same_reference_twice_buys_once(sim: SimulatorServer, cw: CodesWholesaleClient) -> None:
    sim.control(P, duplicate_reference="existing")
    first = buy(cw, "ref-twice")
    second = buy(cw, "ref-twice")
    assert first.provider_order_id == second.provider_order_id
    assert len(sim.orders(P)) == 1


# -- error mapping (exact bodies) ------------------------------------------------------------


def _mock(status: int, body: object) -> CodesWholesaleClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(status, json=body)

    return CodesWholesaleClient(
        "https://cw.test", "id", "s", "sig", 1.0, transport=httpx.MockTransport(handler)
    )


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"status": 400, "code": 10002, "message": "Balance too low"}, InsufficientBalance),
        (404, {"status": 404, "code": 20001, "message": "Product not found"}, OutOfStock),
        (400, {"status": 400, "code": 40002, "message": "Quantity less than 1"}, ProviderRejected),
        (409, {"status": 409, "message": "Requested quantity is not available"}, OutOfStock),
        (400, {"status": 400, "message": "Product out of stock"}, OutOfStock),
        (400, {"status": 400, "code": 99999, "message": "Something else"}, ProviderRejected),
        (429, {"status": 429, "message": "Too many requests"}, ProviderTransientError),
        (403, {"status": 403, "message": "Forbidden"}, ProviderAuthError),
        (500, {"status": 500, "message": "boom"}, ProviderOutcomeUnknown),
    ],
)
def test_order_error_bodies(status: int, body: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        buy(_mock(status, body), "ref-x")
    assert type(info.value) is error


def test_5xx_on_a_read_is_transient_not_unknown() -> None:
    with pytest.raises(ProviderTransientError) as info:
        _mock(502, {"status": 502}).balance()
    assert type(info.value) is ProviderTransientError


# -- postbacks --------------------------------------------------------------------------------


def test_verify_postback() -> None:
    good = {"type": "STOCK", "authHash": postback_hash("cid", "sig"), "products": []}
    assert verify_postback(good, "cid", "sig")
    assert verify_postback({**good, "authHash": good["authHash"].upper()}, "cid", "sig")
    assert not verify_postback({**good, "authHash": postback_hash("cid", "other")}, "cid", "sig")
    assert not verify_postback({"type": "STOCK"}, "cid", "sig")
    assert not verify_postback({**good, "authHash": ""}, "cid", "sig")
    assert not verify_postback(good, "cid", "")


def test_parse_postback_types() -> None:
    stock = parse_postback(
        {
            "type": "STOCK",
            "products": [
                {
                    "productId": "p1",
                    "quantity": 4,
                    "prices": [{"priceRangeLabel": "1-9", "price": 9.99}],
                }
            ],
        }
    )
    assert isinstance(stock, StockPostback)
    assert stock.products[0].quantity == 4 and stock.products[0].prices == [
        ("1-9", Decimal("9.99"))
    ]
    pre = parse_postback({"type": "PREORDER", "orderId": "o1", "codeId": "c1"})
    assert pre == PreorderPostback(order_id="o1", code_id="c1")
    hidden = parse_postback({"type": "PRODUCT_HIDDEN", "productId": "p2"})
    assert isinstance(hidden, ProductPostback) and hidden.product_ids == ["p2"]
    assert isinstance(parse_postback({"type": "SOMETHING_NEW"}), OtherPostback)


def test_stock_postbacks_on_stock_change(
    sim: SimulatorServer, cw: CodesWholesaleClient, receiver: Receiver
) -> None:
    sim.control(P, webhook_target=receiver.url, notify_stock=True)
    buy(cw, "ref-stock")
    call = receiver.wait_for(lambda c: c.body.get("type") == "STOCK")
    assert verify_postback(call.body, CLIENT_ID, SIGNATURE)
    parsed = parse_postback(call.body)
    assert isinstance(parsed, StockPostback) and parsed.products[0].quantity == 49


# -- secrets ----------------------------------------------------------------------------------


def test_key_codes_and_secrets_never_in_errors_or_logs(
    sim: SimulatorServer, cw: CodesWholesaleClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.control(P, duplicate_reference="existing")
    codes = [k.code for k in buy(cw, "ref-secret", quantity=3).keys]
    codes += [k.code for k in buy(cw, "ref-secret").keys]  # same reference: the answer again
    assert isinstance(cw.find_purchase(reference="ref-secret", placed_at=NOW), Found)
    messages: list[str] = []
    for knobs in ({"crash_after_charge": True}, {"error_rate": 1.0}, {"balance": "0"}):
        sim.reset(P)
        sim.control(P, **knobs)
        with pytest.raises(Exception) as info:
            buy(cw, "ref-secret-2")
        messages.append(str(info.value))
    text = caplog.text + "\n".join(messages) + json.dumps(sim.orders(P))
    assert codes and all(c and c not in text for c in codes)
    for secret in (CLIENT_SECRET, SIGNATURE):
        assert secret not in text


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("1-9", (1, 9)),
        ("10 - 99", (10, 99)),
        ("100+", (100, None)),
        ("1", (1, 1)),
        ("10-", (10, None)),
        ("5 to 9", (5, 9)),
        ("", None),
        ("tier A", None),
    ],
)
def test_price_range_labels(label: str, expected: object) -> None:
    from core.providers.codeswholesale_postbacks import price_range

    assert price_range(label) == expected


def test_stock_postback_unit_price_is_the_tier_holding_one_unit() -> None:
    parsed = parse_postback(
        {
            "type": "STOCK",
            "products": [
                {
                    "productId": "p",
                    "quantity": 3,
                    "prices": [
                        {"priceRangeLabel": "100+", "price": 3.1},
                        {"priceRangeLabel": "10-99", "price": 4},
                        {"priceRangeLabel": "1-9", "price": 4.75},
                    ],
                }
            ],
        }
    )
    assert isinstance(parsed, StockPostback)
    assert parsed.products[0].unit_price() == Decimal("4.75")
    unreadable = parse_postback(
        {
            "type": "STOCK",
            "products": [{"productId": "p", "prices": [{"priceRangeLabel": "bulk", "price": 2}]}],
        }
    )
    assert isinstance(unreadable, StockPostback) and unreadable.products[0].unit_price() is None


def test_an_empty_code_is_fetched_through_its_self_link() -> None:
    """A code carries links with rel=self; an empty code is fetched later through that
    link (CWSDK Code.php, Resource.php; providers.md, Corrections)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if request.url.path == "/v2/orders":
            return httpx.Response(
                200,
                json={
                    "orderId": "o-1",
                    "clientOrderId": "ref-link",
                    "totalPrice": 5.0,
                    "status": "Completed",
                    "products": [
                        {
                            "productId": TEXT,
                            "unitPrice": 5.0,
                            "codes": [
                                {
                                    "codeId": "c-1",
                                    "status": "Text code",
                                    "code": "",
                                    "links": [
                                        {
                                            "rel": "self",
                                            "href": "https://cw.test/v2/codes/by-link/c-1",
                                        }
                                    ],
                                },
                                {
                                    "codeId": "c-2",
                                    "status": "Text code",
                                    "code": "",
                                    "links": [
                                        {"rel": "self", "href": "https://elsewhere.test/steal/c-2"}
                                    ],
                                },
                            ],
                        }
                    ],
                },
            )
        if request.url.path == "/v2/codes/by-link/c-1":
            return httpx.Response(
                200, json={"codeId": "c-1", "status": "Text code", "code": "LINKED-CODE-1"}
            )
        if request.url.path == "/v2/codes/c-2":
            return httpx.Response(
                200, json={"codeId": "c-2", "status": "Text code", "code": "PLAIN-CODE-2"}
            )
        raise AssertionError(f"unexpected {request.url}")

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    result = buy(client, "ref-link", quantity=2)
    assert sorted(k.code for k in result.keys) == ["LINKED-CODE-1", "PLAIN-CODE-2"]
    assert "/v2/codes/by-link/c-1" in seen and "/steal/c-2" not in seen  # never another host


def test_simulator_codes_carry_a_self_link_that_serves_the_code(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    sim.control(P, empty_codes=True)
    result = buy(cw, "ref-self", quantity=1)
    assert result.state == "completed" and len(result.keys) == 1
    with httpx.Client(timeout=2) as http:
        token = http.post(
            sim.provider_url(P) + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        order = http.get(
            sim.provider_url(P) + f"/v2/orders/{result.provider_order_id}", headers=auth
        ).json()
        [code] = order["products"][0]["codes"]
        [link] = [lnk for lnk in code["links"] if lnk["rel"] == "self"]
        assert http.get(link["href"], headers=auth).json()["codeId"] == code["codeId"]


def test_double_slashes_in_paths_are_tolerated(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    """The SDK requests /v2//orders... and the real server answers (CWSDK Order::getOrder,
    getHistory; providers.md, Corrections)."""
    placed = buy(cw, "ref-slashes")
    with httpx.Client(timeout=2) as http:
        token = http.post(
            sim.provider_url(P) + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        one = http.get(
            sim.provider_url(P) + f"/v2//orders/{placed.provider_order_id}", headers=auth
        )
        assert one.status_code == 200 and one.json()["clientOrderId"] == "ref-slashes"
        today = datetime.now(UTC).date().isoformat()
        history = http.get(
            sim.provider_url(P) + f"/v2//orders?startFrom={today}&endOn={today}", headers=auth
        )
        assert history.status_code == 200 and len(history.json()["items"]) == 1


def test_an_order_of_several_lines_is_read_whole() -> None:
    """POST /v2/orders takes several products[] lines and answers them all (CWSDK
    OrderRequest, ProductEntryRequest; CWFW PurchaseCode; providers.md, Corrections)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        return httpx.Response(
            200,
            json={
                "orderId": "o-2",
                "clientOrderId": "ref-lines",
                "totalPrice": 15.0,
                "status": "Completed",
                "products": [
                    {
                        "productId": TEXT,
                        "unitPrice": 5.0,
                        "codes": [{"codeId": "a", "status": "Text code", "code": "LINE-ONE-A"}],
                    },
                    {
                        "productId": "other",
                        "unitPrice": 10.0,
                        "codes": [{"codeId": "b", "status": "Pre-ordered code", "code": ""}],
                    },
                ],
            },
        )

    client = CodesWholesaleClient(
        "https://cw.test", "id", "secret", "sig", 1.0, transport=httpx.MockTransport(handler)
    )
    found = client.fetch_keys(provider_order_id="o-2", reference="ref-lines")
    assert [k.code for k in found.keys] == ["LINE-ONE-A"]
    assert (found.quantity, found.state, found.preorder, found.total_cost_minor) == (
        2,
        "pending",
        True,
        1500,
    )


def test_simulator_takes_an_order_of_several_lines_all_or_nothing(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    """POST /v2/orders takes several products[] lines (CWSDK OrderRequest; CWFW
    PurchaseCode: the WooCommerce plugin buys a whole shop order in one CW order)."""
    before = cw.balance().amount_minor
    with httpx.Client(timeout=2) as http:
        token = http.post(
            sim.provider_url(P) + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        body = {
            "orderId": "ref-lines",
            "allowPreOrder": False,
            "products": [{"productId": TEXT, "quantity": 2}, {"productId": IMAGE, "quantity": 1}],
        }
        answer = http.post(sim.provider_url(P) + "/v2/orders", json=body, headers=auth).json()
        assert [len(p["codes"]) for p in answer["products"]] == [2, 1]
        assert answer["totalPrice"] == 2 * 21.50 + 12.90
        refused = {
            "orderId": "ref-lines-2",
            "products": [
                {"productId": TEXT, "quantity": 1},
                {"productId": LOW_BALANCE, "quantity": 1},
            ],
        }
        assert (
            http.post(sim.provider_url(P) + "/v2/orders", json=refused, headers=auth).status_code
            == 400
        )
    found = cw.fetch_keys(provider_order_id=answer["orderId"], reference="ref-lines")
    assert found.state == "completed" and len(found.keys) == 3
    assert [o["reference"] for o in sim.orders(P)] == ["ref-lines"], (
        "the refused order left nothing"
    )
    assert cw.balance().amount_minor == before - (2 * 2150 + 1290)


def test_an_order_id_refused_as_existing_is_an_unknown_outcome(
    sim: SimulatorServer, cw: CodesWholesaleClient
) -> None:
    """A server that refuses our orderId as already used has an order under it (or had):
    the answer to that order was lost, never a rejection to fall through on."""
    sim.control(P, duplicate_reference="conflict")
    first = buy(cw, "ref-conflict")
    again = buy(cw, "ref-conflict")  # found by the history lookup
    assert again.provider_order_id == first.provider_order_id
    sim.control(P, fail_lookups=True)
    with pytest.raises(ProviderOutcomeUnknown):
        buy(cw, "ref-conflict")
    assert len(sim.orders(P)) == 1
