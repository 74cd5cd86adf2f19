"""Cart, checkout and the built-in test payment page."""

from __future__ import annotations

import re
from typing import Any

import reflex as rx

from core.db import session_scope
from core.i18n import current_language, localised_path
from core.i18n import gettext as _
from core.services.catalogue.covers import SIZES, Cover
from web.api.security import load_script
from web.state.base import ShopState, error_text, in_thread, parse_cart
from web.state.format import cover_fields, money


class CartState(ShopState):
    lines: list[dict[str, Any]] = []
    total: str = ""
    vat: str = ""  # "incl. 19% VAT (Germany): €3.19"
    country: str = ""
    countries: list[list[str]] = []  # [code, "Germany (19% VAT)"]
    undo_slug: str = ""  # the line just removed, offered back
    undo_title: str = ""
    undo_qty: int = 0
    problems: list[str] = []
    can_checkout: bool = False
    loaded: bool = False
    email: str = ""
    placing: bool = False
    error: str = ""
    crypto_offered: bool = False  # the checkout offers crypto (NOWPayments) beside card
    credit_text: str = ""  # "You have €12.50 of store credit" (signed in, some credit)
    promo_code: str = ""  # the code(s) applied to the cart, as typed
    promo_text: str = ""  # "Promo code SUMMER10: -€4.99"
    promo_error: str = ""  # why the code cannot be used on this cart

    @rx.var(cache=False)
    def undo_text(self) -> str:
        return _("Removed %(title)s from your cart.") % {"title": self.undo_title}

    @rx.var(cache=False)
    def signed_in_text(self) -> str:
        return _("Signed in as %(email)s: the order goes to your account.") % {
            "email": self.customer_email
        }

    async def _quote(self) -> None:
        from core.services.cart import CartLine, quote_cart
        from core.services.promos import CartDiscount, quote_discounts
        from core.services.vat import countries, country, country_name, rate_text, vat_included

        cart = [
            CartLine(slug=line["slug"], quantity=line["qty"]) for line in parse_cart(self.cart_json)
        ]
        self.currency = currency = self._currency()
        buyer = country(self._country())
        self.country = buyer.code
        language = current_language()
        self.countries = [
            [
                c.code,
                _("%(country)s (%(rate)s VAT)")
                % {"country": country_name(c), "rate": rate_text(c.rate_bp, language)},
            ]
            for c in countries()
        ]

        code, email = self.promo_code, self.email or self.customer_email
        customer_id = await in_thread(self._customer_id) if self.signed_in and code else None

        def work() -> Any:
            with session_scope(write=False) as session:
                quote = quote_cart(
                    session=session, lines=cart, currency=currency, vat_rate_bp=buyer.rate_bp
                )
                off = (
                    quote_discounts(
                        session=session,
                        lines=quote.lines,
                        currency=quote.currency,
                        promo_code=code,
                        email=email,
                        customer_id=customer_id,
                    )
                    if code
                    else None
                )
                return quote, off

        try:
            quote, off = await in_thread(work) if cart else (None, None)
        except Exception as exc:
            self.error = error_text(exc)
            return
        discount: CartDiscount | None = off
        by_line = discount.applied.by_line if discount else {}
        self.promo_error = discount.error if discount else ""
        if quote is None:
            self.lines, self.total, self.problems, self.can_checkout = [], "", [], False
            self.promo_text = ""
        else:
            self.lines = [
                {
                    "slug": line.slug,
                    "title": line.title,
                    "platform": line.platform,
                    "region": line.region,
                    # a thumbnail beside the title's link: decorative, no alt text
                    **cover_fields(
                        Cover(line.cover_url, *SIZES["card"], alt="") if line.cover_url else None
                    ),
                    "unit_price": money(line.unit_price_minor, line.currency),
                    "qty": line.quantity,
                    "line_total": money(
                        line.line_total_minor - by_line.get(line.product_id or 0, 0),
                        line.currency,
                    ),
                    "discount": (
                        f"{money(line.line_total_minor, line.currency)} - "
                        f"{money(by_line[line.product_id], line.currency)} with the code"
                        if line.product_id in by_line
                        else ""
                    ),
                    "problem": line.problem or "",
                    "can_add": 0 < line.quantity < line.max_quantity,
                    "preorder": line.is_preorder,
                }
                for line in quote.lines
            ]
            taken = discount.applied.total_minor if discount else 0
            self.total = money(quote.total_minor - taken, quote.currency)
            self.promo_text = (
                _("Promo code %(codes)s: -%(amount)s")
                % {
                    "codes": ", ".join(discount.applied.codes),
                    "amount": money(taken, quote.currency),
                }
                if discount and taken
                else ""
            )
            vat_minor = vat_included(quote.total_minor - taken, buyer.rate_bp)
            self.vat = _("Includes %(rate)s VAT (%(country)s): %(amount)s") % {
                "rate": rate_text(buyer.rate_bp, current_language()),
                "country": country_name(buyer),
                "amount": money(vat_minor, quote.currency),
            }
            self.problems = list(quote.problems)
            self.can_checkout = bool(quote.lines) and not quote.problems
        self.loaded, self.error = True, ""

    @rx.event
    async def load(self) -> None:
        from core.config import get_settings

        await self.load_session()
        if self.signed_in and not self.email:
            self.email = self.customer_email
        self.crypto_offered = get_settings().crypto_payments
        await self._quote()
        await self._credit()

    async def _credit(self) -> None:
        """The signed-in customer's store credit in the cart's currency, offered at
        checkout when there is some."""
        from core.services.credit import balance_in

        customer_id = await in_thread(self._customer_id) if self.signed_in else None
        amount = (
            await in_thread(balance_in, customer_id=customer_id, currency=self.currency)
            if customer_id is not None
            else 0
        )
        self.credit_text = (
            _("Use my store credit (%(amount)s)") % {"amount": money(amount, self.currency)}
            if amount > 0
            else ""
        )

    @rx.event
    async def change_qty(self, slug: str, delta: int) -> Any:
        """+1 through core's add rule (refused at the limit, with its sentence); minus one
        down to nothing removes the line and offers it back (undo)."""
        for line in parse_cart(self.cart_json):
            if line["slug"] != slug:
                continue
            if delta > 0:
                refused = await self._add(slug, 1)
                await self._quote()
                return rx.toast.error(refused) if refused else None
            if line["qty"] <= 1:
                return await self._removed(slug)
            self._set_qty(slug, line["qty"] - 1)
        await self._quote()
        return None

    async def _removed(self, slug: str) -> None:
        title = next((ln["title"] for ln in self.lines if ln["slug"] == slug), slug)
        qty = next((ln["qty"] for ln in parse_cart(self.cart_json) if ln["slug"] == slug), 0)
        if not qty:
            return
        self._set_qty(slug, 0)
        self.undo_slug, self.undo_title, self.undo_qty = slug, title, qty
        await self._quote()

    @rx.event
    async def remove_line(self, slug: str) -> None:
        await self._removed(slug)

    @rx.event
    async def undo_remove(self) -> Any:
        slug, qty = self.undo_slug, self.undo_qty
        self.undo_slug, self.undo_title, self.undo_qty = "", "", 0
        refused = await self._add(slug, qty) if slug and qty > 0 else None
        await self._quote()
        return rx.toast.error(refused) if refused else None

    @rx.event
    async def set_country(self, value: str) -> None:
        from core.services.vat import countries

        if value.upper() in {c.code for c in countries()}:
            self.country_choice = value.upper()
        await self._quote()

    @rx.event
    async def apply_promo(self, form: dict[str, Any]) -> None:
        """Apply the code typed in the cart (an empty field removes it): the lines show
        what it takes off, or the cart says why it cannot be used."""
        self.promo_code = str(form.get("promo_code") or "").strip()[:220]
        await self._quote()

    @rx.event
    async def remove_promo(self) -> None:
        self.promo_code = ""
        await self._quote()

    @rx.event
    def set_email(self, value: str) -> None:
        self.email = value[:320]

    @rx.event
    async def place_order(self, form: dict[str, Any]) -> Any:
        from core.services.checkout import CartLine, place_order
        from core.services.ratelimit import check_checkout

        if self.placing:
            return
        email = str(form.get("email", self.email)).strip()[:320]
        self.email = email
        method = str(form.get("payment_method") or "card").strip().lower()[:20]
        # gift card codes, one per line or separated by commas (spaces inside a code
        # are fine: they are ignored like its hyphens)
        codes = [c.strip() for c in re.split(r"[,;\n]+", str(form.get("gift_cards") or "")[:400])]
        gift_cards = [c for c in codes if c]
        use_credit = bool(self.credit_text) and str(form.get("use_credit") or "").lower() in (
            "on",
            "true",
        )
        cart = [
            CartLine(slug=line["slug"], quantity=line["qty"]) for line in parse_cart(self.cart_json)
        ]
        if not cart:
            self.error = _("Your cart is empty.")
            return
        self.placing, self.error = True, ""
        yield
        try:
            await in_thread(check_checkout, ip=self._client()["ip"])
            customer_id = await in_thread(self._customer_id)
            result = await in_thread(
                place_order,
                email=email,
                lines=cart,
                customer_id=customer_id,
                ip=self._client()["ip"],
                currency=self._currency(),
                country=self._country(),
                payment_method=method,
                language=current_language(),
                gift_cards=gift_cards,
                use_credit=use_credit,
                promo_code=self.promo_code or None,
            )
        except Exception as exc:
            self.placing = False
            await self._quote()  # prices and stock may have moved; it clears self.error
            self.error = error_text(exc)
            return
        self._clear_cart()
        self.placing = False
        # a full load (its token becomes a cookie: web/api/security.py); Stripe and
        # NOWPayments: leaves for their page
        yield rx.call_script(load_script(result.payment_url))


