"""Finding products for the storefront: search, filters, sorting, one page at a time,
with each hit's stock; facet values for the filter drop-downs. Runs inside the caller's
transaction and never writes.

Search (``search_products``) uses the search index the first migration builds:

- PostgreSQL: a GIN expression index ``ix_products_search`` on
  ``to_tsvector('simple', title || ' ' || platform || ' ' || genre || ' ' || publisher)``.
  The query repeats that expression verbatim so the planner can use the index; every
  word of the shopper's query becomes a prefix term (``witch:*``), the terms are ANDed,
  and matches are ranked with ``ts_rank`` over the title (a title match beats a
  platform, genre or publisher match).
- SQLite: the external-content FTS5 table ``products_fts`` (kept in sync with
  ``products`` by triggers); terms are quoted prefix terms (``"witch"*``), ANDed, ranked
  with ``bm25`` (title weighs most).

Cost is bounded so searches stay fast on a large catalogue:

- Text rank is computed only when at most ``RANK_LIMIT`` products match. A broader
  query (one letter, a platform name) cannot be told apart by rank anyway, so its
  matches are ordered like an empty search: featured first, then newest.
- The total is counted up to ``COUNT_LIMIT``; past it ``SearchPage.total`` is
  ``COUNT_LIMIT`` and ``total_is_exact`` is False ("10,000+ results"), the way search
  engines report totals. ``exact_total=True`` counts everything (operator screens).

The shopper's text never reaches either query language as syntax: it is reduced to word
tokens (Unicode letters and digits, NFKC-normalised, lower-cased) and everything else --
quotes, colons, operators, brackets, emoji -- is dropped. A query with no word left in it
searches nothing and lists the whole catalogue, like an empty search box.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlmodel import Session

from core.errors import InvalidInput
from core.metrics import SEARCH_CACHE
from core.money import normalise_currency
from core.services.catalogue.prices import price_columns
from core.services.catalogue.product_input import PLATFORM_BY_LOWER, REGION_BY_LOWER
from core.services.catalogue.products import (
    _KEY_AVAILABLE,
    _is_int,
    keys_table,
    offers,
    products,
)
from core.services.catalogue.search_cache import CACHE, Found, wrote_catalogue
from core.services.low_stock import is_low_stock

SORTS: Final = ("relevance", "price_asc", "price_desc", "newest", "title")
MAX_PER_PAGE: Final = 100
# A search box query is cut to this many characters and word tokens before searching.
MAX_QUERY_CHARS: Final = 200
MAX_QUERY_TOKENS: Final = 8
RANK_LIMIT: Final = 1000
COUNT_LIMIT: Final = 10_000


# The exact expression of the PostgreSQL index ix_products_search (migration 0001,
# SEARCH_TEXT): the planner uses the index only for an identical expression.
_PG_SEARCH_DOCUMENT: Final = (
    "to_tsvector('simple', products.title || ' ' || products.platform || ' ' "
    "|| products.genre || ' ' || products.publisher)"
)

_WORD_RE: Final = re.compile(r"[^\W_]+")


# The product columns of a ProductHit, as search_products selects them.
_HIT_COLUMNS: Final = tuple(
    products.c[name]
    for name in (
        "id", "slug", "title", "platform", "region", "genre", "publisher", "price_minor",
        "currency", "list_price_minor", "is_preorder", "release_date", "featured", "cover_url",
        "cover_image", "cover_alt", "low_stock_threshold", "created_at",
    )
)  # fmt: skip
_HIT_FIELDS: Final = (*(column.name for column in _HIT_COLUMNS), "available", "provider_stock")


# -- results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductHit:
    """What a storefront card needs about one product, with its stock.

    ``available`` counts the product's keys with status ``available``; ``provider_stock``
    sums the stock the wholesale providers report for offers mapped to it.
    """

    id: int
    slug: str
    title: str
    platform: str
    region: str
    genre: str
    publisher: str
    price_minor: int
    currency: str
    list_price_minor: int | None
    is_preorder: bool
    release_date: date | None
    featured: bool
    cover_url: str | None
    cover_image: str | None  # an uploaded cover (core.services.catalogue.covers.cover_of)
    cover_alt: str
    low_stock_threshold: int
    created_at: datetime
    available: int
    provider_stock: int

    @property
    def in_stock(self) -> bool:
        """Purchasable for immediate delivery: own keys, or a provider that has some."""
        return self.available > 0 or self.provider_stock > 0

    @property
    def low_stock(self) -> bool:
        """Own stock is running low but not gone (:func:`core.services.low_stock.is_low_stock`)."""
        return self.available > 0 and is_low_stock(
            available=self.available, threshold=self.low_stock_threshold
        )

    @property
    def discount_percent(self) -> int:
        """How far below the list price the price is, in whole percent (0 when no deal)."""
        if not self.list_price_minor or self.list_price_minor <= self.price_minor:
            return 0
        return round(100 * (self.list_price_minor - self.price_minor) / self.list_price_minor)


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of search results. ``total`` counts the matches under the same filters
    (up to COUNT_LIMIT unless asked for an exact count: ``total_is_exact`` says which);
    ``pages`` is how many pages of ``per_page`` hold ``total`` (0 when nothing matched)."""

    items: list[ProductHit]
    total: int
    page: int
    per_page: int
    pages: int
    total_is_exact: bool = True

    @property
    def has_next(self) -> bool:
        return self.page < self.pages or (not self.total_is_exact and self.page == self.pages)

    @property
    def has_previous(self) -> bool:
        return self.page > 1


