"""Home, catalogue search and the product page."""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from core.db import session_scope
from core.errors import InvalidInput
from core.i18n import N_, current_language, localised_path, ngettext
from core.i18n import gettext as _
from core.money import DEFAULT_CURRENCY, parse_amount
from web.state.base import ShopState, error_text, in_thread
from web.state.format import cover_fields, day, money, product_card, product_page_title

PER_PAGE = 24
SORTS = {
    "relevance": N_("Best match"),
    "price_asc": N_("Price: low to high"),
    "price_desc": N_("Price: high to low"),
    "newest": N_("Newest"),
    "title": N_("Title A–Z"),  # noqa: RUF001
}
ANY = "any"  # select value for "no filter" (Radix selects need a non-empty value)


def _price_minor(text: str, currency: str = DEFAULT_CURRENCY) -> int | None:
    """``"19.99"`` → 1999 (in the customer's currency); empty → None; anything else
    raises InvalidInput (``core.money.parse_amount``: exact, no floats)."""
    if not (text or "").strip():
        return None
    return parse_amount(text, currency, field="price")


HOME_CACHE_SECONDS = 15.0
# (currency, language) → (read at, catalogue generation then, cards)
_home_cache: dict[tuple[str, str], tuple[float, str | None, dict[str, list[dict[str, Any]]]]] = {}


def home_cards(currency: str = DEFAULT_CURRENCY) -> dict[str, list[dict[str, Any]]]:
    """The home page's four sections as cards. Every visitor sees the same home page, so
    it is read at most once per ``HOME_CACHE_SECONDS`` per web worker, and again as soon
    as the catalogue changes (the search cache's shared catalogue generation: a product
    added, featured, repriced or sold out). A stock count on the home page may be that
    much behind, never the product page, cart or checkout, which always read fresh."""
    from core.services.catalogue.search_cache import CACHE
    from core.services.storefront import home_sections

    now = time.monotonic()
    generation = CACHE.generation().current()  # None: unknown, so never served from cache
    key = (currency, current_language())  # the cards' words, money and links are per language
    cached = _home_cache.get(key)
    if (
        cached is not None
        and generation is not None
        and cached[1] == generation
        and now - cached[0] < HOME_CACHE_SECONDS
    ):
        return cached[2]
    with session_scope(write=False) as session:
        sections = home_sections(session=session, per_section=8, currency=currency)
    cards = {
        name: [product_card(h) for h in getattr(sections, name)]
        for name in ("featured", "new_releases", "preorders", "deals")
    }
    _home_cache[key] = (now, generation, cards)
    return cards


class HomeState(ShopState):
    featured: list[dict[str, Any]] = []
    new_releases: list[dict[str, Any]] = []
    preorders: list[dict[str, Any]] = []
    deals: list[dict[str, Any]] = []
    loaded: bool = False
    error: str = ""

    @rx.event
    async def load(self) -> None:
        try:
            cards = await in_thread(home_cards, self._currency())
        except Exception as exc:
            self.error = error_text(exc)
            return
        self.featured, self.new_releases = cards["featured"], cards["new_releases"]
        self.preorders, self.deals = cards["preorders"], cards["deals"]
        self.error, self.loaded = "", True


