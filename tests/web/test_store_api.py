"""The JSON store API through Starlette's TestClient against the real database."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func
from sqlmodel import select
from starlette.testclient import TestClient

from core import crypto
from core.db import session_scope
from core.models import AuditEvent, Key, Order, OrderEvent, OrderLine
from core.services import fulfilment, giftcards, notifications, webhooks
from core.services.audit import Actor
from core.services.checkout import pay_test_order
from core.services.consent import give_consent
from core.services.notifications import order_access_token
from core.services.portal import reveal_order_key
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.openapi import OpenApiContract


@pytest.fixture(scope="module")
def app():
    from web.api.app import create_api

    return create_api()


@pytest.fixture(scope="module")
def contract(app):
    from web.api.http import openapi_document

    return OpenApiContract(openapi_document(app))


@pytest.fixture
def api(app, engine, queued_jobs, contract):
    """A client whose every answer is checked against the generated OpenAPI document."""

    def conforms(response):
        response.read()
        if response.request.method == "HEAD":
            return
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )
        contract.check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            body,
        )

    with TestClient(app, raise_server_exceptions=True) as client:
        client.event_hooks = {"request": [], "response": [conforms]}
        yield client


@pytest.fixture
def catalogue(session):
    """Six Steam products (three in stock), two Xbox EU ones, one inactive."""
    steam = [
        make_product(
            session,
            title=f"Witcher Saga {i}",
            platform="Steam",
            genre="RPG",
            price_minor=1000 + i * 100,
        )
        for i in range(6)
    ]
    for p in steam[:3]:
        make_keys(session, p, 2)
    xbox = [
        make_product(
            session,
            title=f"Racer {i}",
            platform="Xbox",
            region="EU",
            genre="Racing",
            price_minor=3000 + i,
        )
        for i in range(2)
    ]
    make_keys(session, xbox[0], 1)
    make_product(session, title="Witcher Hidden", active=False)
    return steam, xbox


def counts(session):
    s = fresh(session)
    return [
        s.exec(select(func.count()).select_from(m)).one()
        for m in (Order, OrderLine, OrderEvent, AuditEvent)
    ]


def run_jobs(queued):
    """Run what core queued after its commits, in order, like a worker would."""
    handlers = {
        "process_webhook": lambda webhook_id: webhooks.process_webhook(webhook_id=webhook_id),
        "fulfil_order": lambda order_id: fulfilment.fulfil_order(order_id=order_id),
        "send_order_email": lambda order_id, kind: notifications.send_order_email(
            order_id=order_id, kind=kind
        ),
        "send_due_order_emails": notifications.send_due_order_emails,
    }
    ran = []
    while queued:
        name, args, kwargs = queued.pop(0)
        handlers[name](*args, **kwargs)
        ran.append(name)
    return ran


# -- products ---------------------------------------------------------------------------


def test_search_with_text_filters_sort_and_paging(api, catalogue):
    steam, _ = catalogue
    answer = api.get(
        "/api/store/products", params={"q": "witch", "sort": "price_asc", "per_page": 4}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 6 and body["pages"] == 2 and body["has_next"] and body["total_is_exact"]
    assert [i["title"] for i in body["items"]] == [p.title for p in steam[:4]]
    assert body["items"][0]["url"] == f"/api/store/products/{steam[0].slug}"
    page2 = api.get(
        "/api/store/products", params={"q": "witch", "sort": "price_asc", "per_page": 4, "page": 2}
    ).json()
    assert [i["title"] for i in page2["items"]] == [p.title for p in steam[4:]] and not page2[
        "has_next"
    ]
    stocked = api.get(
        "/api/store/products", params={"platform": "steam", "in_stock": "true"}
    ).json()
    assert stocked["total"] == 3 and all(i["in_stock"] for i in stocked["items"])
    priced = api.get("/api/store/products", params={"min_price": 1200, "max_price": 1400}).json()
    assert sorted(i["price_minor"] for i in priced["items"]) == [1200, 1300, 1400]
    eu = api.get(
        "/api/store/products", params={"region": "EU", "genre": "racing", "sort": "price_desc"}
    ).json()
    assert [i["title"] for i in eu["items"]] == ["Racer 1", "Racer 0"]
    assert api.get("/api/store/products", params={"q": "hidden"}).json()["total"] == 0


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("colour=red", 400, "unknown query parameter"),
        ("page=abc", 400, "whole number"),
        ("page=1&page=2", 400, "more than once"),
        ("min_price=-5", 400, "whole number"),
        ("in_stock=maybe", 400, "true or false"),
        ("page=0", 422, "page"),
        ("per_page=101", 422, "per_page"),
        ("sort=cheapest", 422, "sort"),
        ("min_price=500&max_price=100", 422, "lowest price"),
        ("q=" + "x" * 201, 400, "too long"),
    ],
)
def test_bad_search_parameters_get_json_errors(api, query, status, words):
    answer = api.get(f"/api/store/products?{query}")
    assert answer.status_code == status
    error = answer.json()["error"]
    assert words in error["message"] and error["code"]


def test_product_detail_and_404(api, catalogue):
    _, xbox = catalogue
    body = api.get(f"/api/store/products/{xbox[0].slug}").json()
    assert body["title"] == "Racer 0" and body["availability"] == "In stock" and body["can_buy"]
    assert body["region_locked"] and body["region_warning"].startswith(
        "This key only activates in the EU"
    )
    assert body["activation_url"] == "https://redeem.microsoft.com"
    answer = api.get("/api/store/products/no-such-game")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_product"


def test_wrong_method_and_unknown_route_are_json(api):
    answer = api.get("/api/store/checkout")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert api.delete("/api/store/products").status_code == 405
    assert api.head("/api/store/products").status_code == 200  # GET routes answer HEAD
    refused = api.options("/api/store/products")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    missing = api.get("/api/store/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# -- checkout ---------------------------------------------------------------------------


def test_checkout_places_an_order_and_answers_201(api, session, catalogue, test_settings):
    steam, _ = catalogue
    answer = api.post(
        "/api/store/checkout",
        json={"email": "Guest@Example.com", "lines": [{"slug": steam[0].slug, "quantity": 2}]},
    )
    assert answer.status_code == 201
    body = answer.json()
    assert answer.headers["location"] == body["status_url"] == f"/api/store/orders/{body['number']}"
    assert body["total_minor"] == 2000 and body["currency"] == "EUR" and body["test_payment"]
    assert (
        body["payment_url"]
        == f"{test_settings.public_url}/pay/{body['number']}?token={body['access_token']}"
    )
    assert (
        body["order_url"]
        == f"{test_settings.public_url}/orders/{body['number']}?token={body['access_token']}"
    )
    order = fresh(session).exec(select(Order).where(Order.number == body["number"])).one()
    assert order.status == "pending_payment" and order.email == "guest@example.com"


def test_checkout_in_a_currency_for_a_country_includes_its_vat(api, session, catalogue):
    from core.services.catalogue.prices import set_price

    steam, _ = catalogue
    set_price(session=session, product=steam[1], currency="GBP", price_minor=900)
    session.commit()
    lines = [{"slug": steam[1].slug, "quantity": 1}]
    body = {"email": "uk@example.com", "lines": lines, "currency": "GBP", "country": "GB"}
    answer = api.post("/api/store/checkout", json=body)
    assert answer.status_code == 201, answer.text
    placed = answer.json()
    assert (placed["total_minor"], placed["currency"]) == (900, "GBP")
    status = api.get(placed["status_url"], params={"token": placed["access_token"]}).json()
    assert (status["country"], status["vat_rate_bp"], status["vat_minor"]) == ("GB", 2000, 150)
    refused = api.post("/api/store/checkout", json={**body, "currency": "USD"})
    assert refused.status_code == 422 and "not sold in USD" in refused.json()["error"]["message"]


def test_search_in_a_currency_lists_only_what_is_sold_in_it(api, session, catalogue):
    from core.services.catalogue.prices import set_price

    steam, _ = catalogue
    set_price(session=session, product=steam[1], currency="GBP", price_minor=900)
    session.commit()
    found = api.get("/api/store/products", params={"currency": "gbp"})
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert [(i["slug"], i["price_minor"], i["currency"]) for i in items] == [
        (steam[1].slug, 900, "GBP")
    ]
    bounded = api.get("/api/store/products", params={"currency": "GBP", "max_price": 899})
    assert bounded.json()["items"] == []  # the bound is in pence
    everything = api.get("/api/store/products").json()["items"]
    assert len(everything) > 1 and {i["currency"] for i in everything} == {"EUR"}
    refused = api.get("/api/store/products", params={"currency": "euro"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ("{not json", {"Content-Type": "application/json"}, 400, "bad_request"),
        (
            '{"email": "a@example.com"}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            json.dumps({"email": "a@example.com", "lines": [], "pad": "x" * 70000}),
            {"Content-Type": "application/json"},
            413,
            "payload_too_large",
        ),
        ("[1, 2]", {"Content-Type": "application/json"}, 422, "invalid_input"),
        (
            '{"email": "a@example.com", "lines": [], "coupon": "FREE"}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        ('{"email": 5, "lines": []}', {"Content-Type": "application/json"}, 422, "invalid_input"),
        (
            '{"email": "a@example.com", "lines": "all"}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "x"}]}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG0", "quantity": "2"}]}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG0", "quantity": true}]}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        (
            '{"email": "nobody", "lines": [{"slug": "SLUG0", "quantity": 1}]}',
            {"Content-Type": "application/json"},
            422,
            "invalid_input",
        ),
        (
            '{"email": "a@example.com", "lines": []}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG0", "quantity": 0}]}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG0", "quantity": 11}]}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG5", "quantity": 1}]}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "no-such-game", "quantity": 1}]}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
        (
            '{"email": "a@example.com", "lines": [{"slug": "SLUG0", "quantity": 3}]}',
            {"Content-Type": "application/json"},
            422,
            "cart_rejected",
        ),
    ],
)
def test_bad_checkouts_are_refused_and_write_nothing(
    api, session, catalogue, body, headers, status, code
):
    steam, _ = catalogue
    body = body.replace("SLUG0", steam[0].slug).replace(
        "SLUG5", steam[5].slug
    )  # 0: 2 keys, 5: none
    before = counts(session)
    answer = api.post("/api/store/checkout", content=body.encode(), headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "cart_rejected":
        assert error["problems"]
    assert counts(session) == before


def test_a_deeply_nested_checkout_body_is_400_and_writes_nothing(api, session, catalogue):
    before = counts(session)
    body = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB limit, far over any nesting
    answer = api.post(
        "/api/store/checkout", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "bad_request",
        "message": "the body is not valid JSON",
    }
    assert counts(session) == before


def test_the_last_key_goes_to_one_checkout_and_the_next_is_refused_in_words(
    api, session, catalogue
):
    steam, _ = catalogue  # steam[0] has 2 keys
    line = {"slug": steam[0].slug, "quantity": 2}
    first = api.post("/api/store/checkout", json={"email": "a@example.com", "lines": [line]})
    assert first.status_code == 201
    before = counts(session)
    second = api.post(
        "/api/store/checkout", json={"email": "b@example.com", "lines": [{**line, "quantity": 1}]}
    )
    assert second.status_code == 422
    error = second.json()["error"]
    assert error["code"] == "cart_rejected"
    assert error["problems"] == [
        f"{steam[0].title} ({steam[0].platform}, {steam[0].region}) is out of stock."
    ]
    assert counts(session) == before


# -- orders -----------------------------------------------------------------------------


def test_order_needs_its_own_token(api, session, catalogue):
    steam, _ = catalogue
    mine = api.post(
        "/api/store/checkout",
        json={"email": "a@example.com", "lines": [{"slug": steam[0].slug, "quantity": 1}]},
    ).json()
    other = make_order(session, [(steam[1], 1)], email="b@example.com")
    url = f"/api/store/orders/{mine['number']}"
    by_query = api.get(url, params={"token": mine["access_token"]})
    assert by_query.status_code == 200 and by_query.headers["cache-control"] == "no-store"
    by_header = api.get(url, headers={"Authorization": f"Bearer {mine['access_token']}"})
    assert by_header.json() == by_query.json()
    view = by_query.json()
    assert (view["number"], view["status"], view["status_label"], view["stage"]) == (
        mine["number"],
        "pending_payment",
        "Waiting for payment",
        1,
    )
    refusals = [
        api.get(url),
        api.get(url, params={"token": "nope"}),
        api.get(url, params={"token": order_access_token(other.number)}),
        api.get(f"/api/store/orders/{other.number}", params={"token": mine["access_token"]}),
        api.get("/api/store/orders/KS-0000-0000", params={"token": mine["access_token"]}),
    ]
    assert {(r.status_code, r.json()["error"]["code"]) for r in refusals} == {
        (404, "order_not_found")
    }
    assert len({r.json()["error"]["message"] for r in refusals}) == 1
    assert api.get(url, headers={"Authorization": "Basic abc"}).status_code == 400
    assert api.get(url, params={"token": mine["access_token"], "x": "1"}).status_code == 400


def test_test_payment_to_delivered_keys_and_reveal(api, session, catalogue, queued_jobs, vault):
    """Checkout through the API, pay with the test payment, let the queued work run, see
    the order delivered (keys masked in the API), then reveal through the portal: the
    revealed codes are the ones the inventory delivered."""
    steam, _ = catalogue
    placed = api.post(
        "/api/store/checkout",
        json={"email": "buyer@example.com", "lines": [{"slug": steam[1].slug, "quantity": 2}]},
    ).json()
    pay_test_order(number=placed["number"], access_token=placed["access_token"])
    assert run_jobs(queued_jobs) == [
        "send_order_email",  # the order confirmation, queued at checkout
        "process_webhook",
        "fulfil_order",
        "send_due_order_emails",  # the delivery e-mail, from the mail outbox
    ]
    answer = api.get(
        f"/api/store/orders/{placed['number']}", params={"token": placed["access_token"]}
    )
    view = answer.json()
    assert (
        view["status"],
        view["status_label"],
        view["stage"],
        view["delivered"],
        view["pending"],
    ) == ("fulfilled", "Delivered", 4, 2, 0)
    [line] = view["lines"]
    assert line["activation_url"] == "https://store.steampowered.com/account/registerkey"
    assert all(k["masked"] == "XXXXX-XXXXX-•••••" and not k["revealed"] for k in line["keys"])

    s = fresh(session)
    order = s.exec(select(Order).where(Order.number == placed["number"])).one()
    delivered = s.exec(
        select(Key)
        .join(OrderLine, Key.order_line_id == OrderLine.id)
        .where(OrderLine.order_id == order.id)
    ).all()
    assert sorted(str(k.id) for k in delivered) == sorted(k["id"] for k in line["keys"])
    inventory = {
        str(k.id): crypto.get_vault()
        .decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id)
        .decode()
        for k in delivered
    }
    assert not any(code in answer.text for code in inventory.values())  # never in the API
    give_consent(number=placed["number"], access_token=placed["access_token"])
    for key in line["keys"]:
        shown = reveal_order_key(
            number=placed["number"], key_id=key["id"], access_token=placed["access_token"]
        )
        assert shown.code == inventory[key["id"]], "revealed code differs from the delivered one"
    again = api.get(
        f"/api/store/orders/{placed['number']}", params={"token": placed["access_token"]}
    ).json()
    assert all(k["revealed"] for k in again["lines"][0]["keys"])


# -- OpenAPI ----------------------------------------------------------------------------


def test_openapi_is_valid_and_lists_every_api_route(api, app):
    answer = api.get("/api/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    validate(document)  # OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"
    from fastapi.routing import APIRoute

    def every_route(routes):
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's include_router
            yield from every_route(included.routes) if included else [route]

    served = set()
    for route in every_route(app.routes):
        assert isinstance(route, APIRoute), route
        if route.include_in_schema:
            path = route.path.replace(":path}", "}")
            served |= {(path, m.lower()) for m in route.methods - {"HEAD"}}
    assert all(p.startswith("/api/") for p, _ in served)
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented


# -- a database that cannot be used ------------------------------------------------------


@pytest.fixture
def unreachable_database(test_settings):
    """The shop pointed at a PostgreSQL port nothing listens on, for the test's length."""
    from core import config

    config.use_settings(
        test_settings.model_copy(
            update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/keyshop"}
        )
    )
    yield
    config.use_settings(test_settings)


