"""The frame every page shares: a header with search, cart and account, and a footer."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import LANGUAGE_NAMES, N_, current_language, localised_path
from core.i18n import gettext as _
from web.state.base import ShopState
from web.state.search import SuggestState


def language_switcher() -> rx.Component:
    """Links to this page in the other languages: a full page load through
    ``/lang/<code>`` (web/api/pages.py), which remembers the choice in a cookie."""
    here = current_language()
    return rx.hstack(
        *(
            rx.el.a(
                name,
                href=ShopState.language_hrefs[code],
                hreflang=code,
                lang=code,
                id=f"language-{code}",
                class_name="language-link",
                # Reflex renders a React Router link: load the document, do not route
                custom_attrs={"reloadDocument": True},
            )
            for code, name in LANGUAGE_NAMES.items()
            if code != here
        ),
        aria_label=_("Language"),
        role="group",
    )


def header() -> rx.Component:
    return rx.el.header(
        rx.flex(
            rx.link(
                rx.hstack(
                    rx.icon("key-round", size=22),
                    rx.text("keyshop", size="5", weight="bold"),
                    align="center",
                ),
                href=localised_path("/"),
                aria_label=_("keyshop home"),
                underline="none",
                color_scheme="gray",
                high_contrast=True,
            ),
            rx.form(
                rx.input(
                    rx.input.slot(rx.icon("search", size=16)),
                    name="q",
                    placeholder=_("Search games"),
                    type="search",
                    aria_label=_("Search games"),
                    id="header-search",
                    list="title-suggestions",
                    auto_complete="off",
                    on_change=SuggestState.suggest.debounce(200),  # type: ignore[attr-defined]
                    width="100%",
                ),
                rx.el.datalist(
                    rx.foreach(SuggestState.suggestions, lambda title: rx.el.option(value=title)),
                    id="title-suggestions",
                ),
                on_submit=ShopState.header_search,
                reset_on_submit=False,
                flex="1",
                min_width="10em",
                max_width="32em",
            ),
            rx.el.nav(
                rx.link(_("Games"), href=localised_path("/games"), id="nav-games"),
                rx.link(
                    rx.hstack(
                        rx.icon("shopping-cart", size=18),
                        rx.text(_("Cart")),
                        rx.cond(
                            ShopState.cart_count > 0,
                            rx.badge(ShopState.cart_count, id="cart-count"),
                        ),
                        spacing="1",
                        align="center",
                    ),
                    href=localised_path("/cart"),
                    id="nav-cart",
                ),
                rx.cond(
                    ShopState.signed_in,
                    rx.hstack(
                        rx.link(_("My keys"), href=localised_path("/keys"), id="nav-keys"),
                        rx.link(_("Account"), href=localised_path("/account"), id="nav-account"),
                        spacing="4",
                    ),
                    rx.link(_("Sign in"), href=localised_path("/signin"), id="nav-signin"),
                ),
                rx.select.root(
                    rx.select.trigger(aria_label=_("Currency"), id="currency"),
                    rx.select.content(
                        rx.foreach(
                            ShopState.currencies, lambda code: rx.select.item(code, value=code)
                        )
                    ),
                    value=ShopState.currency,
                    on_change=ShopState.set_currency,
                    size="2",
                ),
                language_switcher(),
                aria_label=_("Main"),
                display="flex",
                gap="var(--space-4)",
                align_items="center",
            ),
            gap="1em",
            align="center",
            justify="between",
            wrap="wrap",
            max_width="1200px",
            margin="0 auto",
            padding="0.75em 1em",
        ),
        class_name="site-header",
        border_bottom="1px solid var(--gray-a5)",
        background="var(--color-panel-solid)",
        position="sticky",
        top="0",
        z_index="10",
    )


#: The legal pages (core.services.legal), linked from every footer and from checkout.
LEGAL_LINKS = (
    ("find-order", N_("Find my order")),
    ("gift-card", N_("Gift card balance")),
    ("terms", N_("Terms")),
    ("privacy", N_("Privacy")),
    ("imprint", N_("Imprint and contact")),
    ("withdrawal", N_("Right of withdrawal")),
)


#: Footer links to pages of their own (the others are legal pages).
OWN_PAGES = frozenset({"find-order", "gift-card"})


def legal_links() -> rx.Component:
    return rx.flex(
        *(
            rx.link(
                _(label),
                href=localised_path(f"/{slug}" if slug in OWN_PAGES else f"/legal/{slug}"),
                size="2",
                id=f"legal-{slug}",
            )
            for slug, label in LEGAL_LINKS
        ),
        gap="1.25em",
        wrap="wrap",
        class_name="legal-links",
    )


def footer() -> rx.Component:
    return rx.el.footer(
        legal_links(),
        rx.text(
            _(
                "keyshop — digital game keys, delivered in seconds. Keys are region-locked "
                "where noted. Prices include VAT."
            ),
            size="1",
            color_scheme="gray",
            margin_top="0.75em",
        ),
        max_width="1200px",
        margin="0 auto",
        padding="2em 1em",
    )


def page(*children: Any, title: str | None = None) -> rx.Component:
    """The frame: header, the page's one ``<main id="ks-main">`` (its ``title`` as the
    page's ``h1``), footer. ``web.api.pages`` hides its server-filled copy of the page
    once ``#ks-main`` is there."""
    body = [rx.heading(title, as_="h1", size="7", margin_bottom="0.5em")] if title else []
    return rx.box(
        header(),
        rx.el.main(
            *body,
            *children,
            id="ks-main",
            # The path once its on_load handlers have run (empty while they run): a
            # script or a browser test waits for it before using a form the handlers
            # reset, so a fast first click is never undone by a late on_load.
            data_loaded=rx.cond(rx.State.is_hydrated, rx.State.router.url.path, ""),
            max_width="1200px",
            margin="0 auto",
            padding="1em",
            min_height="70vh",
        ),
        footer(),
    )


def callout_error(message: Any) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(
            message, icon="triangle-alert", color_scheme="red", role="alert", margin_y="0.5em"
        ),
    )


def callout_info(message: Any) -> rx.Component:
    return rx.cond(message != "", rx.callout(message, icon="info", margin_y="0.5em"))


def one_field_form(
    *,
    intro: str,
    error: Any,
    notice: Any,
    field: rx.Component,
    button: rx.Component,
    on_submit: Any,
    reset_on_submit: bool = False,
) -> tuple[rx.Component, ...]:
    """A page's body that asks for one thing (an address, a code): what it is for, the
    answer or the error, and the field with its button. For :func:`page`."""
    return (
        rx.text(intro, size="3"),
        callout_error(error),
        callout_info(notice),
        rx.form(
            rx.vstack(field, button, width="100%", max_width="28em"),
            on_submit=on_submit,
            reset_on_submit=reset_on_submit,
        ),
    )
