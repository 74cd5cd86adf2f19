"""The receipt (invoice) page of a paid order: ``/receipts/<number>``, opened like the
order page (the order's access cookie, or the signed-in owner)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import reflex as rx

from web.state.base import ShopState, error_text, in_thread
from web.state.format import day


class ReceiptState(ShopState):
    number: str = ""
    found: bool = True
    error: str = ""
    receipt: dict[str, Any] = {}
    lines: list[dict[str, Any]] = []

    @rx.event
    async def load(self) -> None:
        from core.services.invoices import view_receipt

        self.number = self.router.url.path.rstrip("/").rsplit("/", 1)[-1][:24].upper()
        await self.load_session()

        def work() -> Any:
            return view_receipt(
                number=self.number,
                access_token=self._secrets().order_token(self.number),
                customer_id=self._customer_id(),
            )

        try:
            receipt = await in_thread(work)
        except Exception as exc:
            self.found, self.error, self.receipt, self.lines = False, error_text(exc), {}, []
            return
        data = asdict(receipt)
        self.lines = [dict(line) for line in data.pop("lines")]
        data["issued"] = day(receipt.issued_at.date())
        data.pop("issued_at")
        self.receipt = data
        self.found, self.error = True, ""
