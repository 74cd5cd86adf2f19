"""The storefront's Reflex states, handler by handler, against the real test database.

Each test builds the state tree the way the app's state manager does (the root
``rx.State`` with every substate; pytest is Reflex's testing environment, so it allows
that outside a running app), gives it the router data of a page address, and calls the
handlers directly. What a handler asks of the browser (a redirect, a toast, a script
call) comes back as Reflex ``EventSpec`` values, read here with small helpers.

Key codes are compared, never printed: assertions about them are on booleans.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import reflex as rx
from sqlmodel import func, select

from core.mail import list_outbox, read_outbox_message
from core.models import Customer, CustomerSession, KeyReport, Order, utcnow
from core.services import accounts, ratelimit
from core.services.fulfilment import fulfil_order
from core.services.notifications import ORDER_ACCESS_PURPOSE, order_access_token
from core.services.sessions import list_sessions
from core.signing import check_token
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.states import (
    arg_of,
    call,
    handed_off,
    loaded,
    redirect_of,
    root_of,
    scripts_of,
    session_cookie,
    state_for,
    toasts_of,
    tree,
)
from web.api.security import SIGN_OUT_SCRIPT
from web.state.account import AccountState
from web.state.base import MAX_LINES, MAX_QTY, ShopState, parse_cart
from web.state.catalogue import ANY, PER_PAGE, CatalogueState, ProductState
from web.state.checkout import CartState, PayState
from web.state.order import OrderState

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple grape violin 42"


def count(session, model) -> int:
    return fresh(session).exec(select(func.count()).select_from(model)).one()


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    """Cheap argon2id parameters, and a rate-limit clock that stays in one window."""
    monkeypatch.setattr(test_settings, "password_hashing", "fast")
    frozen = time.time()
    monkeypatch.setattr(
        ratelimit, "time", SimpleNamespace(time=lambda: frozen, monotonic=time.monotonic)
    )


# -- the cart in local storage -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "{",
        "null",
        "42",
        '"a string"',
        '{"slug": "a", "qty": 1}',
        "[1, 2, 3]",
        '[["a", 1]]',
        '[{"slug": 5, "qty": 1}]',
        '[{"slug": "", "qty": 1}]',
        '[{"slug": "a"}]',
        '[{"slug": "a", "qty": "2"}]',
        '[{"slug": "a", "qty": 1.5}]',
        '[{"slug": "a", "qty": true}]',
        '[{"slug": "a", "qty": 0}]',
        '[{"slug": "a", "qty": -3}]',
        '[{"slug": "a", "qty": NaN}]',
        '[{"slug": "a", "qty": 1e999}]',
        '[{"slug": {"$ne": 1}, "qty": 1}]',
        json.dumps([{"slug": "x" * 121, "qty": 1}]),
        "1" * 5000,
        "[" * 100_000,  # nesting deep enough to exhaust the JSON parser's recursion
        '{"a":' * 100_000,
    ],
    ids=lambda raw: repr(raw[:24]) + (f"...({len(raw)} chars)" if len(raw) > 24 else ""),
)
def test_hostile_cart_values_give_an_empty_cart(raw):
    assert parse_cart(raw) == []
    state = state_for(ShopState)
    state.cart_json = raw
    assert state.cart_count == 0


def test_cart_parsing_keeps_good_lines_clamps_and_drops_repeats():
    raw = json.dumps(
        [
            {"slug": "alpha", "qty": 2, "price": 1},  # extra fields are ignored
            {"slug": "beta", "qty": 99},
            {"slug": "alpha", "qty": 5},  # a repeat: the first line wins
            "junk",
            {"slug": "gamma", "qty": -1},
            {"slug": "delta", "qty": 1},
        ]
    )
    assert parse_cart(raw) == [
        {"slug": "alpha", "qty": 2},
        {"slug": "beta", "qty": MAX_QTY},
        {"slug": "delta", "qty": 1},
    ]
    many = json.dumps([{"slug": f"game-{i}", "qty": 1} for i in range(MAX_LINES + 5)])
    assert [line["slug"] for line in parse_cart(many)] == [f"game-{i}" for i in range(MAX_LINES)]


def test_add_to_cart_adds_counts_up_and_stops_at_the_limits(session):
    alpha = make_product(session, slug="alpha", title="Alpha")
    beta = make_product(session, slug="beta", title="Beta")
    make_keys(session, alpha, 3)
    make_keys(session, beta, MAX_QTY + 5)
    state = state_for(ShopState)
    state.cart_json = "corrupted{"
    specs = call(state.add_to_cart, "alpha")
    assert parse_cart(state.cart_json) == [{"slug": "alpha", "qty": 1}]
    assert [kind for kind, _ in toasts_of(specs)] == ["success"]
    call(state.add_to_cart, "beta")
    call(state.add_to_cart, "alpha")
    assert parse_cart(state.cart_json) == [{"slug": "alpha", "qty": 2}, {"slug": "beta", "qty": 1}]
    assert state.cart_count == 3
    for _ in range(MAX_QTY + 3):
        call(state.add_to_cart, "beta")
    assert parse_cart(state.cart_json)[1] == {"slug": "beta", "qty": MAX_QTY}

    # more than the stock is refused at "add", with the customer's sentence
    call(state.add_to_cart, "alpha")
    before = state.cart_json
    [(kind, js)] = toasts_of(call(state.add_to_cart, "alpha"))
    assert state.cart_json == before and kind == "error"
    assert "Only 3 of Alpha available right now. Your cart already holds 3." in js

    state.cart_json = json.dumps([{"slug": f"game-{i}", "qty": 1} for i in range(MAX_LINES)])
    before = state.cart_json
    specs = call(state.add_to_cart, "alpha")
    assert state.cart_json == before
    [(kind, js)] = toasts_of(specs)
    assert kind == "error" and f"at most {MAX_LINES}" in js


def test_cart_page_changes_and_removes_lines_with_fresh_prices(session):
    alpha = make_product(session, slug="alpha-quest", title="Alpha Quest", price_minor=1250)
    beta = make_product(session, slug="beta-racer", title="Beta Racer", price_minor=999)
    make_keys(session, alpha, 5)
    make_keys(session, beta, 5)
    state = state_for(CartState, "/cart")
    # a price in local storage is never believed
    state.cart_json = json.dumps(
        [{"slug": "alpha-quest", "qty": 1, "price": 1}, {"slug": "beta-racer", "qty": 2}]
    )
    call(state.load)
    assert [(ln["slug"], ln["qty"], ln["line_total"]) for ln in state.lines] == [
        ("alpha-quest", 1, "€12.50"),
        ("beta-racer", 2, "€19.98"),
    ]
    assert state.total == "€32.48" and state.can_checkout and state.problems == []

    call(state.change_qty, "alpha-quest", 1)
    assert parse_cart(state.cart_json)[0] == {"slug": "alpha-quest", "qty": 2}
    assert state.total == "€44.98"
    call(state.change_qty, "not-in-cart", 1)
    assert len(parse_cart(state.cart_json)) == 2
    call(state.change_qty, "beta-racer", -1)
    call(state.change_qty, "beta-racer", -1)  # down to nothing: the line goes
    assert parse_cart(state.cart_json) == [{"slug": "alpha-quest", "qty": 2}]
    assert [ln["slug"] for ln in state.lines] == ["alpha-quest"] and state.total == "€25.00"

    call(state.remove_line, "alpha-quest")
    assert parse_cart(state.cart_json) == [] and state.lines == [] and not state.can_checkout
    assert state.cart_count == 0


def test_cart_page_names_the_problem_of_an_unknown_or_sold_out_game(session):
    make_product(session, slug="sold-out", title="Sold Out Saga")
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": "sold-out", "qty": 1}, {"slug": "gone", "qty": 1}])
    call(state.load)
    assert not state.can_checkout
    problems = {ln["slug"]: ln["problem"] for ln in state.lines}
    assert "out of stock" in problems["sold-out"]
    assert "could not find" in problems["gone"]


# -- catalogue and product pages ---------------------------------------------------------


@pytest.fixture
def shelf(session):
    """Steam games in stock, one without stock, a GOG game, an Xbox EU game."""
    steam = [
        make_product(session, slug=f"orbit-{i}", title=f"Orbit Run {i}", price_minor=1000 + 100 * i)
        for i in range(3)
    ]
    for product in steam:
        make_keys(session, product, 1)
    empty = make_product(session, slug="orbit-empty", title="Orbit Run Empty", price_minor=500)
    gog = make_product(session, slug="orbit-gog", title="Orbit Run GOG", platform="GOG")
    make_keys(session, gog, 1)
    xbox = make_product(session, slug="racer-x", title="Racer X", platform="Xbox", region="EU")
    make_keys(session, xbox, 1)
    return SimpleNamespace(steam=steam, empty=empty, gog=gog, xbox=xbox)


def test_catalogue_reads_its_filters_from_the_address(session, shelf):
    state = state_for(
        CatalogueState, "/games?q=orbit&platform=Steam&stock=1&sort=price_desc&min=10.50"
    )
    call(state.load)
    assert (state.query, state.platform, state.region, state.genre) == ("orbit", "Steam", ANY, ANY)
    assert state.in_stock_only and state.sort == "price_desc" and state.min_price == "10.50"
    assert state.page == 1 and state.error == ""
    # Steam, in stock, from 10.50 up, dearest first: Orbit Run 2 (12.00) then 1 (11.00)
    assert [card["slug"] for card in state.results] == ["orbit-2", "orbit-1"]
    assert state.total_text == "2 games"
    assert state.platforms == ["GOG", "Steam", "Xbox"] and state.regions == ["EU", "GLOBAL"]


def test_catalogue_ignores_nonsense_in_the_address(session, shelf):
    state = state_for(CatalogueState, "/games?sort=drop_table&page=-4&stock=yes&q=" + "o" * 300)
    call(state.load)
    assert state.sort == "relevance" and state.page == 1 and not state.in_stock_only
    assert len(state.query) == 200
    for page in ("abc", "0", "99999999999"):
        state = state_for(CatalogueState, f"/games?page={page}")
        call(state.load)
        assert state.page == 1 and state.error == ""


@pytest.mark.parametrize(
    "address",
    [
        "/games",
        "/games?q=orbit+run",
        "/games?platform=Steam&region=EU&genre=Action",
        "/games?q=racer&min=5&max=40&stock=1&sort=title&page=2",
    ],
)
def test_catalogue_address_round_trip(session, shelf, address):
    first = state_for(CatalogueState, address)
    call(first.load)
    again = state_for(CatalogueState, first._address())
    call(again.load)
    fields = ("query", "platform", "region", "genre", "min_price", "max_price", "in_stock_only")
    assert [getattr(again, f) for f in fields] == [getattr(first, f) for f in fields]
    assert (again.sort, again.page) == (first.sort, first.page)
    assert again._address() == first._address()


def test_catalogue_filter_handlers_go_to_page_one_of_the_new_address(session, shelf):
    state = state_for(CatalogueState, "/games?q=orbit&page=3")
    call(state.load)
    assert state.page == 3
    target = redirect_of(call(state.set_filter, "platform", "GOG"))
    assert target == "/games?q=orbit&platform=GOG"
    target = redirect_of(call(state.set_filter, "sort", "price_asc"))
    assert target == "/games?q=orbit&platform=GOG&sort=price_asc"
    assert redirect_of(call(state.set_filter, "sort", "nonsense")) == target
    assert redirect_of(call(state.toggle_in_stock, True)).endswith("&stock=1&sort=price_asc")
    assert redirect_of(call(state.go_to_page, 1)).endswith("&page=2")
    assert redirect_of(call(state.set_filter, "platform", ANY)) == (
        "/games?q=orbit&stock=1&sort=price_asc"
    )
    form = {"q": "  racer  ", "min": "1", "max": "abc"}
    assert redirect_of(call(state.submit_search, form)) == (
        "/games?q=racer&min=1&max=abc&stock=1&sort=price_asc"
    )
    assert redirect_of(call(state.clear_filters)) == "/games"


def test_catalogue_paging(session):
    for i in range(PER_PAGE + 3):
        make_product(session, slug=f"pager-{i:02d}", title=f"Pager {i:02d}", price_minor=100 + i)
    state = state_for(CatalogueState, "/games?q=pager&sort=price_asc")
    call(state.load)
    assert len(state.results) == PER_PAGE and state.has_next and not state.has_previous
    assert state.pages == 2 and state.total_text == f"{PER_PAGE + 3} games"
    second = state_for(CatalogueState, redirect_of(call(state.go_to_page, 1)))
    call(second.load)
    assert [c["slug"] for c in second.results] == [
        f"pager-{i:02d}" for i in range(PER_PAGE, PER_PAGE + 3)
    ]
    assert second.has_previous and not second.has_next


@pytest.mark.parametrize("bad", ["abc", "12.5.1", "nan", "inf", "1e400", "-5", "1e12"])
def test_catalogue_bad_price_shows_a_message(session, shelf, bad):
    state = state_for(CatalogueState, f"/games?min={bad}")
    call(state.load)
    assert state.error == "Prices are amounts like 9.99."
    assert state.results == [] and not state.loading


def test_catalogue_price_range_in_money(session, shelf):
    state = state_for(CatalogueState, "/games?q=orbit&min=10&max=11,00&sort=price_asc")
    call(state.load)
    assert [card["price"] for card in state.results] == ["€10.00", "€11.00"]


def test_product_page(session):
    product = make_product(
        session,
        slug="harbor-lights",
        title="Harbor Lights",
        region="EU",
        price_minor=2499,
        list_price_minor=3999,
        activation_instructions="Open Steam, Games, Activate a product on Steam.",
    )
    make_keys(session, product, 1)
    state = state_for(ProductState, "/games/harbor-lights")
    call(state.load)
    p = state.product
    assert state.found and state.error == ""
    assert (p["title"], p["price"], p["list_price"]) == ("Harbor Lights", "€24.99", "€39.99")
    assert p["availability"] == "In stock" and p["can_buy"] and not p["is_preorder"]
    assert p["region_locked"] and "EU" in p["region_warning"]
    assert p["activation_url"] == "https://store.steampowered.com/account/registerkey"


def test_product_page_preorder_shows_its_release_date(session):
    make_product(session, slug="far-future", title="Far Future", release_date=date(2031, 3, 14))
    state = state_for(ProductState, "/games/far-future/")
    call(state.load)
    assert state.found and state.product["is_preorder"]
    assert state.product["release_date"] == "14 Mar 2031"


@pytest.mark.parametrize("slug", ["no-such-game", "UPPER", "%00", "x" * 500])
def test_product_page_unknown_slug(session, slug):
    make_product(session, slug="real-game")
    state = state_for(ProductState, f"/games/{slug}")
    state.product = {"title": "left over"}
    call(state.load)
    assert not state.found and state.product == {} and state.error


# -- checkout and the test payment page --------------------------------------------------


@pytest.fixture
def in_stock(session):
    product = make_product(session, slug="nova-drift", title="Nova Drift", price_minor=1500)
    make_keys(session, product, 3)
    return product


def test_checkout_with_an_empty_cart_writes_nothing(session, in_stock):
    state = state_for(CartState, "/cart")
    for cart in ("[]", "garbage", '[{"slug": "nova-drift", "qty": 0}]'):
        state.cart_json = cart
        specs = call(state.place_order, {"email": "ann@example.com"})
        assert state.error == "Your cart is empty." and redirect_of(specs) is None
        assert not state.placing
    assert count(session, Order) == 0


@pytest.mark.parametrize("email", ["", "not-an-address", "a@b", "ann@example.com\nBcc: x@y.z"])
def test_checkout_with_a_bad_email_writes_nothing(session, in_stock, email):
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": "nova-drift", "qty": 1}])
    specs = call(state.place_order, {"email": email})
    assert redirect_of(specs) is None
    assert "e-mail" in state.error and not state.placing
    assert parse_cart(state.cart_json) == [{"slug": "nova-drift", "qty": 1}]  # cart kept
    assert count(session, Order) == 0


def test_checkout_with_too_many_writes_nothing_and_names_the_problem(session, in_stock):
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": "nova-drift", "qty": 5}])
    specs = call(state.place_order, {"email": "ann@example.com"})
    assert redirect_of(specs) is None and "Only 3 of Nova Drift" in state.error
    assert state.lines[0]["problem"] and not state.can_checkout  # quoted again for the page
    assert count(session, Order) == 0


def test_place_order_redirects_to_payment_and_clears_the_cart(session, in_stock, test_settings):
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": "nova-drift", "qty": 2}])
    specs = call(state.place_order, {"email": "  Ann@Example.com "})
    target = loaded(specs)  # a full load: its token becomes a cookie, never router data
    order = fresh(session).exec(select(Order)).one()
    assert target is not None
    assert target.startswith(f"{test_settings.public_url}/pay/{order.number}?token=")
    assert (order.email, order.status, order.total_minor) == (
        "ann@example.com",
        "pending_payment",
        3000,
    )
    assert order.customer_id is None
    assert state.cart_json == "[]" and state.cart_count == 0 and not state.placing
    token = parse_qs(urlsplit(target).query)["token"][0]
    # The token opens this order (its expiry second may differ from one made now).
    assert check_token(ORDER_ACCESS_PURPOSE, token) == order.number


def test_place_order_signed_in_belongs_to_the_account(session, in_stock):
    signed = accounts.create_account(email="bea@example.com", password=PASSWORD)
    cart = state_for(CartState, "/cart", cookies=session_cookie(signed.token))
    cart.cart_json = json.dumps([{"slug": "nova-drift", "qty": 1}])
    call(cart.load)
    assert cart.signed_in and cart.email == "bea@example.com"  # prefilled from the account
    assert loaded(call(cart.place_order, {"email": "bea@example.com"}))
    assert fresh(session).exec(select(Order)).one().customer_id == signed.customer_id


def test_checkout_signed_in_pays_with_credit_and_a_gift_card(session, in_stock):
    """Issue #18: the cart offers the customer's credit; a gift card and the credit pay
    the order wholly, so it is paid at once and the customer lands on the order page."""
    from core.db import session_scope
    from core.services import credit, giftcards
    from core.services.audit import Actor

    signed = accounts.create_account(email="cat@example.com", password=PASSWORD)
    with session_scope() as s:
        credit.adjust_customer_credit(
            session=s,
            customer_id=signed.customer_id,
            amount_minor=1000,
            currency="EUR",
            actor=Actor.operator("olga"),
            note="welcome",
            idempotency_key="w",
        )
        code = giftcards.issue(
            session=s, amount_minor=2500, currency="EUR", actor=Actor.operator("olga")
        ).code
    cart = state_for(CartState, "/cart", cookies=session_cookie(signed.token))
    cart.cart_json = json.dumps([{"slug": "nova-drift", "qty": 2}])  # 3000
    call(cart.load)
    assert cart.credit_text == "Use my store credit (€10.00)"
    target = loaded(
        call(
            cart.place_order,
            {"email": "cat@example.com", "gift_cards": f" {code.lower()} ,\n", "use_credit": "on"},
        )
    )
    order = fresh(session).exec(select(Order)).one()
    assert target is not None and f"/orders/{order.number}" in target
    assert order.status == "paid" and order.payment_provider == "balances"
    assert credit.balance_in(customer_id=signed.customer_id, currency="EUR") == 500
    assert giftcards.check_balance(code=code, ip=None).balance_minor == 0


def test_checkout_as_a_guest_is_never_offered_credit_and_a_bad_code_is_named(session, in_stock):
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": "nova-drift", "qty": 1}])
    call(state.load)
    assert state.credit_text == ""
    specs = call(
        state.place_order,
        {"email": "g@example.com", "gift_cards": "GC-NOPE", "use_credit": "on"},
    )
    assert redirect_of(specs) is None and "not a gift card code" in state.error
    assert count(session, Order) == 0


def _placed(session, product) -> tuple[str, str]:
    """An order placed through the cart page; returns (number, access token)."""
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps([{"slug": product.slug, "qty": 1}])
    target = loaded(call(state.place_order, {"email": "payer@example.com"}))
    assert target
    split = urlsplit(target)
    return split.path.rsplit("/", 1)[1], parse_qs(split.query)["token"][0]


@pytest.mark.parametrize("token", ["", "wrong", "x" * 2000, "OTHER"])
def test_pay_page_with_a_wrong_token_shows_not_found(session, in_stock, token, queued_jobs):
    number, _ = _placed(session, in_stock)
    if token == "OTHER":  # a real token, for another order
        token = order_access_token("T000000000000")
    state = state_for(PayState, f"/pay/{number}?token={token}")
    call(state.load)
    assert not state.found and state.error.startswith("We could not find that order")
    assert state.total == "" and state.items == [] and not state.payable
    assert call(state.pay) == []  # nothing to pay: only the order's confirmation is queued
    assert [name for name, *_ in queued_jobs] == ["send_order_email"]
    assert fresh(session).exec(select(Order)).one().status == "pending_payment"


def test_pay_page_pays_and_goes_to_the_order(session, in_stock, queued_jobs):
    number, token = _placed(session, in_stock)
    state = state_for(PayState, f"/pay/{number}?token={token}")
    call(state.load)
    assert state.found and state.payable and state.total == "€15.00"
    assert state.items == [{"title": "Nova Drift", "qty": "1", "platform": "Steam"}]
    target = redirect_of(call(state.pay))
    assert target == f"/orders/{number}"  # the order's cookie opens it
    assert not state.payable and not state.paying
    # the order's confirmation, then the payment's event
    assert [name for name, *_ in queued_jobs] == ["send_order_email", "process_webhook"]


def test_pay_page_asks_for_what_a_gift_card_left_and_the_order_page_says_what_it_paid(
    session, in_stock, queued_jobs
):
    from core.db import session_scope
    from core.services import giftcards
    from core.services.audit import Actor

    with session_scope() as s:
        code = giftcards.issue(
            session=s, amount_minor=1000, currency="EUR", actor=Actor.operator("olga")
        ).code
    cart = state_for(CartState, "/cart")
    cart.cart_json = json.dumps([{"slug": in_stock.slug, "qty": 1}])  # €15.00
    target = loaded(call(cart.place_order, {"email": "p@example.com", "gift_cards": code}))
    assert target
    split = urlsplit(target)
    number, token = split.path.rsplit("/", 1)[1], parse_qs(split.query)["token"][0]
    pay = state_for(PayState, f"/pay/{number}?token={token}")
    call(pay.load)
    assert pay.total == "€5.00"
    page = state_for(OrderState, f"/orders/{number}?token={token}")
    call(page.load)
    assert page.total == "€15.00"
    assert page.balances_text == "€10.00 paid with gift cards and store credit"


# -- the order page and key portal -------------------------------------------------------


@pytest.fixture
def delivered(session, queued_jobs):
    """A fulfilled order of two Steam keys from stock: (order, token, codes)."""
    product = make_product(
        session, title="Comet Trail", platform="Steam", region="EU", price_minor=1999,
        activation_instructions="Open Steam, then Activate a product.",
    )  # fmt: skip
    codes = ["AAAAA-BBBBB-CCCCC", "DDDDD-EEEEE-FFFFF"]
    make_keys(session, product, 2, codes=codes)
    order = make_order(
        session,
        [(product, 2)],
        status="paid",
        email="owner@example.com",
        delivery_consent_at=utcnow(),
    )
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    return order, order_access_token(order.number), codes


def test_order_page_formats_a_delivered_order(session, delivered):
    order, token, _ = delivered
    state = state_for(OrderState, f"/orders/{order.number}?token={token}")
    assert call(state.load) == []  # settled: no live watcher
    assert state.found and state.number == order.number and state.error == ""
    assert (state.status, state.status_label, state.stage, state.progress) == (
        "fulfilled", "Delivered", 4, 100,
    )  # fmt: skip
    assert (state.total, state.email) == ("€39.98", "owner@example.com")
    assert state.created.endswith("UTC")
    [line] = state.lines
    assert (line["title"], line["qty"], line["unit_price"], line["pending"]) == (
        "Comet Trail", 2, "€19.99", 0,
    )  # fmt: skip
    assert line["activation_url"] == "https://store.steampowered.com/account/registerkey"
    assert line["activation_instructions"] == "Open Steam, then Activate a product."
    assert [k["masked"] for k in line["keys"]] == ["XXXXX-XXXXX-•••••"] * 2
    assert not any(k["revealed"] or k["reported"] for k in line["keys"])


def _view(status: str, stage: int, label: str, *, qty: int = 1, pending: int = 0, keys=()):
    line = SimpleNamespace(
        title="Game", platform="Xbox", region="GLOBAL", quantity=qty, unit_price_minor=500,
        activation_url=None, activation_instructions="", keys=list(keys), pending=pending,
    )  # fmt: skip
    return SimpleNamespace(
        status=status, status_label=label, stage=stage, stages=4, email="x@example.com",
        created_at=None, total_minor=500 * qty, currency="USD", lines=[line],
        consent_given=False, country=None, vat_rate_bp=0, vat_minor=0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "stage", "progress", "pending"),
    [
        ("pending_payment", 1, 0, 0),
        ("paid", 2, 33, 1),
        ("paid", 3, 67, 1),
        ("fulfilled", 4, 100, 0),
        ("cancelled", 0, 0, 0),
    ],
)
def test_order_view_formatting(status, stage, progress, pending):
    state = state_for(OrderState, "/orders/X")
    state._apply(_view(status, stage, status.title(), pending=pending))
    assert (state.status, state.stage, state.progress) == (status, stage, progress)
    assert state.total == "$5.00" and state.created == ""
    [line] = state.lines
    assert line["activation_url"] == "" and line["keys"] == []
    # "keys on the way" only while the shop owes them: not before payment, not once cancelled
    assert line["pending"] == pending


def test_order_page_of_a_cancelled_order_shows_no_keys_on_the_way(session):
    product = make_product(session)
    order = make_order(session, [(product, 2)], status="cancelled")
    state = state_for(
        OrderState, f"/orders/{order.number}?token={order_access_token(order.number)}"
    )
    assert call(state.load) == []
    assert state.status_label == "Cancelled" and state.lines[0]["pending"] == 0


def test_order_page_of_an_unsettled_order_starts_the_live_watcher(session):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="paid")
    state = state_for(
        OrderState, f"/orders/{order.number}?token={order_access_token(order.number)}"
    )
    [watch] = call(state.load)
    assert watch.handler.fn.__name__ == "watch" and arg_of(watch, "generation") == 1
    assert state.status == "paid" and state.lines[0]["pending"] == 1
    [again] = call(state.load)  # a newer page load: a new generation replaces the old watcher
    assert arg_of(again, "generation") == 2


@pytest.mark.parametrize("token", ["", "bad", "OTHER"])
def test_order_page_without_the_right_link_shows_nothing(session, delivered, token):
    order, _, _ = delivered
    if token == "OTHER":
        token = order_access_token(order.number + "X")
    state = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(state.load)
    assert not state.found and state.lines == [] and state.status == ""
    assert state.error.startswith("We could not find that order")


def _leaks(state: rx.State, secrets_: list[str]) -> list[str]:
    """Where in the state tree (any var of any state, and what the state manager would
    store in Redis) one of ``secrets_`` appears. Names only, never the values."""
    found = []
    for node in tree(state):
        stored = node._serialize()
        if any(s.encode() in stored for s in secrets_):
            found.append(f"{type(node).__name__} (serialized)")
        for name in type(node).__fields__:
            text = repr(getattr(node, name))
            if any(s in text for s in secrets_):
                found.append(f"{type(node).__name__}.{name}")
        for name, value in vars(node).items():
            if any(s in repr(value) for s in secrets_):
                found.append(f"{type(node).__name__}.__dict__[{name}]")
    return found


def test_reveal_sends_the_code_in_a_script_and_keeps_it_out_of_the_state(session, delivered):
    order, token, codes = delivered
    state = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(state.load)
    key_id = state.lines[0]["keys"][0]["id"]
    specs = call(state.reveal, key_id)
    [script] = scripts_of(specs)
    shown = [code for code in codes if json.dumps(code) in script]
    assert len(shown) == 1, "the script does not carry exactly one of the order's codes"
    assert script.startswith(f"window.ksShowKey({json.dumps(key_id)}, ")
    assert state.lines[0]["keys"][0]["revealed"] and not state.lines[0]["keys"][1]["revealed"]
    assert _leaks(state, codes) == []

    # and after the live watcher re-read the order, still nothing
    state._apply(state._read())
    assert state.lines[0]["keys"][0]["revealed"]
    assert _leaks(state, codes) == []
    # the search does find what the state holds
    assert "OrderState.number" in _leaks(state, [order.number])


def test_reveal_of_a_key_not_in_the_order_is_refused(session, delivered):
    order, token, codes = delivered
    other = make_product(session)
    make_keys(session, other, 1)
    state = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(state.load)
    for key_id in (str(uuid.uuid4()), "not-a-uuid", ""):
        specs = call(state.reveal, key_id)
        assert scripts_of(specs) == []
        [(kind, js)] = toasts_of(specs)
        assert kind == "error" and "not part of this order" in js
    assert _leaks(state, codes) == []


def test_reveal_without_the_link_is_refused(session, delivered):
    order, token, _ = delivered
    owner = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(owner.load)
    key_id = owner.lines[0]["keys"][0]["id"]
    stranger = state_for(OrderState, f"/orders/{order.number}")
    call(stranger.load)
    stranger.number = order.number  # even if it forged the page's vars
    specs = call(stranger.reveal, key_id)
    assert scripts_of(specs) == [] and toasts_of(specs)[0][0] == "error"


def test_report_a_faulty_key(session, delivered):
    order, token, _ = delivered
    state = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(state.load)
    key_id = state.lines[0]["keys"][1]["id"]
    call(state.open_report, key_id)
    assert state.report_open and state.report_key_id == key_id
    specs = call(state.send_report, {"message": "   "})
    assert toasts_of(specs)[0][0] == "error" and state.report_open
    assert count(session, KeyReport) == 0
    specs = call(state.send_report, {"message": "Steam says the key was already used."})
    assert toasts_of(specs)[0][0] == "success" and not state.report_open
    assert [k["reported"] for k in state.lines[0]["keys"]] == [False, True]
    report = fresh(session).exec(select(KeyReport)).one()
    assert (str(report.key_id), report.status, report.email) == (
        key_id,
        "open",
        "owner@example.com",
    )


# -- accounts ------------------------------------------------------------------------------


def _token_customer(token: str) -> int | None:
    info = accounts.customer_for_token(token=token)
    return info.id if info else None


def test_sign_up_says_the_same_for_a_new_and_a_known_address(session, account_mail, var_dir):
    """No account enumeration: the page's answer does not depend on the address; the
    e-mail tells the owner what happened."""
    accounts.create_account(email="known@example.com", password=PASSWORD)
    answers = []
    for email in ("Cleo@Example.com", "known@example.com"):
        state = state_for(AccountState, "/signup")
        call(state.load_form)
        specs = call(
            state.sign_up,
            {"email": email, "password": PASSWORD, "password_again": PASSWORD, "name": " Cleo "},
        )
        assert handed_off(specs) is None and not state.signed_in and state.error == ""
        answers.append(state.info.replace(email, "ADDRESS"))
    assert answers[0] == answers[1] and "sent a message to ADDRESS" in answers[0]
    cleo = fresh(session).exec(select(Customer).where(Customer.email == "cleo@example.com")).one()
    assert cleo.display_name == "Cleo" and cleo.verified_at is None
    subjects = {i.to: i.subject for i in list_outbox(var_dir / "outbox")}
    assert subjects["cleo@example.com"] == "Confirm your keyshop account"
    assert subjects["known@example.com"].startswith("Someone tried to create")


def test_sign_up_through_a_referral_link_is_recorded_and_shown_to_the_referrer(
    session, account_mail
):
    from core.models import Referral
    from core.services.referrals import referral_code

    ada = accounts.create_account(email="ada@gmail.com", password=PASSWORD)
    code = referral_code(ada.customer_id)
    state = state_for(AccountState, f"/signup?ref={code}")
    call(state.load_form)
    call(
        state.sign_up, {"email": "lin@gmail.com", "password": PASSWORD, "password_again": PASSWORD}
    )
    assert state.error == "" and "sent a message" in state.info
    forged = state_for(AccountState, "/signup?ref=1-0000000000")
    call(forged.load_form)
    call(forged.sign_up, {"email": "x@gmail.com", "password": PASSWORD, "password_again": PASSWORD})
    assert "referral link is not valid" in forged.error
    [referral] = fresh(session).exec(select(Referral)).all()
    lin = fresh(session).exec(select(Customer).where(Customer.email == "lin@gmail.com")).one()
    assert (referral.referrer_id, referral.referred_id, referral.status) == (
        ada.customer_id,
        lin.id,
        "pending",
    )
    assert count(session, Customer) == 2  # the forged link wrote nothing
    page = state_for(AccountState, "/account", cookies=session_cookie(ada.token))
    call(page.load_account)
    assert page.referral_link.endswith(f"/signup?ref={code}")
    assert [(r["who"], r["status"]) for r in page.referrals] == [
        ("li…@gmail.com", "waiting for their first order to be kept")
    ]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"email": "d@example.com", "password": PASSWORD, "password_again": PASSWORD + "!"},
            "differ",
        ),
        ({"email": "d@example.com", "password": "short", "password_again": "short"}, "at least 12"),
        ({"email": "nope", "password": PASSWORD, "password_again": PASSWORD}, "e-mail"),
        ({}, "e-mail"),
    ],
)
def test_sign_up_refused_sets_no_cookie_and_writes_nothing(session, form, message):
    state = state_for(AccountState, "/signup")
    root_of(state)._clean()
    specs = call(state.sign_up, form)
    assert redirect_of(specs) is None and message in state.error and not state.busy
    assert handed_off(specs) is None and not state.signed_in
    assert count(session, Customer) == 0


def test_sign_in_and_sign_out(session):
    accounts.create_account(email="dan@example.com", password=PASSWORD, display_name="Dan")
    state = state_for(AccountState, "/signin")
    specs = call(state.sign_in, {"email": "dan@example.com", "password": "wrong password 1"})
    assert handed_off(specs) is None and not state.signed_in
    assert state.error == "That e-mail address and password do not match an account."

    specs = call(state.sign_in, {"email": "DAN@example.com", "password": PASSWORD})
    token = handed_off(specs)
    assert state.error == "" and state.customer_name == "Dan"
    assert token and _token_customer(token) is not None

    # the page /account loads with the cookie the server set
    state = state_for(AccountState, "/account", cookies=session_cookie(token))
    call(state.load_account)
    assert state.signed_in and state.orders == []
    specs = call(state.sign_out)
    assert scripts_of(specs) == [SIGN_OUT_SCRIPT]  # clears the cookie, then goes home
    assert not state.signed_in and state.customer_email == ""
    assert _token_customer(token) is None  # ended on the server


def test_sign_in_is_rate_limited_with_a_message(session):
    accounts.create_account(email="eve@example.com", password=PASSWORD)
    state = state_for(AccountState, "/signin")
    limit = accounts.SIGN_IN_LIMITS["pair"][1]
    for _ in range(limit):
        call(state.sign_in, {"email": "eve@example.com", "password": "wrong password 1"})
    call(state.sign_in, {"email": "eve@example.com", "password": PASSWORD})
    assert state.error.startswith("Too many attempts") and not state.signed_in


def test_account_page_shows_credit_and_adds_a_gift_card_to_it(session):
    from core.db import session_scope
    from core.services import giftcards
    from core.services.audit import Actor

    signed = accounts.create_account(email="fay@example.com", password=PASSWORD)
    with session_scope() as s:
        code = giftcards.issue(
            session=s, amount_minor=1500, currency="EUR", actor=Actor.operator("olga")
        ).code
    state = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    call(state.load_account)
    assert state.credit_balance == "€0.00" and state.credit_lines == []
    call(state.redeem_gift_card, {"code": code})
    assert state.info == "€15.00 added to your store credit." and state.error == ""
    assert state.credit_balance == "€15.00"
    assert [(ln["what"], ln["amount"]) for ln in state.credit_lines] == [
        ("Gift card redeemed", "€15.00")
    ]
    call(state.redeem_gift_card, {"code": code})
    assert "no balance left" in state.error and state.credit_balance == "€15.00"


def test_account_page_redirects_to_sign_in_when_signed_out(session):
    state = state_for(AccountState, "/account")
    assert redirect_of(call(state.load_account)) == "/signin"
    # a cookie for a session that ended is forgotten, and still leads to sign-in
    signed = accounts.create_account(email="fay@example.com", password=PASSWORD)
    accounts.sign_out(token=signed.token)
    state = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    assert redirect_of(call(state.load_account)) == "/signin"
    assert not state.signed_in
    state = state_for(AccountState, "/account", cookies=session_cookie("garbage!"))
    assert redirect_of(call(state.load_account)) == "/signin" and not state.signed_in


def test_account_page_lists_the_orders(session):
    signed = accounts.create_account(email="gus@example.com", password=PASSWORD)
    product = make_product(session, price_minor=1234)
    order = make_order(
        session, [(product, 3)], email="gus@example.com", customer_id=signed.customer_id
    )
    make_order(session, [(product, 1)], email="someone@example.com")
    state = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    assert redirect_of(call(state.load_account)) is None
    assert state.orders == [
        {
            "number": order.number,
            "status": "Paid",
            "created": state.orders[0]["created"],
            "total": "€37.02",
            "items": "3",
            "href": f"/orders/{order.number}",
        }
    ]


def _reset_link(var_dir, email: str) -> str:
    [info] = [i for i in list_outbox(var_dir / "outbox") if i.to == email]
    body = read_outbox_message(info.path).get_body(preferencelist=("plain",)).get_content()
    return next(word for word in body.split() if "/reset-password?token=" in word)


def test_password_reset_sets_a_new_cookie_and_ends_the_old_sessions(session, var_dir, account_mail):
    old = accounts.create_account(email="hal@example.com", password=PASSWORD)
    forgot = state_for(AccountState, "/forgot-password")
    call(forgot.request_reset, {"email": "hal@example.com"})
    assert forgot.info.startswith("If an account uses that address") and forgot.error == ""
    call(forgot.request_reset, {"email": "nobody@example.com"})  # the same answer
    assert forgot.info.startswith("If an account uses that address") and forgot.error == ""
    link = _reset_link(var_dir, "hal@example.com")

    address = urlsplit(link).path + "?" + urlsplit(link).query
    page = state_for(AccountState, address, cookies=session_cookie(old.token))
    assert page.router.url.query_parameters.get("token") is None  # a cookie now
    call(page.load_reset)
    assert page.error == ""
    form = {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    token = handed_off(call(page.reset_password, form))
    assert token and token != old.token and page.signed_in
    assert _token_customer(token) == old.customer_id
    assert _token_customer(old.token) is None
    # the link works once
    again = state_for(AccountState, urlsplit(link).path + "?" + urlsplit(link).query)
    call(again.load_reset)
    assert handed_off(call(again.reset_password, form)) is None
    assert "already used" in again.error and not again.signed_in
    with pytest.raises(accounts.InvalidCredentials):
        accounts.sign_in(email="hal@example.com", password=PASSWORD)


def test_password_reset_without_a_good_link(session):
    page = state_for(AccountState, "/reset-password")
    call(page.load_reset)
    assert page.error == "This page needs the link from the e-mail we sent you."
    page = state_for(AccountState, "/reset-password?token=forged.token.value")
    call(page.load_reset)
    form = {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    assert handed_off(call(page.reset_password, form)) is None
    assert page.error == "This password reset link is not valid." and not page.signed_in
    assert count(session, CustomerSession) == 0


def test_forgot_password_with_a_bad_address_says_so(session):
    state = state_for(AccountState, "/forgot-password")
    call(state.request_reset, {"email": "no address"})
    assert "e-mail" in state.error and state.info == "" and not state.busy


def test_account_page_lists_sessions_and_signs_out_one_or_everywhere(session):
    first = accounts.create_account(email="ivo@example.com", password=PASSWORD, user_agent="Laptop")
    phone = accounts.sign_in(email="ivo@example.com", password=PASSWORD, user_agent="Phone")
    state = state_for(AccountState, "/account", cookies=session_cookie(first.token))
    call(state.load_account)
    assert [(s["browser"], s["current"]) for s in state.sessions] == [
        ("Phone", ""),
        ("Laptop", "yes"),
    ]
    assert _leaks(state, [first.token, phone.token]) == []
    # end the phone's session from the laptop
    [(kind, _)] = toasts_of(call(state.end_session, state.sessions[0]["id"]))
    assert kind == "success" and [s["browser"] for s in state.sessions] == ["Laptop"]
    assert _token_customer(phone.token) is None and _token_customer(first.token) is not None
    # another customer's session id is refused
    other = accounts.create_account(email="eli@example.com", password=PASSWORD)
    [others] = list_sessions(customer_id=other.customer_id)
    [(kind, _)] = toasts_of(call(state.end_session, str(others.id)))
    assert kind == "error" and _token_customer(other.token) is not None
    # sign out everywhere: this browser too, then the cookie is cleared
    again = accounts.sign_in(email="ivo@example.com", password=PASSWORD)
    assert scripts_of(call(state.sign_out_everywhere)) == [SIGN_OUT_SCRIPT]
    assert _token_customer(first.token) is None and _token_customer(again.token) is None
    assert not state.signed_in and state.sessions == []


def test_account_page_deletes_the_account_with_its_password(session):
    signed = accounts.create_account(email="del@example.com", password=PASSWORD)
    state = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    call(state.load_account)
    assert scripts_of(call(state.delete_account, {"password": "not the password 1"})) == []
    assert "do not match" in state.error and _token_customer(signed.token) is not None
    assert scripts_of(call(state.delete_account, {"password": PASSWORD})) == [SIGN_OUT_SCRIPT]
    assert not state.signed_in and _token_customer(signed.token) is None
    assert (
        fresh(session).exec(select(Customer).where(Customer.email == "del@example.com")).first()
        is None
    )


def test_sign_in_page_offers_the_provider_only_when_configured(session, test_settings, monkeypatch):
    state = state_for(AccountState, "/signin")
    call(state.load_form)
    assert state.oidc_name == ""
    monkeypatch.setattr(test_settings, "oidc_issuer", "https://accounts.google.com")
    monkeypatch.setattr(test_settings, "oidc_client_id", "id")
    monkeypatch.setattr(test_settings, "oidc_client_secret", "secret")
    state = state_for(AccountState, "/signin?oidc=refused")
    call(state.load_form)
    assert state.oidc_name == "Google"
    assert state.error.startswith("Signing in with Google did not work: it has not verified")


def test_two_factor_set_up_sign_in_and_reveal_keep_secrets_out_of_the_state(session, monkeypatch):
    import pyotp

    from core.services import twofactor

    clock = {"t": 1_800_000_000.0}
    monkeypatch.setattr(twofactor, "now", lambda: clock["t"])
    signed = accounts.create_account(email="tfa@example.com", password=PASSWORD)
    page = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    call(page.load_account)
    assert not page.two_factor_on
    [script] = scripts_of(call(page.start_two_factor))
    assert page.two_factor_setup and "<svg" in script
    secret = json.loads(script.split('"totp-secret");if(e){e.textContent=', 1)[1].split(";}", 1)[0])
    totp = pyotp.TOTP(secret)
    [shown] = scripts_of(call(page.confirm_two_factor, {"code": totp.at(clock["t"])}))
    assert page.two_factor_on and "Recovery codes" in shown
    assert _leaks(page, [secret]) == []

    # sign-in asks for the code after the password
    signin = state_for(AccountState, "/signin")
    form = {"email": "tfa@example.com", "password": PASSWORD}
    assert handed_off(call(signin.sign_in, form)) is None
    assert signin.need_code and signin.error.startswith("Enter the 6-digit code")
    clock["t"] += 30
    assert handed_off(call(signin.sign_in, {**form, "code": totp.at(clock["t"])}))

    # and so does every reveal of the account's orders
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(
        session,
        [(product, 1)],
        status="paid",
        customer_id=signed.customer_id,
        delivery_consent_at=utcnow(),
    )
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    portal = state_for(OrderState, f"/orders/{order.number}", cookies=session_cookie(signed.token))
    call(portal.load)
    key_id = portal.lines[0]["keys"][0]["id"]
    specs = call(portal.reveal, key_id)
    assert scripts_of(specs) == [] and portal.need_code
    clock["t"] += 30
    call(portal.set_reveal_code, totp.at(clock["t"]))
    [reveal] = scripts_of(call(portal.reveal, key_id))
    assert reveal.startswith("window.ksShowKey(") and portal.reveal_code == ""


# -- issue #14: carts that add up, currency, VAT, small things ------------------------------


def test_cart_page_limits_plus_offers_undo_and_shows_vat_and_preorders(session):
    from core.models import utcnow

    two = make_product(session, slug="two-left", title="Two Left", price_minor=1190)
    make_keys(session, two, 2)
    soon = make_product(
        session,
        slug="soon",
        title="Soon",
        price_minor=1000,
        release_date=date.fromordinal(utcnow().date().toordinal() + 20),
    )
    make_keys(session, soon, 1)
    state = state_for(CartState, "/cart", headers={"accept-language": "de-DE,de;q=0.9"})
    state.cart_json = json.dumps([{"slug": "two-left", "qty": 1}, {"slug": "soon", "qty": 1}])
    call(state.load)
    assert state.country == "DE" and state.currency == "EUR"
    assert [(ln["can_add"], ln["preorder"]) for ln in state.lines] == [(True, False), (False, True)]
    assert state.total == "€21.90" and state.vat == "Includes 19% VAT (Germany): €3.50"
    call(state.change_qty, "two-left", 1)
    assert state.lines[0]["qty"] == 2 and not state.lines[0]["can_add"]
    [(kind, _)] = toasts_of(call(state.change_qty, "two-left", 1))  # refused, not added
    assert kind == "error" and state.lines[0]["qty"] == 2 and state.total == "€33.80"

    call(state.change_qty, "soon", -1)  # minus at 1: removed, and offered back
    assert [ln["slug"] for ln in state.lines] == ["two-left"] and state.undo_title == "Soon"
    call(state.undo_remove)
    assert [ln["slug"] for ln in state.lines] == ["two-left", "soon"] and state.undo_slug == ""

    call(state.set_country, "fi")
    assert state.country_choice == "FI" and state.vat.startswith("Includes 25.5% VAT (Finland)")


def test_the_currency_comes_from_the_browser_and_can_be_switched(session):
    from core.services.catalogue.prices import set_price

    game = make_product(session, slug="tri", title="Tri", price_minor=1999)
    make_keys(session, game, 2)
    set_price(session=session, product=game, currency="GBP", price_minor=1699)
    session.commit()
    state = state_for(ProductState, "/games/tri", headers={"accept-language": "en-GB,en;q=0.8"})
    call(state.load_session)
    call(state.load)
    assert state.currency == "GBP" and state.product["price"] == "£16.99"
    call(state.set_currency, "USD")
    assert state.currency_choice == "USD"
    call(state.load)
    assert not state.product["can_buy"] and state.product["not_sold"].startswith("Not sold in USD")
    assert toasts_of(call(state.add_to_cart, "tri"))[0][0] == "error"
    assert parse_cart(state.cart_json) == []


def test_see_all_deals_and_preorders_filter_and_no_results_has_no_pages(session, shelf):
    from core.models import utcnow

    make_product(session, slug="cheap", title="Cheap Deal", price_minor=500, list_price_minor=900)
    make_product(
        session,
        slug="later",
        title="Later",
        is_preorder=True,
        release_date=date.fromordinal(utcnow().date().toordinal() + 20),
    )
    deals = state_for(CatalogueState, "/games?deals=1")
    call(deals.load)
    assert [card["slug"] for card in deals.results] == ["cheap"] and deals.deals_only
    preorders = state_for(CatalogueState, "/games?preorder=1")
    call(preorders.load)
    assert [card["slug"] for card in preorders.results] == ["later"]
    nothing = state_for(CatalogueState, "/games?q=zzzzzz")
    call(nothing.load)
    assert nothing.total_text == "No games match" and nothing.pages == 0
    bounds = state_for(CatalogueState, "/games?min=20&max=10")
    call(bounds.load)
    assert bounds.error == "The lowest price must not be above the highest price."


def test_order_page_asks_consent_once_and_shows_revealed_keys_again_after_reload(session):
    product = make_product(session, title="Consent Quest")
    make_keys(session, product, 1, codes=["RELOA-DREAD-ABLE1"])
    order = make_order(session, [(product, 1)], status="paid")
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    token = order_access_token(order.number)
    page = state_for(OrderState, f"/orders/{order.number}?token={token}")
    call(page.load)
    assert page.has_keys and not page.consent_given and "right to withdraw" in page.consent_text
    key_id = page.lines[0]["keys"][0]["id"]
    [(kind, _)] = toasts_of(call(page.reveal, key_id))
    assert kind == "error"  # no reveal before consent
    call(page.give_consent, True)
    assert page.consent_given and scripts_of(call(page.reveal, key_id))

    reloaded = state_for(OrderState, f"/orders/{order.number}?token={token}")
    events = call(reloaded.load)
    assert reloaded.consent_given and reloaded.lines[0]["keys"][0]["revealed"]
    assert any(getattr(e, "handler", None) and "reveal" in str(e.handler.fn) for e in events)


def test_receipt_page_and_pdf_open_like_the_order(session, queued_jobs):
    from starlette.testclient import TestClient

    from core.services.audit import Actor
    from core.services.orders import transition_order
    from web.api.app import create_api
    from web.state.receipt import ReceiptState

    product = make_product(session, title="Paper Trail", price_minor=2000)
    order = make_order(
        session, [(product, 1)], status="pending_payment", country="FR", vat_rate_bp=2000,
        vat_minor=333,
    )  # fmt: skip
    transition_order(session=session, order_id=order.id, to_status="paid", actor=Actor.system())
    session.commit()
    token = order_access_token(order.number)
    page = state_for(ReceiptState, f"/receipts/{order.number}?token={token}")
    call(page.load)
    assert page.found and page.receipt["vat"] == "€3.33" and page.receipt["net"] == "€16.67"
    assert page.receipt["invoice_number"].endswith("-000001")
    assert [line["title"] for line in page.lines] == ["Paper Trail"]
    stranger = state_for(ReceiptState, f"/receipts/{order.number}")
    call(stranger.load)
    assert not stranger.found and stranger.receipt == {}

    with TestClient(create_api(), base_url="http://127.0.0.1:3000") as api:
        pdf = api.get(f"/api/receipts/{order.number}.pdf", params={"token": token})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        assert pdf.headers["content-type"] == "application/pdf"
        assert api.get(f"/api/receipts/{order.number}.pdf").status_code == 404


def test_find_my_order_page_answers_the_same_either_way(session, account_mail):
    from web.state.find_order import SENT, FindOrderState

    make_order(session, [(make_product(session), 1)], email="known@example.com")
    for address in ("known@example.com", "unknown@example.com"):
        page = state_for(FindOrderState, "/find-order")
        call(page.send, {"email": address})
        assert (page.notice, page.error) == (SENT, "")
    bad = state_for(FindOrderState, "/find-order")
    call(bad.send, {"email": "not an address"})
    assert bad.notice == "" and bad.error


def test_the_gift_card_page_tells_a_cards_balance_and_never_keeps_its_code(session):
    from core import i18n
    from core.db import session_scope
    from core.services import giftcards
    from core.services.audit import Actor
    from web.state.giftcard import MALFORMED, UNKNOWN, GiftCardState

    with session_scope() as s:
        issued = giftcards.issue(
            session=s, amount_minor=2500, currency="EUR", actor=Actor.operator("ops")
        )
    page = state_for(GiftCardState, "/gift-card")
    call(page.check, {"code": f"  {issued.code.lower()} "})  # typed loosely
    assert page.error == ""
    assert page.notice == f"The gift card ending in {issued.last4} has €25.00 left of €25.00."
    assert issued.code not in json.dumps(page.dict(), default=str)
    german = state_for(GiftCardState, "/de/gift-card")
    with i18n.use_language("de"):
        call(german.check, {"code": issued.code})
    assert german.notice == (
        f"Auf dem Gutschein mit der Endung {issued.last4} sind noch 25,00\xa0€ von 25,00\xa0€."
    )
    unknown = state_for(GiftCardState, "/gift-card")
    call(unknown.check, {"code": giftcards.new_code()})  # well formed, never issued
    assert (unknown.notice, unknown.error) == ("", UNKNOWN)
    typo = state_for(GiftCardState, "/gift-card")
    call(typo.check, {"code": "GC-not-a-code"})
    assert (typo.notice, typo.error) == ("", MALFORMED)


def test_my_keys_lists_every_key_of_the_account_with_guest_orders_and_reveals(session, queued_jobs):
    from core.services.cart import CartLine
    from core.services.checkout import place_order
    from core.services.consent import give_consent
    from web.state.library import LibraryState

    signed = accounts.create_account(email="lib@example.com", password=PASSWORD)
    me = fresh(session).get(Customer, signed.customer_id)
    me.verified_at = utcnow()
    session.add(me)
    session.commit()
    game = make_product(session, title="Library Lane", platform="Steam")
    make_keys(
        session, game, 3, codes=["LIBRA-RYKEY-00001", "LIBRA-RYKEY-00002", "LIBRA-RYKEY-00003"]
    )
    # a guest checkout with the verified address belongs to the account at once
    guest = place_order(email="LIB@example.com", lines=[CartLine(game.slug, 2)])
    order = fresh(session).exec(select(Order).where(Order.number == guest.number)).one()
    assert order.customer_id == signed.customer_id
    order.status = "paid"
    session.add(order)
    session.commit()
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    someone = make_order(session, [(game, 1)], email="other@example.com")
    assert fulfil_order(order_id=someone.id).outcome == "fulfilled"

    page = state_for(LibraryState, "/keys", cookies=session_cookie(signed.token))
    call(page.load)
    assert [(k["title"], k["order"]) for k in page.keys] == [("Library Lane", guest.number)] * 2
    assert all(k["needs_consent"] and not k["can_reveal"] for k in page.keys)
    give_consent(number=guest.number, customer_id=signed.customer_id)
    call(page.load)
    key_id = page.keys[0]["id"]
    assert scripts_of(call(page.reveal, key_id)) and page.keys[0]["revealed"]
    assert "LIBRA-RYKEY" not in json.dumps(page.dict())  # codes never in the state
    account_page = state_for(AccountState, "/account", cookies=session_cookie(signed.token))
    call(account_page.load_account)
    assert [o["number"] for o in account_page.orders] == [guest.number]
    signed_out = state_for(LibraryState, "/keys")
    assert redirect_of(call(signed_out.load)) == "/signin"


def test_the_home_page_shows_a_new_featured_game_at_once(session):
    """The home page's cards are cached per web worker for HOME_CACHE_SECONDS, but a
    catalogue change (here a newly featured game) is seen by the very next visitor."""
    from web.state.catalogue import home_cards

    make_product(session, title="Early Bird", slug="early-bird", featured=True)
    assert [c["title"] for c in home_cards()["featured"]] == ["Early Bird"]
    assert [c["title"] for c in home_cards()["featured"]] == ["Early Bird"]  # cached
    make_product(session, title="Late Comer", slug="late-comer", featured=True)
    assert {c["title"] for c in home_cards()["featured"]} == {"Early Bird", "Late Comer"}
