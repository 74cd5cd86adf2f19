"""The Reflex app: the storefront and key portal, with the HTTP API (webhooks, health,
the JSON store API) mounted through ``api_transformer`` on the same port."""

from __future__ import annotations

import reflex as rx

import tasks
from core.config import get_settings
from web.api.app import create_api
from web.api.pages import fill_pages
from web.pages import account, buy, order, shop
from web.state.account import AccountState
from web.state.base import ShopState
from web.state.catalogue import CatalogueState, HomeState, ProductState
from web.state.checkout import CartState, PayState
from web.state.order import OrderState

# Webhooks and payments enqueue work: onto the real queue (SQLite or Redis), never run
# inline in the web process.
tasks.configure(get_settings())

app = rx.App(
    # the HTTP API, then the page shells filled for crawlers (web/api/pages.py)
    api_transformer=[create_api(), fill_pages],
    head_components=[
        rx.el.meta(name="description", content="keyshop: game keys delivered in seconds"),
        rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml"),
        rx.script(order.PORTAL_SCRIPT),
    ],
)

app.add_page(
    shop.home,
    route="/",
    title="keyshop — game keys",
    on_load=[ShopState.load_session, HomeState.load],
)
app.add_page(
    shop.catalogue,
    route="/games",
    title="Games · keyshop",
    on_load=[ShopState.load_session, CatalogueState.load],
)
app.add_page(
    shop.product,
    route="/games/[slug]",
    title=ProductState.page_title,
    on_load=[ShopState.load_session, ProductState.load],
)
app.add_page(buy.cart, route="/cart", title="Cart · keyshop", on_load=CartState.load)
app.add_page(buy.pay, route="/pay/[number]", title="Test payment · keyshop", on_load=PayState.load)
app.add_page(
    order.order, route="/orders/[number]", title="Your order · keyshop", on_load=OrderState.load
)
app.add_page(
    account.sign_in, route="/signin", title="Sign in · keyshop", on_load=AccountState.load_form
)
app.add_page(
    account.sign_up,
    route="/signup",
    title="Create an account · keyshop",
    on_load=AccountState.load_form,
)
app.add_page(
    account.forgot_password,
    route="/forgot-password",
    title="Forgot password · keyshop",
    on_load=AccountState.load_form,
)
app.add_page(
    account.reset_password,
    route="/reset-password",
    title="New password · keyshop",
    on_load=AccountState.load_reset,
)
app.add_page(
    account.account,
    route="/account",
    title="Your account · keyshop",
    on_load=AccountState.load_account,
)
app.add_page(
    shop.not_found,
    route="404",
    title="Page not found · keyshop",
    on_load=ShopState.load_session,
)
