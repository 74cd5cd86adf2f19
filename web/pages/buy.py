"""Cart, checkout and the test payment page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path
from web.components.cards import cover
from web.components.layout import callout_error, page
from web.state.checkout import CartState, PayState


def cart_line(line: Any) -> rx.Component:
    return rx.card(
        rx.flex(
            rx.box(cover(line), width="3.5em"),
            rx.vstack(
                rx.link(
                    line["title"],
                    href=localised_path("/games/") + line["slug"].to(str),
                    weight="bold",
                ),
                rx.hstack(
                    rx.badge(line["platform"]),
                    rx.badge(line["region"], variant="outline"),
                    rx.cond(
                        line["preorder"].to(bool),
                        rx.badge(_("Pre-order"), color_scheme="amber", class_name="preorder-badge"),
                    ),
                    wrap="wrap",
                ),
                rx.cond(
                    line["problem"] != "", rx.text(line["problem"], color_scheme="red", size="2")
                ),
                spacing="1",
                flex="1",
                min_width="10em",
            ),
            rx.hstack(
                rx.icon_button(
                    rx.icon("minus", size=14),
                    variant="soft",
                    aria_label=_("One fewer"),
                    class_name="qty-minus",
                    on_click=CartState.change_qty(line["slug"].to(str), -1),
                ),
                rx.text(line["qty"], class_name="cart-qty", min_width="1.5em", text_align="center"),
                rx.icon_button(
                    rx.icon("plus", size=14),
                    variant="soft",
                    aria_label=_("One more"),
                    class_name="qty-plus",
                    disabled=~line["can_add"].to(bool),
                    on_click=CartState.change_qty(line["slug"].to(str), 1),
                ),
                align="center",
            ),
            rx.vstack(
                rx.text(line["line_total"], weight="bold", class_name="line-total"),
                rx.cond(
                    line["discount"] != "",
                    rx.text(
                        line["discount"], size="1", color_scheme="green", class_name="line-discount"
                    ),
                ),
                rx.text(line["unit_price"], _(" each"), size="1", color_scheme="gray"),
                align="end",
                spacing="0",
                min_width="6em",
            ),
            rx.icon_button(
                rx.icon("trash-2", size=14),
                variant="ghost",
                color_scheme="red",
                aria_label=_("Remove"),
                on_click=CartState.remove_line(line["slug"].to(str)),
            ),
            gap="1em",
            align="center",
            wrap="wrap",
        ),
        class_name="cart-line",
        width="100%",
    )


def undo_notice() -> rx.Component:
    return rx.cond(
        CartState.undo_slug != "",
        rx.callout(
            rx.hstack(
                rx.text(CartState.undo_text),
                rx.button(_("Undo"), size="2", variant="soft", on_click=CartState.undo_remove),
                align="center",
                wrap="wrap",
            ),
            icon="undo-2",
            id="undo-remove",
            margin_y="0.5em",
        ),
    )


def country_select() -> rx.Component:
    return rx.vstack(
        rx.text(_("Country you live in (sets the VAT)"), size="2"),
        rx.select.root(
            rx.select.trigger(aria_label=_("Country"), id="checkout-country", width="100%"),
            rx.select.content(
                rx.foreach(CartState.countries, lambda c: rx.select.item(c[1], value=c[0]))
            ),
            value=CartState.country,
            on_change=CartState.set_country,
        ),
        spacing="1",
        width="100%",
    )


def promo_form() -> rx.Component:
    """The promo code field: applied to the cart's lines before checkout."""
    return rx.vstack(
        rx.form(
            rx.hstack(
                rx.input(
                    name="promo_code",
                    placeholder=_("Promo code"),
                    default_value=CartState.promo_code,
                    key=CartState.promo_code,
                    id="promo-code",
                    aria_label=_("Promo code"),
                    max_length=220,
                    auto_complete="off",
                ),
                rx.button(_("Apply"), type="submit", variant="soft", id="apply-promo"),
                rx.cond(
                    CartState.promo_text != "",
                    rx.button(
                        _("Remove"),
                        variant="ghost",
                        type="button",
                        id="remove-promo",
                        on_click=CartState.remove_promo,
                    ),
                ),
                align="center",
            ),
            on_submit=CartState.apply_promo,
            reset_on_submit=False,
        ),
        rx.cond(
            CartState.promo_error != "",
            rx.text(
                CartState.promo_error, color_scheme="red", size="2", id="promo-error", role="alert"
            ),
        ),
        rx.cond(
            CartState.promo_text != "",
            rx.text(CartState.promo_text, color_scheme="green", size="2", id="promo-applied"),
        ),
        align_self="end",
        align="end",
        spacing="1",
    )