class CatalogueState(ShopState):
    query: str = ""
    platform: str = ANY
    region: str = ANY
    genre: str = ANY
    min_price: str = ""
    max_price: str = ""
    in_stock_only: bool = False
    deals_only: bool = False
    preorders_only: bool = False
    sort: str = "relevance"
    page: int = 1

    results: list[dict[str, Any]] = []
    total_text: str = ""
    pages: int = 0
    has_next: bool = False
    has_previous: bool = False
    platforms: list[str] = []
    regions: list[str] = []
    genres: list[str] = []
    error: str = ""
    loading: bool = False
    similar_to: str = ""  # the words matched nothing: these titles look like them

    @rx.var(cache=False)
    def pager_text(self) -> str:
        return _("Page %(page)s of %(pages)s") % {"page": self.page, "pages": self.pages}

    @rx.event
    async def load(self) -> Any:
        """Read the filters from the address (so a search can be shared or bookmarked),
        then search."""
        params = self.router.url.query_parameters
        self.query = (params.get("q") or "")[:200]
        self.platform = params.get("platform") or ANY
        self.region = params.get("region") or ANY
        self.genre = params.get("genre") or ANY
        self.min_price = (params.get("min") or "")[:12]
        self.max_price = (params.get("max") or "")[:12]
        self.in_stock_only = params.get("stock") == "1"
        self.deals_only = params.get("deals") == "1"
        self.preorders_only = params.get("preorder") == "1"
        sort = params.get("sort") or ""
        self.sort = sort if sort in SORTS else "relevance"
        page = params.get("page") or "1"
        self.page = int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1
        if not self.platforms:
            from core.services.catalogue import facet_values

            def facets() -> dict[str, list[str]]:
                with session_scope(write=False) as session:
                    return facet_values(session=session)

            values = await in_thread(facets)
            self.platforms, self.regions, self.genres = (
                values["platforms"],
                values["regions"],
                values["genres"],
            )
        await self._search()

    async def _search(self) -> None:
        from core.services.catalogue.fuzzy import search_forgiving

        currency = self._currency()
        try:
            low = _price_minor(self.min_price, currency)
            high = _price_minor(self.max_price, currency)
        except InvalidInput:
            self.error = _("Prices are amounts like 9.99.")
            return
        search = partial(
            search_forgiving,
            query=self.query or None,
            platform=None if self.platform == ANY else self.platform,
            region=None if self.region == ANY else self.region,
            genre=None if self.genre == ANY else self.genre,
            min_price_minor=low,
            max_price_minor=high,
            in_stock=True if self.in_stock_only else None,
            preorder=True if self.preorders_only else None,
            deals=self.deals_only,
            currency=currency,
            sort=self.sort,
            page=self.page,
            per_page=PER_PAGE,
        )

        def work() -> Any:
            with session_scope(write=False) as session:
                return search(session=session)

        self.loading = True
        try:
            forgiving = await in_thread(work)
        except Exception as exc:
            self.error, self.loading = error_text(exc), False
            return
        result = forgiving.page
        self.similar_to = forgiving.similar_to or ""
        self.results = [product_card(h) for h in result.items]
        more = "" if result.total_is_exact else "+"
        self.total_text = (
            ngettext("%(count)s game", "%(count)s games", result.total)
            % {"count": f"{result.total}{more}"}
            if result.total
            else _("No games match")
        )
        self.pages, self.has_next, self.has_previous = (
            result.pages,
            result.has_next,
            result.has_previous,
        )
        self.error, self.loading = "", False

    def _address(self, page: int | None = None) -> str:
        params = {
            "q": self.query,
            "platform": "" if self.platform == ANY else self.platform,
            "region": "" if self.region == ANY else self.region,
            "genre": "" if self.genre == ANY else self.genre,
            "min": self.min_price,
            "max": self.max_price,
            "stock": "1" if self.in_stock_only else "",
            "deals": "1" if self.deals_only else "",
            "preorder": "1" if self.preorders_only else "",
            "sort": "" if self.sort == "relevance" else self.sort,
            "page": str(page or self.page) if (page or self.page) > 1 else "",
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return localised_path("/games") + (f"?{query}" if query else "")

    @rx.event
    def submit_search(self, form: dict[str, Any]) -> Any:
        self.query = str(form.get("q", ""))[:200].strip()
        self.min_price = str(form.get("min", ""))[:12]
        self.max_price = str(form.get("max", ""))[:12]
        self.page = 1
        return rx.redirect(self._address())

    @rx.event
    def set_filter(self, name: str, value: str) -> Any:
        if name in {"platform", "region", "genre"}:
            setattr(self, name, value or ANY)
        elif name == "sort" and value in SORTS:
            self.sort = value
        self.page = 1
        return rx.redirect(self._address())

    @rx.event
    def toggle_in_stock(self, value: bool) -> Any:
        self.in_stock_only = bool(value)
        self.page = 1
        return rx.redirect(self._address())

    @rx.event
    def clear_filters(self) -> Any:
        return rx.redirect(localised_path("/games"))

    @rx.event
    def go_to_page(self, delta: int) -> Any:
        return rx.redirect(self._address(max(1, self.page + delta)))


STOCK_ALERT_NOTES = {
    "confirmed": N_("Confirmed: we will e-mail you once when this game is back."),
    "unsubscribed": N_("Done: you will get no more e-mails about this game."),
    "invalid": N_("That link is no longer valid."),
}


class ProductState(ShopState):
    found: bool = True
    product: dict[str, Any] = {}
    error: str = ""
    alert_note: str = ""  # what happened to a back-in-stock request
    alert_error: str = ""

    @rx.var(cache=False)
    def page_title(self) -> str:
        if not self.found:
            return _("Game not found · keyshop")
        title = str(self.product.get("title") or "")
        platform = str(self.product.get("platform") or "")
        return product_page_title(title, platform) if title else "keyshop"

    @rx.event
    async def request_stock_alert(self, form: dict[str, Any]) -> None:
        """Leave an address for the back-in-stock e-mail (double opt-in)."""
        from core.services.stock_alerts import request_stock_alert

        slug, email = str(self.product.get("slug", "")), str(form.get("email", ""))[:320]

        def work() -> None:
            with session_scope() as session:
                request_stock_alert(session=session, slug=slug, email=email)

        try:
            await in_thread(work)
        except Exception as exc:
            self.alert_error, self.alert_note = error_text(exc), ""
            return
        self.alert_error = ""
        self.alert_note = _(
            "Check your inbox: confirm with the link we sent, and we will e-mail you once "
            "when this game is back."
        )

    @rx.event
    async def load(self) -> None:
        from core.services.storefront import product_detail

        slug = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        outcome = self.router.url.query_parameters.get("stock_alert") or ""
        note = STOCK_ALERT_NOTES.get(outcome)
        self.alert_note, self.alert_error = (_(note) if note else ""), ""
        currency = self._currency()

        def work() -> Any:
            with session_scope(write=False) as session:
                return product_detail(session=session, slug=slug, currency=currency)

        try:
            detail = await in_thread(work)
        except Exception as exc:
            from core.errors import NotFound

            message = (
                _("We could not find that game: it may have been removed.")
                if isinstance(exc, NotFound)
                else ""
            )
            self.found, self.product, self.error = False, {}, message or error_text(exc)
            return
        self.product = {
            "slug": detail.slug,
            "title": detail.title,
            "platform": detail.platform,
            "region": detail.region,
            "genre": detail.genre,
            "publisher": detail.publisher,
            "description": detail.description,
            "price": money(detail.price_minor, detail.currency),
            "list_price": money(detail.list_price_minor, detail.currency)
            if detail.discount_percent
            else "",
            **cover_fields(detail.cover),
            "availability": detail.availability,
            "can_buy": bool(detail.can_buy),
            "region_locked": bool(detail.region_locked),
            "region_warning": detail.region_warning or "",
            "activation_instructions": detail.activation_instructions or "",
            "activation_url": detail.activation_url or "",
            "is_preorder": bool(detail.is_preorder),
            "release_date": day(detail.release_date),
            "arrival": detail.arrival,
            "not_sold": ""
            if detail.sold_in_currency
            else _("Not sold in %(currency)s: switch currency to buy it.") % {"currency": currency},
        }
        self.found, self.error = True, ""