# -- search -------------------------------------------------------------------------


def query_tokens(query: str | None) -> list[str]:
    """The words of a search box query: NFKC-normalised, lower-cased runs of Unicode
    letters and digits; everything else is dropped. At most MAX_QUERY_TOKENS words."""
    if not query:
        return []
    normalised = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS]).lower()
    tokens: list[str] = []
    for token in _WORD_RE.findall(normalised):
        if token not in tokens:
            tokens.append(token)
        if len(tokens) == MAX_QUERY_TOKENS:
            break
    return tokens


def _positive_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"{minimum} or more"
        raise InvalidInput(f"{name} must be a whole number {bound}", field=name)
    return cast(int, value)


def _facet_condition(column: Any, value: str, canonical: dict[str, str]) -> ColumnElement[bool]:
    """Case-insensitive equality that still uses the column's index for known values."""
    known = canonical.get(value.strip().lower())
    if known is not None:
        return cast(ColumnElement[bool], column == known)
    return func.lower(column) == value.strip().lower()


def search_products(
    *,
    session: Session,
    query: str | None = None,
    platform: str | None = None,
    region: str | None = None,
    genre: str | None = None,
    min_price_minor: int | None = None,
    max_price_minor: int | None = None,
    in_stock: bool | None = None,
    preorder: bool | None = None,
    sort: str = "relevance",
    page: int = 1,
    per_page: int = 24,
    exact_total: bool = False,
    currency: str | None = None,
    deals: bool = False,
    product_ids: list[int] | None = None,
) -> SearchPage:
    """Active products matching a text query and filters, one page at a time.

    - ``query``: words matched as prefixes anywhere in title, platform, genre or
      publisher, all words required ("witch 3" finds "The Witcher 3").
    - ``platform``, ``region``, ``genre``: exact match, case-insensitive.
    - ``min_price_minor`` / ``max_price_minor``: inclusive bounds on ``price_minor``
      (minor units, compared as they are whatever the currency).
    - ``in_stock``: True keeps products a shopper can buy for immediate delivery: at
      least one own key with status ``available`` OR at least one mapped provider offer
      reporting stock > 0 (fulfilment buys from providers when own stock runs out,
      DESIGN §5.3). False keeps those with neither. None does not filter. The filter
      reads the stock summary ``products.in_stock`` (see "Stock summary" below).
    - ``preorder``: True only preorders, False no preorders, None both.
    - ``sort``: ``relevance`` (text rank when there is a query, otherwise featured
      first, then newest), ``price_asc``, ``price_desc``, ``newest`` (created_at,
      newest first), ``title`` (A→Z). Ties are broken by id so pages never overlap.
    - ``page`` ≥ 1, 1 ≤ ``per_page`` ≤ 100; a page past the end is empty.
    - ``exact_total``: count every match instead of stopping at COUNT_LIMIT.
    - ``deals``: only products priced below their list price.
    - ``currency``: list only products sold in it, priced in it (price bounds and price
      sorts too; core.services.catalogue.prices); None lists every product at its own
      price.
    - ``product_ids``: only these products (the typo-forgiving search, :mod:`.fuzzy`).

    Raises InvalidInput for a bad sort, page, per_page or price bound.

    One statement, one round trip: the page (with each hit's stock figures, read fresh
    from the keys and offers), and the total only when the page cannot tell it: a page
    that is not full (or the first page) ends the results, so its total is the offset
    plus its rows; the capped count runs (in the same statement) only for a full page
    or an empty page past the first. Broad text queries (more than RANK_LIMIT matches)
    are not ranked; see the module docstring.
    """
    if sort not in SORTS:
        raise InvalidInput(f"sort must be one of: {', '.join(SORTS)}", field="sort")
    page = _positive_int("page", page, minimum=1)
    per_page = _positive_int("per_page", per_page, minimum=1, maximum=MAX_PER_PAGE)
    for name, bound in (("min_price_minor", min_price_minor), ("max_price_minor", max_price_minor)):
        if bound is not None:
            _positive_int(name, bound, minimum=0)
    if (
        min_price_minor is not None
        and max_price_minor is not None
        and min_price_minor > max_price_minor
    ):
        raise InvalidInput(
            "The lowest price must not be above the highest price.", field="min_price_minor"
        )

    source: Any = products
    price: ColumnElement[Any] = products.c.price_minor
    list_price: ColumnElement[Any] = products.c.list_price_minor
    hit_columns: tuple[ColumnElement[Any], ...] = _HIT_COLUMNS
    conditions: list[ColumnElement[bool]] = [products.c.active == true()]
    if currency:
        source, price, list_price = price_columns(currency)
        conditions.append(price.is_not(None))
        replaced = {
            "price_minor": price.label("price_minor"),
            "currency": literal(normalise_currency(currency)).label("currency"),
            "list_price_minor": list_price.label("list_price_minor"),
        }
        hit_columns = tuple(replaced.get(c.name, c) for c in _HIT_COLUMNS)
    if platform:
        conditions.append(_facet_condition(products.c.platform, platform, PLATFORM_BY_LOWER))
    if region:
        conditions.append(_facet_condition(products.c.region, region, REGION_BY_LOWER))
    if genre:
        conditions.append(_facet_condition(products.c.genre, genre, {}))
    if min_price_minor is not None:
        conditions.append(price >= min_price_minor)
    if max_price_minor is not None:
        conditions.append(price <= max_price_minor)
    if in_stock is not None:
        conditions.append(products.c.in_stock == (true() if in_stock else false()))
    if preorder is not None:
        conditions.append(products.c.is_preorder == (true() if preorder else false()))
    if deals:
        conditions.append(list_price > price)
    if product_ids is not None:
        conditions.append(products.c.id.in_([int(i) for i in product_ids]))

    tokens = query_tokens(query)
    # What the page's matches, order and total depend on (search_cache's module doc).
    cache_key = (
        session.get_bind().engine.url,
        tuple(tokens),
        platform,
        region,
        genre,
        min_price_minor,
        max_price_minor,
        in_stock,
        preorder,
        sort,
        page,
        per_page,
        exact_total,
        normalise_currency(currency) if currency else None,
        deals,
        tuple(int(i) for i in product_ids) if product_ids is not None else None,
        RANK_LIMIT,
        COUNT_LIMIT,
    )
    generation: str | None = None
    if wrote_catalogue(session.connection()):
        SEARCH_CACHE.labels("bypass").inc()  # this transaction's own changes: not shared
    else:
        generation, found_before = CACHE.lookup(cache_key)
        if found_before is not None:
            return _cached_page(session, found_before, source, hit_columns, page, per_page)
    rank: ColumnElement[Any] | None = None  # smaller is better
    fts_join: Any = None
    if tokens:
        if session.get_bind().dialect.name == "postgresql":
            tsquery = func.to_tsquery(
                literal_column("'simple'"),
                bindparam("search_tsquery", " & ".join(f"{t}:*" for t in tokens)),
            )
            document: ColumnElement[Any] = literal_column(_PG_SEARCH_DOCUMENT)
            conditions.append(document.op("@@", return_type=Boolean)(tsquery))
            title_document = func.to_tsvector(literal_column("'simple'"), products.c.title)
            rank = -func.ts_rank(title_document, tsquery)
        else:
            fts_join = (
                text(
                    "SELECT rowid AS id, bm25(products_fts, 10.0, 2.0, 2.0, 1.0) AS rank "
                    "FROM products_fts WHERE products_fts MATCH :search_match"
                )
                .bindparams(search_match=" ".join(f'"{t}"*' for t in tokens))
                .columns(id=Integer, rank=Float)
                .subquery("fts")
            )
            rank = fts_join.c.rank

    def restricted(stmt: Select[Any]) -> Select[Any]:
        if fts_join is not None:
            stmt = stmt.join(fts_join, fts_join.c.id == products.c.id)
        return stmt.where(and_(*conditions))

    def matches_up_to(limit: int) -> Any:
        capped = restricted(select(products.c.id).select_from(source)).limit(limit)
        return select(func.count()).select_from(capped.subquery()).scalar_subquery()

    # The order as (expression, descending); ties end on id so pages never overlap.
    newest: list[tuple[ColumnElement[Any], bool]] = [
        (products.c.created_at, True),
        (products.c.id, True),
    ]
    order: list[tuple[ColumnElement[Any], bool]]
    matched: Any = None  # a one-row CTE holding the count, when the order needs it
    if sort == "relevance":
        order = [(products.c.featured, True), *newest]
        if rank is not None:
            # Ranked only when at most RANK_LIMIT products match: decided in the same
            # statement by the count that also gives the total (computed once).
            count = (
                restricted(select(func.count()).select_from(source)).scalar_subquery()
                if exact_total
                else matches_up_to(COUNT_LIMIT + 1)
            )
            matched = select(count.label("counted")).cte("matched")
            ranked = case((matched.c.counted <= RANK_LIMIT, rank), else_=None)
            order = [(ranked, False), *order]
    elif sort == "price_asc":
        order = [(price, False), (products.c.id, False)]
    elif sort == "price_desc":
        order = [(price, True), (products.c.id, True)]
    elif sort == "newest":
        order = newest
    else:  # title: walks ix_products_title on PostgreSQL
        order = [(func.lower(products.c.title), False), (products.c.id, False)]

    offset = (page - 1) * per_page
    sort_keys = [expr.label(f"sort_{i}") for i, (expr, _) in enumerate(order)]
    page_select = restricted(select(*hit_columns, *sort_keys).select_from(source))
    if matched is not None:
        page_select = page_select.join(matched, true())
    page_rows = (
        page_select.order_by(*(expr.desc() if desc else expr.asc() for expr, desc in order))
        .limit(per_page)
        .offset(offset)
        .cte("page")
    )
    head: Any
    if matched is not None:
        head = matched
    else:
        counted: ColumnElement[Any]
        if exact_total:
            counted = restricted(select(func.count()).select_from(source)).scalar_subquery()
        else:
            rows_on_page = select(func.count()).select_from(page_rows).scalar_subquery()
            page_cannot_tell = rows_on_page == per_page
            if offset:
                page_cannot_tell = or_(page_cannot_tell, rows_on_page == 0)
            counted = case((page_cannot_tell, matches_up_to(COUNT_LIMIT + 1)), else_=None)
        head = select(counted.label("counted")).subquery("head")
    own_stock = (
        select(func.count())
        .where(keys_table.c.product_id == page_rows.c.id, text(_KEY_AVAILABLE))
        .scalar_subquery()
    )
    provider_stock = (
        select(func.coalesce(func.sum(offers.c.stock), 0))
        .where(offers.c.product_id == page_rows.c.id, offers.c.stock > 0)
        .scalar_subquery()
    )
    stmt = (
        select(
            head.c.counted,
            *(page_rows.c[column.name] for column in _HIT_COLUMNS),
            own_stock.label("available"),
            provider_stock.label("provider_stock"),
        )
        .select_from(head.outerjoin(page_rows, true()))
        .order_by(
            *(
                page_rows.c[key.name].desc() if desc else page_rows.c[key.name].asc()
                for key, (_, desc) in zip(sort_keys, order, strict=True)
            )
        )
    )
    rows = session.execute(stmt).mappings().all()
    found = rows[0]["counted"] if rows else None
    items = [
        ProductHit(**{name: row[name] for name in _HIT_FIELDS})
        for row in rows
        if row["id"] is not None
    ]
    if exact_total:
        total, total_is_exact = int(found or 0), True
    elif found is None:  # the page ended the results
        total, total_is_exact = offset + len(items), True
    else:
        total, total_is_exact = min(int(found), COUNT_LIMIT), int(found) <= COUNT_LIMIT
    if generation is not None:
        CACHE.store(cache_key, generation, Found(tuple(h.id for h in items), total, total_is_exact))
    return SearchPage(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        pages=math.ceil(total / per_page) if total else 0,
        total_is_exact=total_is_exact,
    )


