"""Home, catalogue and product pages."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path, use_language
from web.components.cards import cover, product_grid
from web.components.layout import callout_error, callout_info, page
from web.state.base import ShopState
from web.state.catalogue import ANY, SORTS, CatalogueState, HomeState, ProductState


def section(title: str, items: Any, section_id: str, more: str) -> rx.Component:
    return rx.cond(
        items.length() > 0,
        rx.vstack(
            rx.hstack(
                rx.heading(title, as_="h2", size="5"),
                rx.link(_("See all"), href=localised_path(more), size="2"),
                justify="between",
                align="baseline",
                width="100%",
            ),
            product_grid(items, grid_id=section_id),
            width="100%",
            margin_bottom="2em",
        ),
    )


def home() -> rx.Component:
    return page(
        rx.vstack(
            rx.heading(_("Game keys, delivered in seconds"), as_="h1", size="8"),
            rx.text(
                _(
                    "Buy a key, pay, and reveal it in your key portal straight away. From our "
                    "own stock first, from trusted wholesale partners when we run out."
                ),
                size="3",
                color_scheme="gray",
            ),
            rx.link(rx.button(_("Browse all games"), size="3"), href=localised_path("/games")),
            spacing="3",
            padding_y="1.5em",
            align="start",
        ),
        callout_error(HomeState.error),
        section(_("Featured"), HomeState.featured, "featured", "/games"),
        section(_("Deals"), HomeState.deals, "deals", "/games?deals=1"),
        section(_("New releases"), HomeState.new_releases, "new-releases", "/games?sort=newest"),
        section(_("Pre-orders"), HomeState.preorders, "preorders", "/games?preorder=1"),
    )


def facet_select(name: str, label: str, any_label: str, options: Any, value: Any) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.select.root(
            rx.select.trigger(placeholder=label, aria_label=label, id=f"filter-{name}"),
            rx.select.content(
                rx.select.item(any_label, value=ANY),
                rx.foreach(options, lambda option: rx.select.item(option, value=option)),
            ),
            value=value,
            on_change=lambda v: CatalogueState.set_filter(name, v),
        ),
        spacing="1",
    )


def filters() -> rx.Component:
    return rx.flex(
        facet_select(
            "platform",
            _("Platform"),
            _("Any platform"),
            CatalogueState.platforms,
            CatalogueState.platform,
        ),
        facet_select(
            "region", _("Region"), _("Any region"), CatalogueState.regions, CatalogueState.region
        ),
        facet_select(
            "genre", _("Genre"), _("Any genre"), CatalogueState.genres, CatalogueState.genre
        ),
        rx.vstack(
            rx.text(_("Sort"), size="1", color_scheme="gray"),
            rx.select.root(
                rx.select.trigger(aria_label=_("Sort"), id="sort"),
                rx.select.content(
                    *(rx.select.item(_(label), value=key) for key, label in SORTS.items()),
                ),
                value=CatalogueState.sort,
                on_change=lambda v: CatalogueState.set_filter("sort", v),
            ),
            spacing="1",
        ),
        rx.vstack(
            rx.text(_("Availability"), size="1", color_scheme="gray"),
            rx.hstack(
                rx.checkbox(
                    _("In stock only"),
                    checked=CatalogueState.in_stock_only,
                    on_change=CatalogueState.toggle_in_stock,
                    id="in-stock",
                ),
                height="2em",
                align="center",
            ),
            spacing="1",
        ),
        rx.button(
            _("Clear filters"),
            variant="ghost",
            on_click=CatalogueState.clear_filters,
            align_self="end",
        ),
        gap="1em",
        wrap="wrap",
        align="end",
    )


def catalogue() -> rx.Component:
    return page(
        rx.form(
            rx.flex(
                rx.input(
                    name="q",
                    placeholder=_("Title, publisher, genre…"),
                    default_value=CatalogueState.query,
                    key=CatalogueState.query,
                    type="search",
                    id="catalogue-search",
                    aria_label=_("Search"),
                    flex="3",
                    min_width="12em",
                ),
                rx.input(
                    name="min",
                    placeholder=_("Min price"),
                    default_value=CatalogueState.min_price,
                    key="min" + CatalogueState.min_price,
                    input_mode="decimal",
                    aria_label=_("Minimum price"),
                    width="7em",
                ),
                rx.input(
                    name="max",
                    placeholder=_("Max price"),
                    default_value=CatalogueState.max_price,
                    key="max" + CatalogueState.max_price,
                    input_mode="decimal",
                    aria_label=_("Maximum price"),
                    width="7em",
                ),
                rx.button(_("Search"), type="submit", id="catalogue-search-button"),
                gap="0.5em",
                wrap="wrap",
            ),
            on_submit=CatalogueState.submit_search,
            reset_on_submit=False,
            width="100%",
        ),
        rx.box(filters(), margin_y="1em"),
        rx.cond(
            CatalogueState.deals_only,
            rx.badge(_("Deals only"), size="2", id="deals-only", margin_bottom="0.5em"),
        ),
        rx.cond(
            CatalogueState.preorders_only,
            rx.badge(_("Pre-orders only"), size="2", id="preorders-only", margin_bottom="0.5em"),
        ),
        callout_error(CatalogueState.error),
        rx.cond(
            CatalogueState.similar_to != "",
            rx.text(
                _("No title has those words; games with similar titles:"),
                size="2",
                id="similar-titles",
            ),
        ),
        rx.text(
            CatalogueState.total_text,
            size="2",
            color_scheme="gray",
            margin_bottom="0.5em",
            id="result-count",
        ),
        product_grid(CatalogueState.results, grid_id="results"),
        rx.cond(
            CatalogueState.pages > 0,
            rx.hstack(
                rx.button(
                    _("Previous"),
                    variant="soft",
                    disabled=~CatalogueState.has_previous,
                    on_click=CatalogueState.go_to_page(-1),
                ),
                rx.text(
                    CatalogueState.pager_text,
                    size="2",
                    id="pager",
                ),
                rx.button(
                    _("Next"),
                    variant="soft",
                    disabled=~CatalogueState.has_next,
                    on_click=CatalogueState.go_to_page(1),
                ),
                justify="center",
                align="center",
                margin_top="1.5em",
                width="100%",
            ),
        ),
        title=_("Games"),
    )


def stock_alert_form() -> rx.Component:
    """Out of stock: leave an address for one e-mail when it is back (double opt-in)."""
    return rx.form(
        rx.vstack(
            rx.el.label(
                rx.text(_("E-mail me once when it is back"), as_="span", size="2"),
                html_for="stock-alert-email",
            ),
            rx.hstack(
                rx.input(
                    name="email",
                    type="email",
                    id="stock-alert-email",
                    auto_complete="email",
                    required=True,
                    width="18em",
                ),
                rx.button(_("Notify me"), type="submit", variant="soft", id="stock-alert-submit"),
            ),
            callout_error(ProductState.alert_error),
            spacing="1",
        ),
        on_submit=ProductState.request_stock_alert,
        reset_on_submit=True,
    )


def product() -> rx.Component:
    p = ProductState.product
    return page(
        rx.cond(
            ProductState.found,
            rx.flex(
                rx.box(
                    cover(p, lazy=False),
                    flex="1",
                    min_width=rx.breakpoints(initial="6em", sm="12em"),
                    max_width=rx.breakpoints(initial="8em", sm="20em"),
                ),
                rx.vstack(
                    rx.heading(
                        p["title"],
                        as_="h1",
                        size=rx.breakpoints(initial="5", sm="7"),
                        id="product-title",
                    ),
                    rx.hstack(
                        rx.badge(p["platform"], size="2"),
                        rx.badge(p["region"], size="2", variant="outline"),
                        rx.cond(
                            p["genre"] != "",
                            rx.badge(p["genre"], size="2", variant="soft", color_scheme="gray"),
                        ),
                        wrap="wrap",
                    ),
                    rx.cond(
                        p["publisher"] != "",
                        rx.text(_("Publisher: "), p["publisher"], size="2", color_scheme="gray"),
                    ),
                    rx.hstack(
                        rx.text(p["price"], size="6", weight="bold", id="product-price"),
                        rx.cond(
                            p["list_price"] != "",
                            rx.text(p["list_price"], as_="s", color_scheme="gray"),
                        ),
                        align="baseline",
                    ),
                    rx.text(p["availability"], weight="medium", id="availability"),
                    rx.cond(p["arrival"] != "", rx.text(p["arrival"], size="2", id="arrival")),
                    rx.cond(
                        p["not_sold"] != "",
                        rx.text(p["not_sold"], size="2", color_scheme="red", id="not-sold"),
                    ),
                    rx.button(
                        rx.icon("shopping-cart", size=16),
                        _("Add to cart"),
                        size="3",
                        disabled=~p["can_buy"].to(bool),
                        on_click=ProductState.add_to_cart(p["slug"].to(str)),
                        id="add-to-cart",
                    ),
                    rx.cond(
                        ProductState.cart_count > 0,
                        rx.link(_("Go to cart →"), href=localised_path("/cart"), id="go-to-cart"),
                    ),
                    rx.cond(
                        p["is_preorder"].to(bool),
                        rx.text(_("Release date: "), p["release_date"], size="2"),
                    ),
                    rx.cond(
                        p["region_locked"].to(bool),
                        rx.callout(
                            p["region_warning"],
                            icon="globe",
                            color_scheme="amber",
                            high_contrast=True,  # 4.5:1 (axe)
                            id="region-warning",
                        ),
                    ),
                    rx.cond(~p["can_buy"].to(bool), stock_alert_form()),
                    callout_info(ProductState.alert_note),
                    rx.text(p["description"], size="3"),
                    rx.cond(
                        p["activation_instructions"] != "",
                        rx.vstack(
                            rx.heading(_("How to activate"), as_="h2", size="3"),
                            rx.text(p["activation_instructions"], size="2", white_space="pre-line"),
                            spacing="1",
                        ),
                    ),
                    spacing="3",
                    align="start",
                    flex="2",
                    min_width=rx.breakpoints(initial="12em", sm="16em"),
                ),
                gap=rx.breakpoints(initial="1em", sm="2em"),
                wrap=rx.breakpoints(initial="nowrap", sm="wrap"),
            ),
            rx.vstack(
                rx.heading(_("Game not found"), as_="h1", size="6"),
                rx.text(ProductState.error),
                rx.link(_("Back to all games"), href=localised_path("/games"), id="back-to-games"),
            ),
        ),
    )


def not_found() -> rx.Component:
    """Any address the shop has no page for (served with status 404 by web.api.pages).
    Reflex has one 404 page for every address, so it holds both languages and shows the
    one of the address asked for (``/de/...``: German)."""

    def in_language(language: str) -> rx.Component:
        with use_language(language):
            return page(
                rx.text(_("There is no page at this address.")),
                rx.hstack(
                    rx.link(_("Home"), href=localised_path("/")),
                    rx.link(
                        _("Browse all games"),
                        href=localised_path("/games"),
                        id="not-found-games",
                    ),
                    spacing="4",
                    margin_top="1em",
                ),
                title=_("Page not found"),
            )

    return rx.cond(ShopState.page_language == "de", in_language("de"), in_language("en"))
