"""_("Find my order"): the order links by e-mail."""

from __future__ import annotations

import reflex as rx

from core.i18n import gettext as _
from web.components.layout import callout_error, callout_info, page
from web.state.find_order import FindOrderState


def find_order() -> rx.Component:
    return page(
        rx.text(
            _(
                "Lost the e-mail with your order link? Enter the address you ordered with and "
                "we send the links to your orders again."
            ),
            size="3",
        ),
        callout_error(FindOrderState.error),
        callout_info(FindOrderState.notice),
        rx.form(
            rx.vstack(
                rx.input(
                    name="email",
                    type="email",
                    required=True,
                    placeholder="you@example.com",
                    auto_complete="email",
                    aria_label=_("E-mail"),
                    id="find-order-email",
                    width="100%",
                ),
                rx.button(_("E-mail me my order links"), type="submit", id="find-order-send"),
                width="100%",
                max_width="28em",
            ),
            on_submit=FindOrderState.send,
            reset_on_submit=False,
        ),
        title=_("Find my order"),
    )