def test_a_database_that_cannot_be_used_is_a_clean_503(api, catalogue, unreachable_database):
    steam, _ = catalogue
    answers = [
        api.get("/api/store/products", params={"q": "witch"}),
        api.get(f"/api/store/products/{steam[0].slug}"),
        api.post(
            "/api/store/checkout",
            json={"email": "a@example.com", "lines": [{"slug": steam[0].slug, "quantity": 1}]},
        ),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": {
                "code": "database_unavailable",
                "message": "The shop cannot reach its database just now; try again in a moment.",
            }
        }
        assert answer.headers["Retry-After"] == "5"
        assert "Traceback" not in answer.text and "127.0.0.1:1" not in answer.text


# -- the document and the answers agree ---------------------------------------------------


def test_every_store_answer_matches_the_generated_document(api, contract, catalogue):
    """Real answers of every store route, success and refusal, validate against the schema
    the app generates (the ``api`` client checks each one); this test makes sure each route
    and status below was seen, so code and document cannot drift unnoticed."""
    steam, _ = catalogue
    contract.checked.clear()
    json_headers = {"Content-Type": "application/json"}
    api.get("/api/store/products", params={"q": "witch", "per_page": 2})
    api.get("/api/store/products", params={"page": "x"})
    api.get("/api/store/products", params={"page": 0})
    api.get(f"/api/store/products/{steam[0].slug}")
    api.get("/api/store/products/no-such-game")
    api.get(f"/api/store/products/{steam[0].slug}", params={"x": 1})
    placed = api.post(
        "/api/store/checkout",
        json={"email": "a@example.com", "lines": [{"slug": steam[0].slug, "quantity": 1}]},
    ).json()
    api.post("/api/store/checkout", content=b"{", headers=json_headers)
    api.post("/api/store/checkout", content=b"x" * 70_000, headers=json_headers)
    api.post("/api/store/checkout", content=b"{}", headers={"Content-Type": "text/plain"})
    api.post("/api/store/checkout", json={"email": "a@example.com", "lines": [], "x": 1})
    api.post(
        "/api/store/checkout",
        json={"email": "a@example.com", "lines": [{"slug": steam[5].slug, "quantity": 1}]},
    )
    api.get(f"/api/store/orders/{placed['number']}", params={"token": placed["access_token"]})
    api.get(f"/api/store/orders/{placed['number']}", params={"token": "nope"})
    api.get(f"/api/store/orders/{placed['number']}", headers={"Authorization": "Basic x"})
    api.get("/api/openapi.json")
    api.get("/api/blobs/keys/nothing.png", params={"token": "x"})
    api.post("/api/webhooks/nowhere", content=b"{}", headers=json_headers)
    api.get("/api/health")
    expected = {
        ("/api/store/products", "get", s) for s in ("200", "400", "422")
    } | {
        ("/api/store/products/{slug}", "get", s) for s in ("200", "400", "404")
    } | {
        ("/api/store/checkout", "post", s) for s in ("201", "400", "413", "415", "422")
    } | {
        ("/api/store/orders/{number}", "get", s) for s in ("200", "400", "404")
    } | {("/api/openapi.json", "get", "200"), ("/api/blobs/{name}", "get", "403"),
         ("/api/webhooks/{source}", "post", "404")}  # fmt: skip
    assert expected <= contract.checked, expected - contract.checked
    assert {s for p, _, s in contract.checked if p == "/api/health"} & {"200", "503"}