def cart() -> rx.Component:
    return page(
        callout_error(CartState.error),
        undo_notice(),
        rx.cond(
            CartState.lines.length() > 0,  # type: ignore[attr-defined]
            rx.vstack(
                rx.foreach(CartState.lines, cart_line),
                rx.foreach(CartState.problems, lambda p: rx.text(p, color_scheme="red", size="2")),
                promo_form(),
                rx.hstack(
                    rx.text(_("Total"), size="4"),
                    rx.text(CartState.total, size="6", weight="bold", id="cart-total"),
                    justify="end",
                    align="baseline",
                    width="100%",
                ),
                rx.text(
                    CartState.vat,
                    size="2",
                    color_scheme="gray",
                    id="cart-vat",
                    align_self="end",
                ),
                rx.form(
                    rx.vstack(
                        country_select(),
                        rx.text(_("Where should we send the link to your keys?"), size="2"),
                        rx.input(
                            name="email",
                            type="email",
                            placeholder="you@example.com",
                            default_value=CartState.email,
                            key=CartState.email,
                            required=True,
                            auto_complete="email",
                            id="checkout-email",
                            aria_label=_("E-mail"),
                            width="100%",
                        ),
                        rx.cond(
                            CartState.signed_in,
                            rx.text(CartState.signed_in_text, size="1"),
                            rx.text(
                                _("No account needed: you can check out as a guest."),
                                " ",
                                rx.link(
                                    _("Sign in to keep your orders together."),
                                    href=localised_path("/signin"),
                                    underline="always",
                                ),
                                size="1",
                            ),
                        ),
                        rx.text(
                            _("By placing the order you accept our terms and privacy policy."),
                            " ",
                            _("Keys are digital content: you can withdraw until you reveal one."),
                            " ",
                            rx.link(
                                _("Terms"),
                                href=localised_path("/legal/terms"),
                                id="checkout-terms",
                                underline="always",
                            ),
                            " · ",
                            rx.link(
                                _("Privacy"),
                                href=localised_path("/legal/privacy"),
                                underline="always",
                            ),
                            " · ",
                            rx.link(
                                _("Right of withdrawal"),
                                href=localised_path("/legal/withdrawal"),
                                underline="always",
                            ),
                            size="1",
                        ),
                        rx.el.details(
                            rx.el.summary(_("Pay with a gift card"), id="gift-card-toggle"),
                            rx.text_area(
                                name="gift_cards",
                                placeholder=_("GC-XXXXX-XXXXX-XXXXX-XXXXX-X (one per line)"),
                                id="gift-cards",
                                max_length=400,
                                rows="2",
                                width="100%",
                            ),
                            rx.text(
                                _("Gift cards pay first; your card pays the rest."),
                                size="1",
                                color_scheme="gray",
                            ),
                        ),
                        rx.cond(
                            CartState.credit_text != "",
                            rx.checkbox(
                                CartState.credit_text,
                                name="use_credit",
                                default_checked=True,
                                id="use-credit",
                            ),
                        ),
                        rx.cond(
                            CartState.crypto_offered,
                            rx.radio_group.root(
                                rx.flex(
                                    *(
                                        rx.text(
                                            rx.flex(
                                                rx.radio_group.item(value=value),
                                                label,
                                                spacing="2",
                                            ),
                                            as_="label",
                                            size="2",
                                        )
                                        for value, label in (
                                            ("Card", _("Card")),
                                            ("Crypto", _("Crypto")),
                                        )
                                    ),
                                    spacing="4",
                                ),
                                name="payment_method",
                                default_value="Card",
                                direction="row",
                                id="payment-method",
                            ),
                        ),
                        rx.button(
                            rx.cond(
                                CartState.placing, rx.spinner(size="2"), rx.icon("lock", size=16)
                            ),
                            _("Checkout and pay"),
                            type="submit",
                            size="3",
                            disabled=~CartState.can_checkout | CartState.placing,
                            id="checkout",
                            width="100%",
                        ),
                        spacing="2",
                        width="100%",
                        max_width="28em",
                    ),
                    on_submit=CartState.place_order,
                    reset_on_submit=False,
                    align_self="end",
                    width="100%",
                    max_width="28em",
                ),
                spacing="3",
                width="100%",
            ),
            rx.cond(
                CartState.loaded,
                rx.vstack(
                    rx.text(_("Your cart is empty.")),
                    rx.link(rx.button(_("Find a game")), href=localised_path("/games")),
                    id="cart-empty",
                ),
                rx.spinner(),
            ),
        ),
        title=_("Your cart"),
    )


def pay() -> rx.Component:
    return page(
        rx.callout(
            _(
                "Test mode: no money moves. This page stands in for Stripe Checkout while the "
                "shop runs without Stripe credentials."
            ),
            icon="flask-conical",
            color_scheme="amber",
            high_contrast=True,
            id="test-mode-banner",
        ),
        callout_error(PayState.error),
        rx.cond(
            PayState.found,
            rx.card(
                rx.vstack(
                    rx.heading(_("Order"), " ", PayState.number, as_="h2", size="5"),
                    rx.foreach(
                        PayState.items,
                        lambda item: rx.text(
                            item["qty"],
                            " × ",  # noqa: RUF001
                            item["title"],
                            " (",
                            item["platform"],
                            ")",
                        ),
                    ),
                    rx.text(PayState.total, size="6", weight="bold", id="pay-total"),
                    rx.text(PayState.status_label, size="2", color_scheme="gray"),
                    rx.cond(
                        PayState.payable,
                        rx.button(
                            rx.cond(
                                PayState.paying,
                                rx.spinner(size="2"),
                                rx.icon("credit-card", size=16),
                            ),
                            PayState.pay_label,
                            size="3",
                            on_click=PayState.pay,
                            disabled=PayState.paying,
                            id="pay-button",
                        ),
                        rx.link(
                            _("Go to your order"),
                            href=localised_path("/orders/") + PayState.number,
                        ),
                    ),
                    spacing="3",
                ),
                max_width="32em",
            ),
        ),
        title=_("Payment"),
    )
