""" "Find my order": a guest asks for the links to their orders by e-mail. The page says
the same whether or not the address has orders (core.services.notifications)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import N_
from core.i18n import gettext as _
from web.state.base import ShopState, error_text, in_thread

SENT = N_(
    "If we have orders for that address, an e-mail with their links is on its way. "
    "Check your inbox (and the spam folder) in a minute."
)


class FindOrderState(ShopState):
    email: str = ""
    notice: str = ""
    error: str = ""

    @rx.event
    async def send(self, form: dict[str, Any]) -> None:
        from core.services.notifications import request_order_links

        self.email = str(form.get("email", "")).strip()[:320]
        self.notice, self.error = "", ""
        try:
            await in_thread(request_order_links, email=self.email, ip=self._client()["ip"])
        except Exception as exc:
            self.error = error_text(exc)
            return
        self.notice = _(SENT)
