"""Search that forgives typos, and title suggestions as the shopper types.

The word search (:mod:`.search`) matches prefixes, so a misspelt word ("embrwake")
finds nothing. Then :func:`search_forgiving` looks for titles that *look like* the query,
by trigram similarity (the share of three-letter pieces two texts have in common):

- PostgreSQL: the ``pg_trgm`` extension (migration 0015 creates it in ``public`` where the
  database lets it, with a trigram index on ``lower(title)``); ``word_similarity`` of the
  query against each active title, at least :data:`MIN_SIMILARITY`.
- SQLite, or PostgreSQL without the extension: the same measure computed here, in Python,
  over at most :data:`SCAN_LIMIT` active titles.

Both read inside the caller's transaction and never write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select as sa_select
from sqlalchemy import text, true
from sqlmodel import Session

from core.services.catalogue.products import products
from core.services.catalogue.search import SearchPage, query_tokens, search_products

MIN_SIMILARITY: Final = 0.4
MAX_SUGGESTIONS: Final = 8
SCAN_LIMIT: Final = 50_000
_WORDS: Final = re.compile(r"[^\W_]+")
_SCHEMA: Final = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class TitleMatch:
    id: int
    slug: str
    title: str
    score: float


@dataclass(frozen=True, slots=True)
class ForgivingPage:
    """A search page; ``similar_to`` is set when the words matched nothing and the page
    holds titles similar to the query instead."""

    page: SearchPage
    similar_to: str | None = None


# -- the measure (pg_trgm's, in Python) -----------------------------------------------


def trigrams(value: str) -> set[str]:
    """pg_trgm's trigrams: each lower-cased word padded with two spaces before and one
    after, cut into every run of three characters."""
    grams: set[str] = set()
    for word in _WORDS.findall(value.lower()):
        padded = f"  {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def similarity(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def word_similarity(query: str, title: str) -> float:
    """How well ``query`` matches some run of consecutive words of ``title`` (close to
    pg_trgm's ``word_similarity``): the best trigram similarity over those runs."""
    wanted = trigrams(query)
    words = _WORDS.findall(title.lower())
    best = 0.0
    for size in range(1, min(len(words), max(1, len(query.split())) + 1) + 1):
        for start in range(len(words) - size + 1):
            best = max(best, similarity(wanted, trigrams(" ".join(words[start : start + size]))))
    return best


# -- finding similar titles -------------------------------------------------------------


def pg_trgm_schema(session: Session) -> str | None:
    """The schema holding pg_trgm on this PostgreSQL database, or None."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    schema = session.execute(
        text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    ).scalar()
    return schema if isinstance(schema, str) and _SCHEMA.match(schema) else None


def similar_titles(
    *, session: Session, query: str, limit: int = MAX_SUGGESTIONS
) -> list[TitleMatch]:
    """Active products whose title looks like ``query``, most similar first (ties by id)."""
    words = " ".join(query_tokens(query))
    if not words:
        return []
    schema = pg_trgm_schema(session)
    if schema is not None:
        session.execute(
            text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
            {"t": str(MIN_SIMILARITY)},
        )
        # ``schema`` is a catalogue name checked against _SCHEMA; the shopper's text is bound
        statement = (
            f"SELECT id, slug, title, {schema}.word_similarity(:q, lower(title)) AS score "  # noqa: S608
            f"FROM products WHERE active AND :q OPERATOR({schema}.<%) lower(title) "
            "ORDER BY score DESC, id LIMIT :limit"
        )
        rows = session.execute(
            text(statement),
            {"q": words, "limit": limit},
        ).all()
        return [TitleMatch(id=r[0], slug=r[1], title=r[2], score=float(r[3])) for r in rows]
    candidates = session.execute(
        sa_select(products.c.id, products.c.slug, products.c.title)
        .where(products.c.active == true())
        .order_by(products.c.id)
        .limit(SCAN_LIMIT)
    ).all()
    scored = [
        TitleMatch(id=pid, slug=slug, title=title, score=word_similarity(words, title))
        for pid, slug, title in candidates
    ]
    found = [m for m in scored if m.score >= MIN_SIMILARITY]
    found.sort(key=lambda m: (-m.score, m.id))
    return found[:limit]


def search_forgiving(*, session: Session, **filters: Any) -> ForgivingPage:
    """:func:`~core.services.catalogue.search.search_products` with the same arguments;
    when its words match nothing on the first page, the products whose titles look like
    the query (under the same filters), most similar first."""
    result = search_products(session=session, **filters)
    query = filters.get("query")
    if result.total or not query or filters.get("page", 1) != 1:
        return ForgivingPage(page=result)
    per_page = filters.get("per_page", 24)
    matches = similar_titles(session=session, query=query, limit=per_page)
    if not matches:
        return ForgivingPage(page=result)
    alike = search_products(
        session=session,
        **{**filters, "query": None, "product_ids": [m.id for m in matches], "page": 1},
    )
    rank = {m.id: i for i, m in enumerate(matches)}
    items = sorted(alike.items, key=lambda hit: rank[hit.id])
    if not items:
        return ForgivingPage(page=result)
    page = SearchPage(
        items=items, total=len(items), page=1, per_page=per_page, pages=1, total_is_exact=True
    )
    return ForgivingPage(page=page, similar_to=query)


def suggest_titles(
    *, session: Session, query: str, limit: int = MAX_SUGGESTIONS
) -> list[tuple[str, str]]:
    """Up to ``limit`` (slug, title) pairs for a search box as the shopper types: titles
    the words find (prefixes) first, then titles that look like the query."""
    if not query_tokens(query):
        return []
    found = search_products(session=session, query=query, per_page=limit)
    out = [(hit.slug, hit.title) for hit in found.items]
    if len(out) < limit:
        seen = {slug for slug, _ in out}
        for match in similar_titles(session=session, query=query, limit=limit):
            if match.slug not in seen and len(out) < limit:
                out.append((match.slug, match.title))
    return out
