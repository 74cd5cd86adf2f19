"""_("Gift card balance"): what is left on a gift card, by its code."""

from __future__ import annotations

import reflex as rx

from core.i18n import gettext as _
from web.components.layout import one_field_form, page
from web.state.giftcard import GiftCardState


def gift_card_balance() -> rx.Component:
    return page(
        *one_field_form(
            intro=_(
                "Enter the code of your gift card to see what is left on it. Gift cards pay "
                "for any order at checkout."
            ),
            error=GiftCardState.error,
            notice=GiftCardState.notice,
            field=rx.input(
                name="code",
                required=True,
                placeholder="GC-XXXXX-XXXXX-XXXXX-XXXXX-X",
                auto_complete="off",
                spell_check=False,
                aria_label=_("Gift card code"),
                id="gift-card-code",
                width="100%",
            ),
            button=rx.button(_("Check the balance"), type="submit", id="gift-card-check"),
            on_submit=GiftCardState.check,
            reset_on_submit=True,  # the code is not left on screen
        ),
        title=_("Gift card balance"),
    )
