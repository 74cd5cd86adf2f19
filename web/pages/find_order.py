"""_("Find my order"): the order links by e-mail."""

from __future__ import annotations

import reflex as rx

from core.i18n import gettext as _
from web.components.layout import one_field_form, page
from web.state.find_order import FindOrderState


def find_order() -> rx.Component:
    return page(
        *one_field_form(
            intro=_(
                "Lost the e-mail with your order link? Enter the address you ordered with and "
                "we send the links to your orders again."
            ),
            error=FindOrderState.error,
            notice=FindOrderState.notice,
            field=rx.input(
                name="email",
                type="email",
                required=True,
                placeholder="you@example.com",
                auto_complete="email",
                aria_label=_("E-mail"),
                id="find-order-email",
                width="100%",
            ),
            button=rx.button(_("E-mail me my order links"), type="submit", id="find-order-send"),
            on_submit=FindOrderState.send,
        ),
        title=_("Find my order"),
    )
