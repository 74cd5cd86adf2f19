"""The catalogue: create and edit products, find them, and list them for the storefront.

Every function here runs inside the caller's transaction and never commits; writes are
flushed so the caller sees ids and constraint errors at once.

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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    event,
    exists,
    false,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from core.errors import DuplicateSlug, InvalidInput, UnknownProduct
from core.models import PLATFORMS, REGIONS, Key, KeyStatus, Product, ProviderOffer, utcnow

products: Final = cast(Table, Product.__table__)  # type: ignore[attr-defined]
keys_table: Final = cast(Table, Key.__table__)  # type: ignore[attr-defined]
offers: Final = cast(Table, ProviderOffer.__table__)  # type: ignore[attr-defined]

SLUG_RE: Final = re.compile(r"[a-z0-9-]{1,120}")
CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
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
# The partial index ix_keys_available covers ``status = 'available'``; the predicate is
# written as a literal (not a bind parameter) so a generic prepared plan can use it too.
_KEY_AVAILABLE: Final = "keys.status = 'available'"

_WORD_RE: Final = re.compile(r"[^\W_]+")
_PLATFORM_BY_LOWER: Final = {p.lower(): p for p in PLATFORMS}
_REGION_BY_LOWER: Final = {r.lower(): r for r in REGIONS}

# Fields a caller may set through create_product / update_product.
_EDITABLE: Final = frozenset(
    {
        "slug", "title", "platform", "region", "genre", "description", "publisher",
        "price_minor", "currency", "list_price_minor", "is_preorder", "release_date",
        "activation_instructions", "low_stock_threshold", "featured", "active", "cover_url",
    }
)  # fmt: skip


# The product columns of a ProductHit, as search_products selects them.
_HIT_COLUMNS: Final = tuple(
    products.c[name]
    for name in (
        "id", "slug", "title", "platform", "region", "genre", "publisher", "price_minor",
        "currency", "list_price_minor", "is_preorder", "release_date", "featured", "cover_url",
        "low_stock_threshold", "created_at",
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
        """Own stock is running low (at or under the threshold, but not gone)."""
        return 0 < self.available <= self.low_stock_threshold

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


# -- validation ---------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_field(name: str, value: Any, *, max_len: int, required: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(value) > max_len:
        raise InvalidInput(f"{name} is too long (at most {max_len} characters)", field=name)
    return value


def _validated(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise product fields; raise InvalidInput naming the first bad one.

    Platform and region are written in their canonical spelling when they are known ones
    (``steam`` → ``Steam``, ``eu`` → ``EU``); unknown platforms and regions are allowed,
    as the shop may sell on stores this list does not know yet.
    """
    unknown = sorted(set(fields) - _EDITABLE)
    if unknown:
        raise InvalidInput(f"unknown product field(s): {', '.join(unknown)}", fields=unknown)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "slug":
            if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
                raise InvalidInput(
                    "slug must be 1 to 120 characters of lower-case letters, digits and hyphens",
                    field="slug",
                )
        elif name == "title":
            value = _text_field("title", value, max_len=200, required=True)
        elif name == "platform":
            value = _text_field("platform", value, max_len=40, required=True)
            value = _PLATFORM_BY_LOWER.get(value.lower(), value)
        elif name == "region":
            value = _text_field("region", value, max_len=20, required=True)
            value = _REGION_BY_LOWER.get(value.lower(), value)
        elif name == "genre":
            value = _text_field("genre", value, max_len=40, required=False)
        elif name == "publisher":
            value = _text_field("publisher", value, max_len=120, required=False)
        elif name in ("description", "activation_instructions"):
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be text", field=name)
        elif name == "price_minor":
            if not _is_int(value) or value < 0:
                raise InvalidInput(
                    "price_minor must be a whole number of minor units, 0 or more",
                    field="price_minor",
                )
        elif name == "list_price_minor":
            if value is not None and (not _is_int(value) or value < 0):
                raise InvalidInput(
                    "list_price_minor must be empty or a whole number of minor units, 0 or more",
                    field="list_price_minor",
                )
        elif name == "currency":
            if not isinstance(value, str) or not CURRENCY_RE.fullmatch(value):
                raise InvalidInput(
                    "currency must be a three-letter ISO code in capitals, like EUR",
                    field="currency",
                )
        elif name == "low_stock_threshold":
            if not _is_int(value) or value < 0:
                raise InvalidInput(
                    "low_stock_threshold must be a whole number, 0 or more",
                    field="low_stock_threshold",
                )
        elif name in ("is_preorder", "featured", "active"):
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be true or false", field=name)
        elif name == "release_date":
            if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
                raise InvalidInput("release_date must be a date or empty", field="release_date")
        elif name == "cover_url" and value is not None:
            if not isinstance(value, str):
                raise InvalidInput("cover_url must be text or empty", field="cover_url")
            limit = products.c.cover_url.type.length  # type: ignore[attr-defined]
            if limit is not None and len(value) > limit:
                raise InvalidInput(
                    f"cover_url is too long (at most {limit} characters)", field="cover_url"
                )
        out[name] = value
    return out


