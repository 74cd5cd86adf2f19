"""Gift card balance: anyone holding a card's code sees what is left on it
(core.services.giftcards.check_balance, rate limited per address). The code is only in
the event that asks; the state keeps the answer, which names the card by its last four
characters, never the code."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.errors import InvalidInput
from core.i18n import N_
from core.i18n import gettext as _
from web.state.base import ShopState, error_text, in_thread
from web.state.format import money

LEFT = N_("The gift card ending in %(last4)s has %(balance)s left of %(initial)s.")
NOT_ACTIVE = N_("The gift card ending in %(last4)s can no longer be used.")
UNKNOWN = N_("No gift card has that code. Please check it and try again.")
MALFORMED = N_("That is not a gift card code: please check it for a typo.")


class GiftCardState(ShopState):
    notice: str = ""
    error: str = ""

    @rx.event
    async def check(self, form: dict[str, Any]) -> None:
        from core.services import giftcards

        code = str(form.get("code", "")).strip()[:64]
        self.notice, self.error = "", ""
        try:
            found = await in_thread(giftcards.check_balance, code=code, ip=self._client()["ip"])
        except giftcards.UnknownGiftCard:
            self.error = _(UNKNOWN)
            return
        except InvalidInput:
            self.error = _(MALFORMED)
            return
        except Exception as exc:
            self.error = error_text(exc)
            return
        if not found.active:
            self.notice = _(NOT_ACTIVE) % {"last4": found.last4}
            return
        self.notice = _(LEFT) % {
            "last4": found.last4,
            "balance": money(found.balance_minor, found.currency),
            "initial": money(found.initial_minor, found.currency),
        }
