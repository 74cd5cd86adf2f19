""" "My keys": every key of the signed-in customer's orders, with re-reveal (audited, as
on the order page: web/state/order.py keeps codes out of the state the same way)."""

from __future__ import annotations

import json
from typing import Any

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path
from web.state.base import ShopState, error_text, in_thread
from web.state.format import day


class LibraryState(ShopState):
    keys: list[dict[str, Any]] = []
    loaded: bool = False
    error: str = ""

    @rx.event
    async def load(self) -> Any:
        from core.services.library import key_library

        await self.load_session()
        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        try:
            found = await in_thread(key_library, customer_id=customer_id)
        except Exception as exc:
            self.error = error_text(exc)
            return None
        self.keys = [
            {
                "id": key.key_id,
                "order": key.order_number,
                "title": key.title,
                "platform": key.platform,
                "region": key.region,
                "status": key.status,
                "masked": key.masked,
                "revealed": key.revealed,
                "delivered": day(key.delivered_at),
                "activation_url": key.activation_url or "",
                "can_reveal": key.can_reveal and key.consent_given,
                "needs_consent": key.can_reveal and not key.consent_given,
            }
            for key in found
        ]
        self.loaded, self.error = True, ""
        return None

    @rx.event
    async def reveal(self, key_id: str) -> Any:
        from core.services.portal import reveal_order_key

        entry = next((k for k in self.keys if k["id"] == key_id), None)
        if entry is None:
            return rx.toast.error(_("That key is not in your library."))
        client = self._client()
        try:
            customer_id = await in_thread(self._customer_id)
            revealed = await in_thread(
                reveal_order_key,
                number=entry["order"],
                key_id=key_id,
                customer_id=customer_id,
                ip=client["ip"],
                user_agent=client["user_agent"],
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        entry["revealed"] = True
        self.keys = list(self.keys)
        code = json.dumps(revealed.code) if revealed.code is not None else "null"
        image = json.dumps(revealed.image_url or "") if revealed.code is None else "null"
        return rx.call_script(f"window.ksShowKey({json.dumps(key_id)}, {code}, {image})")
