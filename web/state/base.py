"""The base state every page shares: who is signed in, and the cart.

- The session token lives in an HttpOnly cookie (``ks_session``) set by the server
  (web/api/security.py); only its SHA-256 is stored server-side
  (core.services.accounts). No bearer token is ever a state var: the state (in Redis
  with several workers) sees the browser's secret cookies only sealed, and
  :meth:`ShopState._secrets` unseals them in memory. Each page's ``on_load`` calls
  :meth:`ShopState.load_session`, so a sign-out in another tab is seen on the next page.
- The cart lives in the browser's local storage (``ks_cart``, a JSON list of
  ``{"slug", "qty"}``), so it survives reloads and needs no account; prices are never
  taken from it: the cart and checkout pages quote it afresh from the catalogue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import reflex as rx

from core.errors import DomainError
from core.i18n import LANGUAGES, localised_path, split_path
from core.i18n import gettext as _
from core.money import DEFAULT_CURRENCY, SHOP_CURRENCIES
from core.services.orders import MAX_LINES
from core.services.orders import MAX_QUANTITY_PER_LINE as MAX_QTY
from web.api.security import BrowserSecrets, browser_secrets

T = TypeVar("T")


def parse_cart(raw: str) -> list[dict[str, Any]]:
    """The cart from local storage, tolerating anything a user could have put there."""
    try:
        data = json.loads(raw or "[]")
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return []
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    if not isinstance(data, list):
        return []
    for item in data:
        if not isinstance(item, dict):
            continue
        slug, qty = item.get("slug"), item.get("qty")
        if not isinstance(slug, str) or not slug or len(slug) > 120 or slug in seen:
            continue
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            continue
        seen.add(slug)
        lines.append({"slug": slug, "qty": min(qty, MAX_QTY)})
    return lines[:MAX_LINES]


def error_text(exc: Exception) -> str:
    """What a customer is told about a failure: the domain's own message, or a generic
    line (never a stack trace, never a key)."""
    if isinstance(exc, DomainError):
        return exc.message
    return _("Something went wrong on our side. Please try again in a moment.")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking core work off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class ShopState(rx.State):
    cart_json: str = rx.LocalStorage("[]", name="ks_cart", sync=True)
    # The customer's choice of currency and country, kept in the browser; until they
    # choose, both come from the browser's languages (core.services.vat).
    currency_choice: str = rx.LocalStorage("", name="ks_currency", sync=True)
    country_choice: str = rx.LocalStorage("", name="ks_country", sync=True)
    currency: str = DEFAULT_CURRENCY

    signed_in: bool = False
    customer_email: str = ""
    customer_name: str = ""

    @rx.var
    def currencies(self) -> list[str]:
        return list(SHOP_CURRENCIES)

    @rx.var(cache=False)
    def page_language(self) -> str:
        """The language of the address in the browser (``/de/...``: German)."""
        return split_path(self.router.url.path or "/")[0]

    @rx.var(cache=False)
    def language_hrefs(self) -> dict[str, str]:
        """This page in each language, through ``/lang/<code>`` (web/api/pages.py sets
        the remembering cookie and redirects)."""
        _language, path = split_path(self.router.url.path or "/")
        query = self.router.url.query
        target = quote(path + (f"?{query}" if query else ""), safe="/")
        return {code: f"/lang/{code}?next={target}" for code in LANGUAGES}

    def _country(self) -> str:
        """The buyer's country: chosen, or guessed from the browser, or the default."""
        from core.services.vat import DEFAULT_COUNTRY, countries, country_from_languages

        chosen = (self.country_choice or "").upper()
        if chosen in {c.code for c in countries()}:
            return chosen
        return country_from_languages(self.router.headers.accept_language) or DEFAULT_COUNTRY

    def _currency(self) -> str:
        """The customer's currency: chosen, or their country's."""
        from core.services.vat import currency_for_country

        if self.currency_choice in SHOP_CURRENCIES:
            return self.currency_choice
        return currency_for_country(self._country())

    @rx.event
    def set_currency(self, value: str) -> Any:
        if value not in SHOP_CURRENCIES:
            return None
        self.currency_choice = self.currency = value
        return rx.call_script("window.location.reload()")

    @rx.var
    def cart_count(self) -> int:
        return sum(line["qty"] for line in parse_cart(self.cart_json))

    # -- session ---------------------------------------------------------------------

    def _secrets(self) -> BrowserSecrets:
        """The tokens of the browser's HttpOnly cookies, unsealed (never store them)."""
        return browser_secrets(self.router.headers.raw_headers)

    def _customer_id(self) -> int | None:
        """The signed-in customer's id, looked up from the session cookie (never trusted
        from the client otherwise)."""
        from core.services.accounts import customer_for_token

        token = self._secrets().session
        if not token:
            return None
        info = customer_for_token(token=token)
        return info.id if info else None

    @rx.event
    async def load_session(self) -> None:
        from core.services.accounts import customer_for_token

        self.currency = self._currency()
        token = self._secrets().session
        info = await in_thread(customer_for_token, token=token) if token else None
        if info is None:
            self.signed_in, self.customer_email, self.customer_name = False, "", ""
        else:
            self.signed_in, self.customer_email, self.customer_name = (
                True,
                info.email,
                info.display_name,
            )

    def _client(self) -> dict[str, str | None]:
        return {
            "ip": self.router.session.client_ip or None,
            "user_agent": (self.router.headers.user_agent or "")[:400] or None,
        }

    @rx.event
    def header_search(self, form: dict[str, Any]) -> Any:
        query = str(form.get("q", ""))[:200].strip()
        games = localised_path("/games")
        return rx.redirect(games + "?" + urlencode({"q": query}) if query else games)

    # -- cart --------------------------------------------------------------------------

    def _write_cart(self, lines: list[dict[str, Any]]) -> None:
        self.cart_json = json.dumps(lines[:MAX_LINES], separators=(",", ":"))

    async def _add(self, slug: str, quantity: int = 1) -> str | None:
        """Add through core's rule (core.services.cart.add_to_cart); the refusal's
        sentence, or None when added."""
        from core.db import session_scope
        from core.services.cart import CartLine, add_to_cart

        lines = [CartLine(line["slug"], line["qty"]) for line in parse_cart(self.cart_json)]
        currency = self._currency()

        def work() -> list[CartLine]:
            with session_scope(write=False) as session:
                return add_to_cart(
                    session=session, lines=lines, slug=slug, quantity=quantity, currency=currency
                )

        try:
            added = await in_thread(work)
        except Exception as exc:
            return error_text(exc)
        self._write_cart([{"slug": line.slug, "qty": line.quantity} for line in added])
        return None

    @rx.event
    async def add_to_cart(self, slug: str) -> Any:
        refused = await self._add(str(slug)[:120])
        if refused:
            return rx.toast.error(refused)
        return rx.toast.success(_("Added to your cart."), duration=2500)

    def _set_qty(self, slug: str, qty: int) -> None:
        lines = [line for line in parse_cart(self.cart_json) if line["slug"] != slug or qty > 0]
        for line in lines:
            if line["slug"] == slug:
                line["qty"] = max(1, min(MAX_QTY, qty))
        self._write_cart(lines)

    def _clear_cart(self) -> None:
        self.cart_json = "[]"
