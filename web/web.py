"""The Reflex app: the storefront and key portal, with the HTTP API (webhooks, health,
the JSON store API) mounted through ``api_transformer`` on the same port."""

from __future__ import annotations

import reflex as rx

import tasks
from core.config import get_settings
from core.i18n import N_
from web.api.app import create_api
from web.api.pages import fill_pages
from web.i18n import LanguageMiddleware, add_localised_page
from web.pages import account, buy, find_order, giftcard, legal, library, order, receipt, shop
from web.state.account import AccountState
from web.state.base import ShopState
from web.state.catalogue import CatalogueState, HomeState, ProductState
from web.state.checkout import CartState, PayState
from web.state.find_order import FindOrderState
from web.state.giftcard import GiftCardState
from web.state.legal import LegalState
from web.state.library import LibraryState
from web.state.order import OrderState
from web.state.receipt import ReceiptState

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
        # Tap targets of at least 44 px (WCAG 2.5.5) for every button, select and link
        # in the header, footer and cart.
        rx.el.style(
            ".rt-BaseButton, .rt-SelectTrigger { min-height: 44px; min-width: 44px; }"
            " .site-header a, .legal-links a, #nav-cart { display: inline-flex; align-items: center;"
            " min-height: 44px; }"
            " .language-link { color: var(--accent-11); text-decoration: underline; }"
        ),
    ],
)
# every event in the language of the page that sent it
app.add_middleware(LanguageMiddleware())

# Each page in English at its route and in German under /de (web/i18n.py).
add_localised_page(
    app,
    shop.home,
    route="/",
    title=N_("keyshop — game keys"),
    on_load=[ShopState.load_session, HomeState.load],
)
add_localised_page(
    app,
    shop.catalogue,
    route="/games",
    title=N_("Games · keyshop"),
    on_load=[ShopState.load_session, CatalogueState.load],
)
add_localised_page(
    app,
    shop.product,
    route="/games/[slug]",
    title=ProductState.page_title,
    on_load=[ShopState.load_session, ProductState.load],
)
add_localised_page(
    app,
    legal.legal,
    route="/legal/[slug]",
    title=N_("keyshop"),
    on_load=[ShopState.load_session, LegalState.load],
)
add_localised_page(app, buy.cart, route="/cart", title=N_("Cart · keyshop"), on_load=CartState.load)
add_localised_page(
    app, buy.pay, route="/pay/[number]", title=N_("Test payment · keyshop"), on_load=PayState.load
)
add_localised_page(
    app,
    order.order,
    route="/orders/[number]",
    title=N_("Your order · keyshop"),
    on_load=OrderState.load,
)
add_localised_page(
    app, library.library, route="/keys", title=N_("My keys · keyshop"), on_load=LibraryState.load
)
add_localised_page(
    app,
    find_order.find_order,
    route="/find-order",
    title=N_("Find my order · keyshop"),
    on_load=FindOrderState.load_session,
)
add_localised_page(
    app,
    giftcard.gift_card_balance,
    route="/gift-card",
    title=N_("Gift card balance · keyshop"),
    on_load=GiftCardState.load_session,
)
add_localised_page(
    app,
    receipt.receipt,
    route="/receipts/[number]",
    title=N_("Receipt · keyshop"),
    on_load=ReceiptState.load,
)
add_localised_page(
    app,
    account.sign_in,
    route="/signin",
    title=N_("Sign in · keyshop"),
    on_load=AccountState.load_form,
)
add_localised_page(
    app,
    account.sign_up,
    route="/signup",
    title=N_("Create an account · keyshop"),
    on_load=AccountState.load_form,
)
add_localised_page(
    app,
    account.forgot_password,
    route="/forgot-password",
    title=N_("Forgot password · keyshop"),
    on_load=AccountState.load_form,
)
add_localised_page(
    app,
    account.reset_password,
    route="/reset-password",
    title=N_("New password · keyshop"),
    on_load=AccountState.load_reset,
)
add_localised_page(
    app,
    account.account,
    route="/account",
    title=N_("Your account · keyshop"),
    on_load=AccountState.load_account,
)
add_localised_page(
    app,
    shop.not_found,
    route="404",
    title=N_("Page not found · keyshop"),
    on_load=ShopState.load_session,
)
