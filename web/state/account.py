"""Sign up, sign in, sign out, password reset and the order history.

A new session's token goes to the browser once, in a script that hands it to
``POST /api/session`` (which sets the HttpOnly cookie) and reloads the page; it is never
a state var. The reset link's token arrives as an HttpOnly cookie too (see
web/api/security.py) and is unsealed only while the reset runs.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path
from web.api.security import SIGN_OUT_SCRIPT, handoff_script
from web.state.base import ShopState, error_text, in_thread
from web.state.format import day, money

_FAILED = object()  # what AccountState._attempt returns when the call failed


def fill_script(element_id: str, content: str, *, html: bool = False) -> str:
    """Browser code that puts ``content`` into an element React leaves alone (no
    children in the component tree): secrets shown once never enter the state."""
    prop = "innerHTML" if html else "textContent"
    return (
        f"(function(){{var e=document.getElementById({json.dumps(element_id)});"
        f"if(e){{e.{prop}={json.dumps(content)};}}}})();"
    )


class AccountState(ShopState):
    orders: list[dict[str, str]] = []
    credit_balance: str = ""  # "€12.50" (every currency with credit, joined)
    referral: str = ""  # the sign-up page's ?ref= code (a friend's referral link)
    referral_link: str = ""  # this account's own referral link
    referrals: list[dict[str, str]] = []  # who signed up through it, and what came of it
    credit_lines: list[dict[str, str]] = []
    sessions: list[dict[str, str]] = []
    oidc_name: str = ""  # the provider's name when sign-in with it is configured
    need_code: bool = False  # sign-in: the account has two-factor sign-in on
    two_factor_on: bool = False
    two_factor_setup: bool = False
    error: str = ""
    info: str = ""
    busy: bool = False

    @rx.var(cache=False)
    def oidc_label(self) -> str:
        return _("Sign in with %(provider)s") % {"provider": self.oidc_name}

    @rx.event
    async def load_account(self) -> Any:
        from core.services.accounts import order_history

        await self.load_session()
        if not self.signed_in:
            return rx.redirect(localised_path("/signin"))
        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        history = await in_thread(order_history, customer_id=customer_id)
        self.orders = [
            {
                "number": o.number,
                "status": o.status_label,
                "created": day(o.created_at.date()),
                "total": money(o.total_minor, o.currency),
                "items": str(o.item_count),
                "href": localised_path(f"/orders/{o.number}"),
            }
            for o in history
        ]
        await self._load_sessions(customer_id)
        await self._load_credit(customer_id)
        from core.services.twofactor import totp_enabled

        self.two_factor_on = await in_thread(totp_enabled, customer_id=customer_id)
        self.two_factor_setup = False
        return None

    async def _load_credit(self, customer_id: int) -> None:
        from core.services.credit import statement
        from core.services.referrals import invitations

        link, invited = await in_thread(invitations, customer_id=customer_id)
        self.referral_link = link
        self.referrals = [
            {"who": who, "status": status, "when": day(at.date())} for who, status, at in invited
        ]

        balances, lines = await in_thread(statement, customer_id=customer_id)
        self.credit_balance = ", ".join(money(a, c) for c, a in balances.items() if a) or money(
            0, self.currency
        )
        self.credit_lines = [
            {
                "date": day(ln.at.date()),
                "what": _(ln.label) + (f" ({ln.order_number})" if ln.order_number else ""),
                "amount": money(ln.amount_minor, ln.currency),
                "balance": money(ln.balance_minor, ln.currency),
                "note": ln.note,
            }
            for ln in lines[:50]
        ]

    @rx.event
    async def redeem_gift_card(self, form: dict[str, Any]) -> None:
        """Move a gift card's whole balance into the account's store credit."""
        from core.services.giftcards import redeem_for_customer

        code = str(form.get("code") or "").strip()[:64]
        customer_id = await in_thread(self._customer_id)
        if customer_id is None or not code:
            self.error = _("Enter the gift card code.") if customer_id is not None else ""
            return
        try:
            amount, currency = await in_thread(
                redeem_for_customer, code=code, customer_id=customer_id, ip=self._client()["ip"]
            )
        except Exception as exc:
            self.error, self.info = error_text(exc), ""
            return
        self.error, self.info = (
            "",
            _("%(amount)s added to your store credit.") % {"amount": money(amount, currency)},
        )
        await self._load_credit(customer_id)

    # -- two-factor sign-in: the secret and recovery codes go straight into the page, as
    # -- revealed keys do, never into the state

    @rx.event
    async def start_two_factor(self) -> Any:
        from core.services.twofactor import start_totp

        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        try:
            enrolment = await in_thread(start_totp, customer_id=customer_id)
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        self.two_factor_setup = True
        return rx.call_script(
            fill_script("totp-qr", enrolment.qr_svg, html=True)
            + fill_script("totp-secret", enrolment.secret)
        )

    @rx.event
    async def confirm_two_factor(self, form: dict[str, Any]) -> Any:
        from core.services.twofactor import confirm_totp

        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        try:
            codes = await in_thread(
                confirm_totp,
                customer_id=customer_id,
                code=str(form.get("code", ""))[:64],
                ip=self._client()["ip"],
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        self.two_factor_on, self.two_factor_setup = True, False
        return rx.call_script(
            fill_script("totp-qr", "", html=True)
            + fill_script("totp-secret", "")
            + fill_script(
                "recovery-codes",
                _("Recovery codes: each works once instead of a code. Keep them safe.")
                + "\n"
                + "\n".join(codes),
            )
        )

    @rx.event
    async def disable_two_factor(self, form: dict[str, Any]) -> Any:
        from core.services.twofactor import disable_totp

        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        try:
            await in_thread(
                disable_totp,
                customer_id=customer_id,
                code=str(form.get("code", ""))[:64],
                ip=self._client()["ip"],
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        self.two_factor_on = False
        return rx.toast.success(_("Two-factor sign-in is off."), duration=3000)

    async def _load_sessions(self, customer_id: int) -> None:
        from core.services.sessions import list_sessions

        listed = await in_thread(
            list_sessions, customer_id=customer_id, current_token=self._secrets().session
        )
        self.sessions = [
            {
                "id": str(s.id),
                "started": day(s.created_at.date()),
                "last_used": day(s.last_seen_at.date()),
                "ip": s.ip or "",
                "browser": (s.user_agent or "unknown browser")[:80],
                "current": "yes" if s.current else "",
            }
            for s in listed
        ]

    @rx.event
    async def end_session(self, session_id: str) -> Any:
        """End one of this customer's sessions; ending this browser's signs it out."""
        from core.services.sessions import end_session

        customer_id = await in_thread(self._customer_id)
        if customer_id is None or not str(session_id).isdigit():
            return rx.redirect(localised_path("/signin"))
        current = next((s for s in self.sessions if s["id"] == str(session_id)), None)
        try:
            await in_thread(
                end_session,
                customer_id=customer_id,
                session_id=int(session_id),
                ip=self._client()["ip"],
            )
        except Exception as exc:
            return rx.toast.error(error_text(exc))
        if current is not None and current["current"]:
            self.signed_in, self.sessions, self.orders = False, [], []
            return rx.call_script(SIGN_OUT_SCRIPT)
        await self._load_sessions(customer_id)
        return rx.toast.success(_("That browser is signed out."), duration=3000)

    @rx.event
    async def delete_account(self, form: dict[str, Any]) -> Any:
        """Erase the account after its password (core.services.erasure), then sign out."""
        from core.services.erasure import delete_account

        customer_id = await in_thread(self._customer_id)
        if customer_id is None:
            return rx.redirect(localised_path("/signin"))
        self.error = ""
        try:
            await in_thread(
                delete_account,
                customer_id=customer_id,
                password=str(form.get("password", ""))[:1024],
                **self._client(),
            )
        except Exception as exc:
            self.error = error_text(exc)
            return None
        self.signed_in, self.customer_email, self.customer_name = False, "", ""
        self.orders, self.sessions = [], []
        return rx.call_script(SIGN_OUT_SCRIPT)

    @rx.event
    async def sign_out_everywhere(self) -> Any:
        from core.services.sessions import sign_out_everywhere

        customer_id = await in_thread(self._customer_id)
        if customer_id is not None:
            await in_thread(sign_out_everywhere, customer_id=customer_id, ip=self._client()["ip"])
        self.signed_in, self.customer_email, self.customer_name = False, "", ""
        self.orders, self.sessions = [], []
        return rx.call_script(SIGN_OUT_SCRIPT)

    @rx.event
    async def load_form(self) -> None:
        from core.config import get_settings

        self.error, self.info, self.busy = "", "", False
        settings = get_settings()
        self.oidc_name = settings.oidc_name if settings.oidc_enabled else ""
        self.referral = str(self.router.url.query_parameters.get("ref") or "")[:40]
        outcome = self.router.url.query_parameters.get("oidc")
        if outcome and self.oidc_name:
            failed = (
                _(
                    "Signing in with %(provider)s did not work: it has not verified your "
                    "e-mail address, or the sign-in expired."
                )
                if outcome == "refused"
                else _("Signing in with %(provider)s did not work.")
            )
            self.error = (
                failed % {"provider": self.oidc_name} + " " + _("Try again, or use your password.")
            )
        await self.load_session()

    def _signed_in(self, result: Any) -> Any:
        """Show the new session and hand its token to the browser's cookie (the script
        loads ``/account`` once the cookie is set)."""
        self.signed_in, self.customer_email, self.customer_name = (
            True,
            result.email,
            result.display_name,
        )
        self.busy = False
        return rx.call_script(handoff_script(result.token, localised_path("/account")))

    def _passwords_differ(self, form: dict[str, Any]) -> bool:
        if str(form.get("password", "")) != str(form.get("password_again", "")):
            self.error = _("The two passwords differ.")
            return True
        return False

    async def _attempt(self, call: Any, /, **kwargs: Any) -> Any:
        """``call(**kwargs)`` off the event loop; when it fails, show why, end the busy
        state and return ``_FAILED``."""
        try:
            return await in_thread(call, **kwargs)
        except Exception as exc:
            self.error, self.busy = error_text(exc), False
            return _FAILED

    @rx.event
    async def sign_up(self, form: dict[str, Any]) -> Any:
        from core.services.signup import sign_up

        if self._passwords_differ(form):
            return
        self.busy, self.error, self.info = True, "", ""
        yield
        email = str(form.get("email", ""))[:320]
        result = await self._attempt(
            sign_up,
            email=email,
            password=str(form.get("password", ""))[:1024],
            display_name=str(form.get("name", ""))[:120].strip(),
            referral=self.referral or None,
            **self._client(),
        )
        if result is _FAILED:
            return
        self.busy = False
        # the same answer whether or not the address already has an account
        self.info = _(
            "We have sent a message to %(email)s: follow its link to confirm the "
            "address. You can sign in with your password meanwhile."
        ) % {"email": email.strip()}

    @rx.event
    async def sign_in(self, form: dict[str, Any]) -> Any:
        from core.services.accounts import sign_in
        from core.services.twofactor import SecondFactorRequired

        self.busy, self.error = True, ""
        yield
        try:
            result = await in_thread(
                sign_in,
                email=str(form.get("email", ""))[:320],
                password=str(form.get("password", ""))[:1024],
                code=str(form.get("code", ""))[:64] or None,
                **self._client(),
            )
        except SecondFactorRequired as exc:
            self.need_code, self.error, self.busy = True, exc.message, False
            return
        except Exception as exc:
            self.error, self.busy = error_text(exc), False
            return
        yield self._signed_in(result)

    @rx.event
    async def sign_out(self) -> Any:
        from core.services.accounts import sign_out

        token = self._secrets().session
        if token:
            with contextlib.suppress(Exception):
                await in_thread(sign_out, token=token)
        self.signed_in, self.customer_email, self.customer_name = False, "", ""
        self.orders = []
        return rx.call_script(SIGN_OUT_SCRIPT)  # clears the cookie, then goes home

    @rx.event
    async def request_reset(self, form: dict[str, Any]) -> Any:
        from core.services.accounts import request_password_reset

        self.busy, self.error, self.info = True, "", ""
        yield
        result = await self._attempt(
            request_password_reset,
            email=str(form.get("email", ""))[:320],
            ip=self._client()["ip"],
        )
        if result is _FAILED:
            return
        self.busy = False
        self.info = _(
            "If an account uses that address, we have sent it a link to choose a new password."
        )

    @rx.event
    async def load_reset(self) -> None:
        self.error, self.info, self.busy = "", "", False
        if not self._secrets().reset:
            self.error = _("This page needs the link from the e-mail we sent you.")

    @rx.event
    async def reset_password(self, form: dict[str, Any]) -> Any:
        from core.services.accounts import reset_password

        if self._passwords_differ(form):
            return
        self.busy, self.error = True, ""
        yield
        result = await self._attempt(
            reset_password,
            token=self._secrets().reset,
            new_password=str(form.get("password", ""))[:1024],
            **self._client(),
        )
        if result is _FAILED:
            return
        yield self._signed_in(result)