def _cached_page(
    session: Session,
    found: Found,
    source: Any,
    hit_columns: tuple[ColumnElement[Any], ...],
    page: int,
    per_page: int,
) -> SearchPage:
    """The page a cached search found: its products read fresh by id (one statement),
    with their stock, in the order the search gave."""
    items: list[ProductHit] = []
    if found.ids:
        own_stock = (
            select(func.count())
            .where(keys_table.c.product_id == products.c.id, text(_KEY_AVAILABLE))
            .scalar_subquery()
        )
        provider_stock = (
            select(func.coalesce(func.sum(offers.c.stock), 0))
            .where(offers.c.product_id == products.c.id, offers.c.stock > 0)
            .scalar_subquery()
        )
        stmt = (
            select(
                *hit_columns, own_stock.label("available"), provider_stock.label("provider_stock")
            )
            .select_from(source)
            .where(products.c.id.in_(found.ids))
        )
        by_id = {row["id"]: row for row in session.execute(stmt).mappings()}
        items = [
            ProductHit(**{name: by_id[i][name] for name in _HIT_FIELDS})
            for i in found.ids
            if i in by_id
        ]
    return SearchPage(
        items=items,
        total=found.total,
        page=page,
        per_page=per_page,
        pages=math.ceil(found.total / per_page) if found.total else 0,
        total_is_exact=found.total_is_exact,
    )