class PayState(ShopState):
    """The built-in test payment page (``/pay/<number>?token=...``): used when Stripe is
    not configured. It is labelled as test mode everywhere; paying sends a Stripe-format
    event signed with the local secret through the real webhook handler."""

    number: str = ""
    total: str = ""
    items: list[dict[str, str]] = []
    status_label: str = ""
    payable: bool = False
    found: bool = True
    paying: bool = False
    error: str = ""

    @rx.var(cache=False)
    def pay_label(self) -> str:
        return _("Pay %(total)s (test payment)") % {"total": self.total}

    def _access_token(self) -> str | None:
        """The order-access token from the browser's HttpOnly cookie, never kept."""
        return self._secrets().order_token(self.number)

    @rx.event
    async def load(self) -> None:
        from core.services.portal import view_order

        self.number = self.router.url.path.rstrip("/").rsplit("/", 1)[-1][:24]
        await self.load_session()

        def work() -> Any:
            return view_order(
                number=self.number,
                access_token=self._access_token(),
                customer_id=self._customer_id(),
            )

        try:
            view = await in_thread(work)
        except Exception as exc:
            self.found, self.error = False, error_text(exc)
            return
        self.found, self.error = True, ""
        # the card pays what gift cards and store credit left
        self.total = money(
            view.total_minor - int(getattr(view, "paid_from_balances_minor", 0)), view.currency
        )
        self.items = [
            {"title": line.title, "qty": str(line.quantity), "platform": line.platform}
            for line in view.lines
        ]
        self.status_label = view.status_label
        self.payable = view.status == "pending_payment"

    @rx.event
    async def pay(self) -> Any:
        from core.services.checkout import pay_test_order

        if self.paying or not self.payable:
            return
        self.paying, self.error = True, ""
        yield
        try:
            await in_thread(
                pay_test_order, number=self.number, access_token=self._access_token() or ""
            )
        except Exception as exc:
            self.error, self.paying = error_text(exc), False
            return
        self.paying, self.payable = False, False
        yield rx.redirect(localised_path(f"/orders/{self.number}"))  # the cookie opens it