def test_an_answer_that_drifts_from_the_document_is_caught(contract):
    """The check itself can fail: an undocumented field, a missing one, an undocumented status."""
    good = {"error": {"code": "not_found", "message": "no"}}
    contract.check("GET", "/api/store/products/x", 404, "application/json", good)
    for status, body in [
        (404, {"error": {"code": "not_found", "message": "no", "trace": "..."}}),
        (404, {"error": {"code": "not_found"}}),
        (200, {"slug": "x"}),
        (418, good),
    ]:
        with pytest.raises(AssertionError):
            contract.check("GET", "/api/store/products/x", status, "application/json", body)


# -- gift cards (issue #18) ----------------------------------------------------------------


def issue_gift_card(amount: int) -> str:
    with session_scope() as session:
        return giftcards.issue(
            session=session, amount_minor=amount, currency="EUR", actor=Actor.operator("olga")
        ).code


def test_gift_cards_pay_part_or_all_of_a_store_api_checkout(api, session):
    game = make_product(session, price_minor=1500)
    make_keys(session, game, 5)
    small, big = issue_gift_card(500), issue_gift_card(10_000)
    partly = api.post(
        "/api/store/checkout",
        json={
            "email": "g@example.com",
            "lines": [{"slug": game.slug, "quantity": 2}],
            "gift_cards": [small],
        },
    )
    assert partly.status_code == 201, partly.text
    body = partly.json()
    assert body["total_minor"] == 3000 and body["paid_from_balances_minor"] == 500
    assert "/pay/" in body["payment_url"]
    wholly = api.post(
        "/api/store/checkout",
        json={
            "email": "g@example.com",
            "lines": [{"slug": game.slug, "quantity": 1}],
            "gift_cards": [big],
        },
    ).json()
    assert wholly["payment_url"] == wholly["order_url"]
    assert (
        fresh(session).exec(select(Order.status).where(Order.number == wholly["number"])).one()
        == "paid"
    )
    refused = api.post(
        "/api/store/checkout",
        json={
            "email": "g@example.com",
            "lines": [{"slug": game.slug, "quantity": 1}],
            "gift_cards": [small],
        },
    )
    assert refused.status_code == 422 and "no balance left" in refused.json()["error"]["message"]
    looked_up = api.post("/api/store/gift-cards/balance", json={"code": big})
    assert looked_up.status_code == 200
    assert looked_up.json() == {
        "last4": giftcards.parse_code(big)[-4:],
        "currency": "EUR",
        "balance_minor": 8500,
        "initial_minor": 10_000,
        "active": True,
    }
    assert looked_up.headers["cache-control"].startswith("no-store")