def available_counts(*, session: Session, product_ids: list[int]) -> dict[int, int]:
    """How many keys with status ``available`` each product has (absent means 0).

    One grouped query over the partial index ix_keys_available.
    """
    if not product_ids:
        return {}
    stmt = (
        select(keys_table.c.product_id, func.count())
        .where(keys_table.c.product_id.in_(product_ids), text(_KEY_AVAILABLE))
        .group_by(keys_table.c.product_id)
    )
    return {pid: int(n) for pid, n in session.execute(stmt).all()}


def provider_stock_counts(*, session: Session, product_ids: list[int]) -> dict[int, int]:
    """The providers' reported stock summed per product, over offers mapped to it."""
    if not product_ids:
        return {}
    stmt = (
        select(offers.c.product_id, func.sum(offers.c.stock))
        .where(offers.c.product_id.in_(product_ids), offers.c.stock > 0)
        .group_by(offers.c.product_id)
    )
    return {pid: int(n) for pid, n in session.execute(stmt).all()}


def facet_values(*, session: Session) -> dict[str, list[str]]:
    """Distinct platforms, regions and genres of active products, sorted, for the
    storefront's filter drop-downs. Empty genres are left out."""
    facets: dict[str, list[str]] = {}
    for name in ("platform", "region", "genre"):
        column = products.c[name]
        stmt = select(column).where(products.c.active == true(), column != "").distinct()
        values = [value for (value,) in session.execute(stmt).all()]
        # Sorted here, not by the database, so every backend and collation agrees.
        facets[f"{name}s"] = sorted(values, key=lambda v: (v.casefold(), v))
    return facets
