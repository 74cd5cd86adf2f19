"""The order page and key portal: status that moves live, masked keys, reveal, copy,
activation link, faulty-key reports.

Live status: ``load`` starts a background watcher that re-reads the order every second
and pushes changes to the browser through Reflex's state channel, until the order is
settled, the tab disconnects, a newer page load replaces the watcher or ten minutes
pass; one per tab and order, at most 200 per web worker (web/state/live.py).

The order-access token is never kept in the state either: it arrives as an HttpOnly
cookie, sealed (see web/api/security.py), and is unsealed for each call.

A revealed code is never kept in the state (the state may live in Redis in production):
the reveal handler sends it once, straight into the page's DOM via a script call, and it
is gone from the server's memory when the handler returns.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import reflex as rx

from core.i18n import current_language, localised_path
from core.i18n import gettext as _
from web.state.base import ShopState, error_text, in_thread
from web.state.format import day, money
from web.state.live import client_connected, run_watcher

SETTLED = {"fulfilled", "cancelled", "refunded", "disputed"}


class OrderState(ShopState):
    number: str = ""
    found: bool = True
    status: str = ""
    status_label: str = ""
    stage: int = 0
    progress: int = 0  # percent along ordered → paid → delivering → delivered
    created: str = ""
    total: str = ""
    balances_text: str = ""  # "€10.00 paid with gift cards and store credit"
    promo_text: str = ""  # "Promo code SUMMER10: -€5.00"
    email: str = ""
    payment_note: str = ""  # a crypto payment's state, live
    lines: list[dict[str, Any]] = []
    error: str = ""
    notice: str = ""
    live: bool = False
    report_key_id: str = ""
    report_open: bool = False
    report_message: str = ""
    need_code: bool = False  # the account has two-factor sign-in on: reveals need a code
    reveal_code: str = ""  # a one-time code, good once, for one 30-second step
    consent_given: bool = False  # agreed to immediate delivery (core.services.consent)
    consent_text: str = ""
    has_keys: bool = False
    vat: str = ""
    receipt_url: str = ""
    receipt_pdf_url: str = ""
    _watch: int = 0

    def _access_token(self) -> str | None:
        """The order-access token from the browser's HttpOnly cookie for this order (the
        link's ``?token=`` became that cookie: web/api/security.py), never kept."""
        return self._secrets().order_token(self.number)

    def _read(self) -> Any:
        from core.services.portal import view_order

        return view_order(
            number=self.number,
            access_token=self._access_token(),
            customer_id=self._customer_id(),
        )

    def _apply(self, view: Any) -> None:
        self.status, self.status_label, self.stage = view.status, view.status_label, int(view.stage)
        stages = max(2, int(getattr(view, "stages", 4)))
        self.progress = round(100 * (self.stage - 1) / (stages - 1)) if self.stage > 0 else 0
        from core.services.consent import CONSENT_TEXT
        from core.services.vat import country, country_name, rate_text

        self.created, self.email = day(view.created_at), view.email
        self.total = money(view.total_minor, view.currency)
        covered = int(getattr(view, "paid_from_balances_minor", 0))
        self.balances_text = (
            _("%(amount)s paid with gift cards and store credit")
            % {"amount": money(covered, view.currency)}
            if covered
            else ""
        )
        off = int(getattr(view, "discount_minor", 0))
        codes = ", ".join(getattr(view, "promo_codes", ()))
        self.promo_text = (
            _("Promo code %(codes)s: -%(amount)s")
            % {"codes": codes, "amount": money(off, view.currency)}
            if off and codes
            else ""
        )
        self.consent_given, self.consent_text = bool(view.consent_given), _(CONSENT_TEXT)
        self.has_keys = any(line.keys for line in view.lines)
        self.vat = ""
        if view.country:
            try:
                name = country_name(country(view.country))
            except Exception:
                name = view.country
            self.vat = _("Includes %(rate)s VAT (%(country)s): %(amount)s") % {
                "rate": rate_text(view.vat_rate_bp, current_language()),
                "country": name,
                "amount": money(view.vat_minor, view.currency),
            }
        paid = view.status in ("paid", "fulfilled", "needs_attention", "refunded", "disputed")
        self.receipt_url = localised_path(f"/receipts/{self.number}") if paid else ""
        self.receipt_pdf_url = f"/api/receipts/{self.number}.pdf" if paid else ""
        self.payment_note = getattr(view, "payment_note", None) or ""
        lines = []
        for line in view.lines:
            keys = [
                {
                    "id": str(key.id),
                    "masked": key.masked,
                    "kind": key.kind,
                    "status": key.status,
                    "revealed": bool(key.revealed),
                    "reported": bool(key.reported),
                }
                for key in line.keys
            ]
            lines.append(
                {
                    "title": line.title,
                    "platform": line.platform,
                    "region": line.region,
                    "qty": line.quantity,
                    "unit_price": money(line.unit_price_minor, view.currency),
                    "activation_url": line.activation_url or "",
                    "activation_instructions": line.activation_instructions or "",
                    "keys": keys,
                    "pending": line.pending,  # core's count: 0 before payment or once cancelled
                    "preorder": bool(getattr(line, "is_preorder", False)),
                }
            )
        self.lines = lines

    @rx.event
    async def load(self) -> Any:
        self.number = self.router.url.path.rstrip("/").rsplit("/", 1)[-1][:24]
        await self.load_session()
        try:
            view = await in_thread(self._read)
        except Exception as exc:
            self.found, self.error, self.lines = False, error_text(exc), []
            return None
        self.found, self.error = True, ""
        self._apply(view)
        self._watch += 1
        events: list[Any] = []
        if view.status not in SETTLED:
            events.append(OrderState.watch(self._watch))  # type: ignore[misc]  # mypy misreads rx.event(...)
        # a key revealed once stays readable for its owner after a reload: shown again
        # (each reveal audited) unless the account asks for a code per reveal
        if self.consent_given:
            again = [
                key["id"]
                for line in self.lines
                for key in line["keys"]
                if key["revealed"] and key["status"] == "delivered"
            ]
            events.extend(OrderState.reveal(key_id) for key_id in again[:10])
        return events or None

    @rx.event
    async def give_consent(self, checked: bool) -> Any:
        from core.services.consent import give_consent

        if not checked or self.consent_given:
            return None
        client = self._client()
        try:
            customer_id = await in_thread(self._customer_id)
            await in_thread(
                give_consent,
                number=self.number,
                access_token=self._access_token(),
                customer_id=customer_id,
                ip=client["ip"],
                user_agent=client["user_agent"],
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        self.consent_given = True
        return None

    @rx.event(background=True)
    async def watch(self, generation: int) -> None:
        """Push status and keys to the page while the order moves: one watcher per tab
        and order, bounded per worker, ended when the tab disconnects (web/state/live.py)."""
        async with self:
            if not isinstance(generation, int) or generation != self._watch:
                return  # only the current page load may start one
            key = (self.router.session.client_token, self.number)

        async def started() -> None:
            async with self:
                self.live = True

        async def is_current() -> bool:
            async with self:
                return generation == self._watch

        async def refresh() -> bool:
            try:
                view = await in_thread(self._read)
            except Exception:
                return False
            async with self:
                if generation != self._watch:
                    return True
                self._apply(view)
            return view.status in SETTLED

        ended = await run_watcher(
            key=key,
            generation=generation,
            is_current=is_current,
            refresh=refresh,
            connected=lambda: client_connected(key[0]),
            on_start=started,
        )
        if ended != "refused":
            async with self:
                if generation == self._watch:
                    self.live = False

    @rx.event
    def set_reveal_code(self, value: str) -> None:
        self.reveal_code = str(value)[:64]

    @rx.event
    async def reveal(self, key_id: str) -> Any:
        from core.services.portal import reveal_order_key
        from core.services.twofactor import SecondFactorRequired

        client = self._client()
        code, self.reveal_code = self.reveal_code.strip() or None, ""
        try:
            customer_id = await in_thread(self._customer_id)
            revealed = await in_thread(
                reveal_order_key,
                number=self.number,
                key_id=key_id,
                access_token=self._access_token(),
                customer_id=customer_id,
                ip=client["ip"],
                user_agent=client["user_agent"],
                second_factor=code,
            )
        except SecondFactorRequired as exc:
            self.need_code = True
            return rx.toast.info(exc.message)
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        for line in self.lines:
            for key in line["keys"]:
                if key["id"] == key_id:
                    key["revealed"] = True
        self.lines = list(self.lines)
        # straight into the page, never into the state: see the module docstring
        if revealed.code is not None:
            return rx.call_script(
                f"window.ksShowKey({json.dumps(key_id)}, {json.dumps(revealed.code)}, null)"
            )
        return rx.call_script(
            f"window.ksShowKey({json.dumps(key_id)}, null, {json.dumps(revealed.image_url or '')})"
        )

    @rx.event
    def open_report(self, key_id: str) -> None:
        self.report_key_id, self.report_message, self.report_open = key_id, "", True

    @rx.event
    def set_report_open(self, value: bool) -> None:
        self.report_open = value

    @rx.event
    async def send_report(self, form: dict[str, Any]) -> Any:
        from core.services.portal import report_faulty_key

        message = str(form.get("message", "")).strip()[:2000]
        try:
            customer_id = await in_thread(self._customer_id)
            await in_thread(
                report_faulty_key,
                number=self.number,
                key_id=self.report_key_id,
                message=message,
                access_token=self._access_token(),
                customer_id=customer_id,
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        self.report_open = False
        with contextlib.suppress(Exception):
            self._apply(await in_thread(self._read))
        return rx.toast.success(
            _("Thanks. We have opened a case and will e-mail you."), duration=4000
        )