def _slug_taken(session: Session, slug: str, *, other_than: int | None = None) -> bool:
    stmt = select(products.c.id).where(products.c.slug == slug)
    if other_than is not None:
        stmt = stmt.where(products.c.id != other_than)
    return session.execute(stmt.limit(1)).first() is not None


@contextmanager
def _slug_guard(session: Session, slug: str) -> Iterator[None]:
    """Run the write in a savepoint and flush it, so a slug a concurrent writer took
    between our check and our write becomes DuplicateSlug and the caller's transaction
    stays usable."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        if "slug" in str(exc.orig).lower():
            raise DuplicateSlug(f"a product with slug {slug!r} already exists", slug=slug) from None
        raise


# -- products -----------------------------------------------------------------------


def create_product(
    *,
    session: Session,
    slug: str,
    title: str,
    platform: str,
    region: str,
    genre: str,
    price_minor: int,
    currency: str,
    **fields: Any,
) -> Product:
    """Add a product to the catalogue (flushed, not committed).

    Raises InvalidInput for a malformed field and DuplicateSlug when the slug is taken.
    Optional fields are those of :class:`core.models.Product` (description, publisher,
    list_price_minor, is_preorder, release_date, activation_instructions,
    low_stock_threshold, featured, active, cover_url).
    """
    values = _validated(
        {
            "slug": slug,
            "title": title,
            "platform": platform,
            "region": region,
            "genre": genre,
            "price_minor": price_minor,
            "currency": currency,
            **fields,
        }
    )
    if _slug_taken(session, values["slug"]):
        raise DuplicateSlug(f"a product with slug {slug!r} already exists", slug=slug)
    product = Product(**values)
    with _slug_guard(session, product.slug):
        session.add(product)
    return product


def get_product(*, session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise UnknownProduct(f"no product with id {product_id}", product_id=product_id)
    return product


def get_product_by_slug(*, session: Session, slug: str) -> Product:
    product = session.execute(select(Product).where(products.c.slug == slug)).scalar_one_or_none()
    if product is None:
        raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
    return product


def update_product(*, session: Session, product_id: int, **changes: Any) -> Product:
    """Change some fields of a product (flushed, not committed); ``updated_at`` moves on.

    Same validation as :func:`create_product`; UnknownProduct when there is no such
    product. The search index follows the change (database triggers on SQLite, the
    expression index on PostgreSQL).
    """
    product = get_product(session=session, product_id=product_id)
    values = _validated(changes)
    new_slug = values.get("slug", product.slug)
    if new_slug != product.slug and _slug_taken(session, new_slug, other_than=product_id):
        raise DuplicateSlug(f"a product with slug {new_slug!r} already exists", slug=new_slug)
    with _slug_guard(session, new_slug):
        for name, value in values.items():
            setattr(product, name, value)
        product.updated_at = utcnow()
    return product


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
    return cast(ColumnElement[bool], func.lower(column) == value.strip().lower())


def _in_stock_condition() -> ColumnElement[bool]:
    """What ``products.in_stock`` summarises: an own key with status ``available``, or a
    mapped provider offer with stock > 0 (each one probe of a partial index)."""
    own = exists().where(keys_table.c.product_id == products.c.id, text(_KEY_AVAILABLE))
    provider = exists().where(offers.c.product_id == products.c.id, offers.c.stock > 0)
    return or_(own, provider)


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
            "min_price_minor must not be above max_price_minor", field="min_price_minor"
        )

    conditions: list[ColumnElement[bool]] = [products.c.active == true()]
    if platform:
        conditions.append(_facet_condition(products.c.platform, platform, _PLATFORM_BY_LOWER))
    if region:
        conditions.append(_facet_condition(products.c.region, region, _REGION_BY_LOWER))
    if genre:
        conditions.append(_facet_condition(products.c.genre, genre, {}))
    if min_price_minor is not None:
        conditions.append(products.c.price_minor >= min_price_minor)
    if max_price_minor is not None:
        conditions.append(products.c.price_minor <= max_price_minor)
    if in_stock is not None:
        conditions.append(products.c.in_stock == (true() if in_stock else false()))
    if preorder is not None:
        conditions.append(products.c.is_preorder == (true() if preorder else false()))

    tokens = query_tokens(query)
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
        capped = restricted(select(products.c.id).select_from(products)).limit(limit)
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
                restricted(select(func.count()).select_from(products)).scalar_subquery()
                if exact_total
                else matches_up_to(COUNT_LIMIT + 1)
            )
            matched = select(count.label("counted")).cte("matched")
            ranked = case((matched.c.counted <= RANK_LIMIT, rank), else_=None)
            order = [(ranked, False), *order]
    elif sort == "price_asc":
        order = [(products.c.price_minor, False), (products.c.id, False)]
    elif sort == "price_desc":
        order = [(products.c.price_minor, True), (products.c.id, True)]
    elif sort == "newest":
        order = newest
    else:  # title: walks ix_products_title on PostgreSQL
        order = [(func.lower(products.c.title), False), (products.c.id, False)]

    offset = (page - 1) * per_page
    sort_keys = [expr.label(f"sort_{i}") for i, (expr, _) in enumerate(order)]
    page_select = restricted(select(*_HIT_COLUMNS, *sort_keys).select_from(products))
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
            counted = restricted(select(func.count()).select_from(products)).scalar_subquery()
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
    return SearchPage(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        pages=math.ceil(total / per_page) if total else 0,
        total_is_exact=total_is_exact,
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


# -- stock summary (products.in_stock) ---------------------------------------------

#: Where a session collects the products whose stock changed in its transaction.
_STOCK_TOUCHED: Final = "keyshop.catalogue.stock_touched"
_AVAILABLE: Final = KeyStatus.AVAILABLE.value
_REFRESH_CHUNK: Final = 1000


def refresh_stock_flags(
    *, session: Session | Connection, product_ids: Iterable[int] | None = None
) -> int:
    """Recompute ``products.in_stock`` for these products (None: every product whose
    flag differs from its keys and offers) and return how many flags changed.

    Runs inside the caller's transaction (a Session or a Core Connection) and never
    commits; call it after the transaction's last change to keys or offers. It is
    exact under concurrency: on PostgreSQL it first locks the products' rows (``FOR NO
    KEY UPDATE``, id order; key inserts and claims take no such lock, so it waits only
    for another refresh of the same products) and then recomputes in a new statement,
    whose snapshot sees every transaction that refreshed these products before it. So
    the last transaction to commit a change to a product's keys or offers writes a flag
    that counts every committed change. SQLite has one writer at a time.
    """
    conn = session.connection() if isinstance(session, OrmSession) else session
    truth = _in_stock_condition()
    if product_ids is None:
        stale = select(products.c.id).where(products.c.in_stock != truth).order_by(products.c.id)
        ids = list(conn.execute(stale).scalars())
    else:
        ids = sorted({int(pid) for pid in product_ids})
    postgres = conn.dialect.name == "postgresql"
    changed = 0
    for start in range(0, len(ids), _REFRESH_CHUNK):
        chunk = ids[start : start + _REFRESH_CHUNK]
        if postgres:
            lock = (
                select(products.c.id)
                .where(products.c.id.in_(chunk))
                .order_by(products.c.id)
                .with_for_update(key_share=True)
            )
            conn.execute(lock).all()
        result = conn.execute(
            products.update()
            .where(products.c.id.in_(chunk), products.c.in_stock != truth)
            .values(in_stock=truth)
        )
        changed += result.rowcount
    return changed


def note_stock_changed(*, session: Session, product_ids: Iterable[int]) -> None:
    """Record that keys or offers of these products changed in the session's
    transaction through SQL the ORM does not see (claims are Core statements). Their
    ``in_stock`` flags are refreshed once, by :func:`refresh_stock_flags`, just before
    the transaction commits. No SQL until then.

    Changes made through ORM objects (a ``Key`` whose status moves to or from
    ``available``, a new available ``Key``, a ``ProviderOffer`` whose stock or product
    changes) are noticed without this call, by the session events below.
    """
    session.info.setdefault(_STOCK_TOUCHED, set()).update(product_ids)


def _moved_from(session: OrmSession, obj: Key | ProviderOffer, table: Table) -> list[int]:
    """The product a key or offer is being moved away from (None when it is not)."""
    moved = inspect(obj).attrs.product_id.history
    if not moved.has_changes():
        return []
    if moved.deleted:
        return [pid for pid in moved.deleted if pid is not None]
    # The old value was not loaded (an expired object): the row still holds it.
    old = session.connection().execute(
        select(table.c.product_id).where(table.c.id == inspect(obj).identity[0])
    )
    return [pid for pid in old.scalars() if pid is not None]


def _key_touches(session: OrmSession, key: Key, new: bool) -> list[int]:
    if new:
        return [key.product_id] if key.status == _AVAILABLE else []
    status = inspect(key).attrs.status.history
    moved_from = _moved_from(session, key, keys_table)
    if moved_from:
        return [key.product_id, *moved_from]
    if not status.has_changes():
        return []
    if status.deleted and _AVAILABLE not in status.added and _AVAILABLE not in status.deleted:
        return []  # e.g. reserved → delivered: availability did not change
    return [key.product_id]


def _offer_touches(session: OrmSession, offer: ProviderOffer, new: bool) -> list[int]:
    if new:
        return [offer.product_id] if offer.product_id is not None and offer.stock > 0 else []
    moved_from = _moved_from(session, offer, offers)
    if not moved_from and not inspect(offer).attrs.stock.history.has_changes():
        return []
    return [pid for pid in (offer.product_id, *moved_from) if pid is not None]


@event.listens_for(OrmSession, "before_flush")
def _note_flushed_stock(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Collect, before each flush, the products whose availability the flush changes."""
    touched: list[int] = []
    for obj in session.new:
        if isinstance(obj, Key):
            touched += _key_touches(session, obj, True)
        elif isinstance(obj, ProviderOffer):
            touched += _offer_touches(session, obj, True)
    for obj in session.dirty:
        if isinstance(obj, Key):
            touched += _key_touches(session, obj, False)
        elif isinstance(obj, ProviderOffer):
            touched += _offer_touches(session, obj, False)
    for obj in session.deleted:
        if isinstance(obj, (Key, ProviderOffer)) and obj.product_id is not None:
            touched.append(obj.product_id)
    if touched:
        session.info.setdefault(_STOCK_TOUCHED, set()).update(touched)


@event.listens_for(OrmSession, "before_commit")
def _refresh_before_commit(session: OrmSession) -> None:
    session.flush()  # the commit's own flush comes after this event
    touched = session.info.pop(_STOCK_TOUCHED, None)
    if touched:
        refresh_stock_flags(session=cast(Session, session), product_ids=touched)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_touched(session: OrmSession, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended (commit or rollback)
        session.info.pop(_STOCK_TOUCHED, None)