def test_the_balance_look_up_refuses_bad_codes_and_too_many_tries(api, engine):
    assert api.post("/api/store/gift-cards/balance", json={"code": "GC-1"}).status_code == 422
    unknown = api.post("/api/store/gift-cards/balance", json={"code": giftcards.new_code()})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_gift_card"
    _, limit, _ = giftcards.BALANCE_LIMIT
    answers = [
        api.post("/api/store/gift-cards/balance", json={"code": giftcards.new_code()}).status_code
        for _ in range(limit)
    ]
    assert answers[-1] == 429 and "retry-after" in {
        k.lower() for k in api.post("/api/store/gift-cards/balance", json={"code": "x"}).headers
    }


def test_checkout_with_a_promo_code_keeps_the_discount_and_refuses_in_words(
    api, session, catalogue
):
    from core.models import OrderLine, PromoCode
    from core.services.audit import Actor
    from core.services.operator.promos import PromoInput, create_promo

    steam, _ = catalogue
    create_promo(data=PromoInput(code="SPRING", percent="25", max_uses=1), actor=Actor.system())
    lines = [{"slug": steam[0].slug, "quantity": 2}]
    answer = api.post(
        "/api/store/checkout",
        json={"email": "p@example.com", "lines": lines, "promo_code": "spring"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["total_minor"], body["discount_minor"]) == (1500, 500)
    order = fresh(session).exec(select(Order).where(Order.number == body["number"])).one()
    assert (order.subtotal_minor, order.discount_minor, order.total_minor) == (2000, 500, 1500)
    line = fresh(session).exec(select(OrderLine).where(OrderLine.order_id == order.id)).one()
    assert line.discount_minor == 500
    status = api.get(body["status_url"], params={"token": body["access_token"]}).json()
    assert (status["total_minor"], status["discount_minor"], status["promo_codes"]) == (
        1500,
        500,
        ["SPRING"],
    )
    assert [(ln["line_total_minor"], ln["discount_minor"]) for ln in status["lines"]] == [
        (1500, 500)
    ]
    again = api.post(
        "/api/store/checkout",
        json={
            "email": "q@example.com",
            "lines": [{"slug": steam[1].slug, "quantity": 1}],
            "promo_code": "SPRING",
        },
    )
    assert again.status_code == 422
    assert again.json()["error"] == {
        "code": "promo_rejected",
        "message": "Promo code SPRING has been used up.",
        "field": "promo_code",
    }
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1
    assert len(fresh(session).exec(select(Order)).all()) == 1
