"""Cart, checkout and the test payment page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from web.components.cards import cover
from web.components.layout import callout_error, page
from web.state.checkout import CartState, PayState


def cart_line(line: Any) -> rx.Component:
    return rx.card(
        rx.flex(
            rx.box(cover(line), width="3.5em"),
            rx.vstack(
                rx.link(line["title"], href="/games/" + line["slug"].to(str), weight="bold"),
                rx.hstack(
                    rx.badge(line["platform"]),
                    rx.badge(line["region"], variant="outline"),
                    rx.cond(
                        line["preorder"].to(bool),
                        rx.badge("Pre-order", color_scheme="amber", class_name="preorder-badge"),
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
                    aria_label="One fewer",
                    class_name="qty-minus",
                    on_click=CartState.change_qty(line["slug"].to(str), -1),
                ),
                rx.text(line["qty"], class_name="cart-qty", min_width="1.5em", text_align="center"),
                rx.icon_button(
                    rx.icon("plus", size=14),
                    variant="soft",
                    aria_label="One more",
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
                rx.text(line["unit_price"], " each", size="1", color_scheme="gray"),
                align="end",
                spacing="0",
                min_width="6em",
            ),
            rx.icon_button(
                rx.icon("trash-2", size=14),
                variant="ghost",
                color_scheme="red",
                aria_label="Remove",
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
                rx.text("Removed ", CartState.undo_title, " from your cart."),
                rx.button("Undo", size="2", variant="soft", on_click=CartState.undo_remove),
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
        rx.text("Country you live in (sets the VAT)", size="2"),
        rx.select.root(
            rx.select.trigger(aria_label="Country", id="checkout-country", width="100%"),
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
                    placeholder="Promo code",
                    default_value=CartState.promo_code,
                    key=CartState.promo_code,
                    id="promo-code",
                    aria_label="Promo code",
                    max_length=220,
                    auto_complete="off",
                ),
                rx.button("Apply", type="submit", variant="soft", id="apply-promo"),
                rx.cond(
                    CartState.promo_text != "",
                    rx.button(
                        "Remove",
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
                    rx.text("Total", size="4"),
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
                        rx.text("Where should we send the link to your keys?", size="2"),
                        rx.input(
                            name="email",
                            type="email",
                            placeholder="you@example.com",
                            default_value=CartState.email,
                            key=CartState.email,
                            required=True,
                            auto_complete="email",
                            id="checkout-email",
                            aria_label="E-mail",
                            width="100%",
                        ),
                        rx.cond(
                            CartState.signed_in,
                            rx.text(
                                "Signed in as ",
                                CartState.customer_email,
                                ": the order goes to your account.",
                                size="1",
                            ),
                            rx.text(
                                "No account needed: you can check out as a guest. ",
                                rx.link("Sign in", href="/signin", underline="always"),
                                " to keep your orders together.",
                                size="1",
                            ),
                        ),
                        rx.text(
                            "By placing the order you accept our ",
                            rx.link(
                                "terms",
                                href="/legal/terms",
                                id="checkout-terms",
                                underline="always",
                            ),
                            " and ",
                            rx.link("privacy policy", href="/legal/privacy", underline="always"),
                            ". Keys are digital content: you can withdraw until you reveal one (",
                            rx.link(
                                "right of withdrawal", href="/legal/withdrawal", underline="always"
                            ),
                            ").",
                            size="1",
                        ),
                        rx.el.details(
                            rx.el.summary("Pay with a gift card", id="gift-card-toggle"),
                            rx.text_area(
                                name="gift_cards",
                                placeholder="GC-XXXXX-XXXXX-XXXXX-XXXXX-X (one per line)",
                                id="gift-cards",
                                max_length=400,
                                rows="2",
                                width="100%",
                            ),
                            rx.text(
                                "Gift cards pay first; your card pays the rest.",
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
                            rx.radio_group(
                                ["Card", "Crypto"],
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
                            "Checkout and pay",
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
                    rx.text("Your cart is empty."),
                    rx.link(rx.button("Find a game"), href="/games"),
                    id="cart-empty",
                ),
                rx.spinner(),
            ),
        ),
        title="Your cart",
    )


def pay() -> rx.Component:
    return page(
        rx.callout(
            "Test mode: no money moves. This page stands in for Stripe Checkout while the shop runs without "
            "Stripe credentials.",
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
                    rx.heading("Order ", PayState.number, as_="h2", size="5"),
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
                            "Pay ",
                            PayState.total,
                            " (test payment)",
                            size="3",
                            on_click=PayState.pay,
                            disabled=PayState.paying,
                            id="pay-button",
                        ),
                        rx.link(
                            "Go to your order",
                            href="/orders/" + PayState.number,
                        ),
                    ),
                    spacing="3",
                ),
                max_width="32em",
            ),
        ),
        title="Payment",
    )
