"""The catalogue as a shopper and an operator see it: create, edit, search, filter, sort."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from core.errors import DuplicateSlug, InvalidInput, UnknownProduct
from core.models import KeyStatus, Product, ProviderOffer, utcnow
from core.services.catalogue import (
    SearchPage,
    create_product,
    facet_values,
    get_product_by_slug,
    query_tokens,
    search_products,
    update_product,
)
from core.services.catalogue import search as catalogue_search
from tests.factories import make_keys, make_product


def titles(page: SearchPage) -> list[str]:
    return [hit.title for hit in page.items]


def new_product(session: Session, **fields: Any) -> Product:
    """A product through the service (so validation runs), committed."""
    values: dict[str, Any] = {
        "slug": "starfall-vanguard",
        "title": "Starfall Vanguard",
        "platform": "Steam",
        "region": "GLOBAL",
        "genre": "Action",
        "price_minor": 2999,
        "currency": "EUR",
    }
    values.update(fields)
    product = create_product(session=session, **values)
    session.commit()
    return product


# -- create / update / get ----------------------------------------------------------


def test_create_product_and_find_it_by_slug(session: Session) -> None:
    product = new_product(
        session,
        publisher="Lantern Forge",
        list_price_minor=3999,
        release_date=date(2025, 3, 1),
        low_stock_threshold=3,
    )
    assert product.id is not None
    found = get_product_by_slug(session=session, slug="starfall-vanguard")
    assert found.id == product.id
    assert (found.title, found.publisher, found.list_price_minor) == (
        "Starfall Vanguard",
        "Lantern Forge",
        3999,
    )


def test_create_product_canonicalises_known_platform_and_region(session: Session) -> None:
    product = new_product(session, platform="steam", region="eu", title="  Hollow Tide  ")
    assert (product.platform, product.region, product.title) == ("Steam", "EU", "Hollow Tide")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "Has Capitals"),
        ("slug", "with_underscore"),
        ("slug", ""),
        ("slug", "x" * 121),
        ("title", "   "),
        ("platform", ""),
        ("region", " "),
        ("price_minor", -1),
        ("price_minor", 19.99),
        ("price_minor", True),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", "E1R"),
        ("low_stock_threshold", -1),
        ("list_price_minor", -5),
        ("featured", "yes"),
        ("release_date", "2025-01-01"),
        ("no_such_field", 1),
    ],
)
def test_create_product_rejects_bad_fields(session: Session, field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        new_product(session, **{field: value})
    assert field in err.value.message


def test_duplicate_slug_is_a_domain_error_and_the_transaction_goes_on(session: Session) -> None:
    new_product(session)
    with pytest.raises(DuplicateSlug):
        new_product(session, title="Another")
    # The session is still usable after the refusal.
    other = new_product(session, slug="another", title="Another")
    assert other.id is not None


def test_unknown_slug_raises_unknown_product(session: Session) -> None:
    with pytest.raises(UnknownProduct):
        get_product_by_slug(session=session, slug="nothing-here")


def test_update_product_validates_and_moves_updated_at(session: Session) -> None:
    product = new_product(session)
    before = product.updated_at
    updated = update_product(session=session, product_id=product.id, price_minor=1999)
    session.commit()
    assert updated.price_minor == 1999
    assert updated.updated_at >= before
    with pytest.raises(InvalidInput):
        update_product(session=session, product_id=product.id, currency="euro")
    with pytest.raises(InvalidInput):
        update_product(session=session, product_id=product.id, low_stock_threshold=-2)
    with pytest.raises(UnknownProduct):
        update_product(session=session, product_id=999_999, price_minor=1)


def test_update_to_a_taken_slug_is_refused(session: Session) -> None:
    new_product(session)
    other = new_product(session, slug="hollow-tide", title="Hollow Tide")
    with pytest.raises(DuplicateSlug):
        update_product(session=session, product_id=other.id, slug="starfall-vanguard")


def test_renamed_product_is_found_by_its_new_title_only(session: Session) -> None:
    product = new_product(session, title="Emberfall Chronicles", slug="emberfall")
    assert titles(search_products(session=session, query="emberfall")) == ["Emberfall Chronicles"]
    update_product(session=session, product_id=product.id, title="Quiet Meridian")
    session.commit()
    assert titles(search_products(session=session, query="meridian")) == ["Quiet Meridian"]
    assert search_products(session=session, query="emberfall").total == 0


# -- search -------------------------------------------------------------------------


@pytest.fixture
def shelf(session: Session) -> dict[str, Product]:
    """A small catalogue with stock in various shapes."""
    now = utcnow()
    p = {
        "witcher": make_product(
            session,
            title="The Witcher's Lantern 3",
            genre="RPG",
            publisher="Greyhollow",
            price_minor=2999,
            created_at=now - timedelta(days=5),
        ),
        "witch_xbox": make_product(
            session,
            title="Witchwood Hollow",
            platform="Xbox",
            region="EU",
            genre="Adventure",
            price_minor=1500,
            created_at=now - timedelta(days=4),
        ),
        "tide": make_product(
            session,
            title="Hollow Tide",
            genre="Adventure",
            publisher="Brine Works",
            price_minor=999,
            featured=True,
            created_at=now - timedelta(days=10),
        ),
        "racer": make_product(
            session,
            title="Neon Drift Racer",
            genre="Racing",
            platform="PlayStation",
            region="US",
            price_minor=4999,
            created_at=now - timedelta(days=1),
        ),
        "preorder": make_product(
            session,
            title="Starfall Vanguard",
            genre="Action",
            price_minor=5999,
            is_preorder=True,
            release_date=datetime.now(UTC).date() + timedelta(days=60),
            created_at=now - timedelta(days=2),
        ),
        "hidden": make_product(
            session,
            title="Witchlight Retired",
            price_minor=100,
            active=False,
            created_at=now - timedelta(days=3),
        ),
    }
    make_keys(session, p["witcher"], 3)
    make_keys(session, p["tide"], 2)
    make_keys(session, p["tide"], 4, status=KeyStatus.DELIVERED)
    make_keys(session, p["hidden"], 1)
    make_keys(session, p["racer"], 2, status=KeyStatus.REVOKED)
    # The Xbox one is sold only through a provider that has stock.
    session.add(
        ProviderOffer(provider="kinguin", external_id="k-1", product_id=p["witch_xbox"].id, stock=7)
    )
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id="c-1",
            product_id=p["witch_xbox"].id,
            stock=5,
        )
    )
    # The racer has a provider offer, but it is out of stock.
    session.add(
        ProviderOffer(provider="kinguin", external_id="k-2", product_id=p["racer"].id, stock=0)
    )
    session.commit()
    return p


def test_prefix_search_finds_titles_by_the_start_of_a_word(
    session: Session, shelf: dict[str, Product]
) -> None:
    result = search_products(session=session, query="witch")
    assert sorted(titles(result)) == ["The Witcher's Lantern 3", "Witchwood Hollow"]
    assert result.total == 2
    # Case does not matter, inactive products never show.
    assert search_products(session=session, query="WITCH").total == 2
    assert "Witchlight Retired" not in titles(search_products(session=session, query="witchl"))


def test_multi_word_queries_need_every_word(session: Session, shelf: dict[str, Product]) -> None:
    assert titles(search_products(session=session, query="witch 3")) == ["The Witcher's Lantern 3"]
    assert titles(search_products(session=session, query="hollow tide")) == ["Hollow Tide"]
    assert sorted(titles(search_products(session=session, query="hollow"))) == [
        "Hollow Tide",
        "Witchwood Hollow",
    ]
    assert search_products(session=session, query="witch racer").total == 0


def test_search_also_matches_platform_genre_and_publisher(
    session: Session, shelf: dict[str, Product]
) -> None:
    assert titles(search_products(session=session, query="playstation")) == ["Neon Drift Racer"]
    assert titles(search_products(session=session, query="racing")) == ["Neon Drift Racer"]
    assert titles(search_products(session=session, query="brine")) == ["Hollow Tide"]


def test_relevance_ranks_title_matches_first(session: Session, shelf: dict[str, Product]) -> None:
    make_product(session, title="Quiet Harbour", publisher="Tide Studio")
    result = search_products(session=session, query="tide")
    assert titles(result)[0] == "Hollow Tide"
    assert set(titles(result)) == {"Hollow Tide", "Quiet Harbour"}


FULLWIDTH_WITCH = "\uff57\uff49\uff54\uff43\uff48"  # NFKC folds it to "witch"

HOSTILE = [
    "'",
    '"',
    '"witch',
    "witch'",
    "witch:*",
    ":*",
    "a & b | !c",
    "&|!()*",
    "(witch",
    "witch)",
    "!witch",
    "witch & | hollow",
    "NEAR(witch hollow)",
    "title:witch",
    "witch OR 1=1",
    "'; DROP TABLE products; --",
    '" OR ""="',
    "1' OR '1'='1",
    "-witch",
    "^witch",
    "witch*",
    "\\",
    "%",
    "_",
    "🎮",
    "🎮 witch 🧙",
    "\x00",
    FULLWIDTH_WITCH,
    "Wítchér",
    "ウィッチャー",
    "ولد",
    "e\u0301",
    "   ",
    "",
    "x" * 5000,
    " ".join(["witch"] * 50),
    "<->",
    "witch <-> hollow",
    "AND OR NOT",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_error(
    session: Session, shelf: dict[str, Product], query: str
) -> None:
    result = search_products(session=session, query=query)
    assert result.total >= 0
    assert len(result.items) <= result.per_page
    # The database is intact and still answers.
    assert search_products(session=session).total == 5


def test_hostile_queries_still_search_their_words(
    session: Session, shelf: dict[str, Product]
) -> None:
    for query in [
        '"witch',
        "witch:*",
        "(witch)",
        "!witch",
        "🎮 witch 🧙",
        FULLWIDTH_WITCH,
    ]:
        result = search_products(session=session, query=query)
        assert "Witchwood Hollow" in titles(result), query
    # Only the words count: "OR 1=1" widens nothing.
    assert search_products(session=session, query="witch OR 1=1").total == 0
    assert query_tokens("'; DROP TABLE products; --") == ["drop", "table", "products"]
    assert query_tokens("🎮&|!()*") == []


def test_a_query_with_no_words_lists_everything(
    session: Session, shelf: dict[str, Product]
) -> None:
    assert search_products(session=session, query="!!! 🎮 ***").total == 5


def test_filters_combine(session: Session, shelf: dict[str, Product]) -> None:
    assert titles(search_products(session=session, platform="Xbox")) == ["Witchwood Hollow"]
    assert titles(search_products(session=session, platform="xbox", region="eu")) == [
        "Witchwood Hollow"
    ]
    assert search_products(session=session, platform="Xbox", region="US").total == 0
    adventure = search_products(session=session, genre="adventure")
    assert sorted(titles(adventure)) == ["Hollow Tide", "Witchwood Hollow"]
    steam_adventure = search_products(session=session, genre="Adventure", platform="Steam")
    assert titles(steam_adventure) == ["Hollow Tide"]
    assert titles(search_products(session=session, query="hollow", platform="Steam")) == [
        "Hollow Tide"
    ]
    assert titles(search_products(session=session, preorder=True)) == ["Starfall Vanguard"]
    assert "Starfall Vanguard" not in titles(search_products(session=session, preorder=False))


def test_price_range_is_inclusive(session: Session, shelf: dict[str, Product]) -> None:
    result = search_products(
        session=session, min_price_minor=999, max_price_minor=2999, sort="price_asc"
    )
    assert titles(result) == ["Hollow Tide", "Witchwood Hollow", "The Witcher's Lantern 3"]
    assert search_products(session=session, min_price_minor=5999).total == 1
    assert search_products(session=session, max_price_minor=998).total == 0
    with pytest.raises(InvalidInput):
        search_products(session=session, min_price_minor=10, max_price_minor=5)
    with pytest.raises(InvalidInput):
        search_products(session=session, min_price_minor=-1)


def test_in_stock_counts_own_keys_and_provider_stock(
    session: Session, shelf: dict[str, Product]
) -> None:
    stocked = search_products(session=session, in_stock=True, sort="title")
    # Own available keys (witcher, tide) or provider stock (witch_xbox); the racer has
    # only revoked keys and an empty provider offer, the preorder has nothing.
    assert titles(stocked) == ["Hollow Tide", "The Witcher's Lantern 3", "Witchwood Hollow"]
    assert stocked.total == 3
    out = search_products(session=session, in_stock=False, sort="title")
    assert titles(out) == ["Neon Drift Racer", "Starfall Vanguard"]
    hits = {hit.title: hit for hit in search_products(session=session).items}
    assert (hits["Hollow Tide"].available, hits["Hollow Tide"].provider_stock) == (2, 0)
    assert (hits["Witchwood Hollow"].available, hits["Witchwood Hollow"].provider_stock) == (0, 12)
    assert hits["Witchwood Hollow"].in_stock
    assert (hits["Neon Drift Racer"].available, hits["Neon Drift Racer"].in_stock) == (0, False)
    assert hits["Hollow Tide"].low_stock  # 2 keys, threshold 5


def test_sorts(session: Session, shelf: dict[str, Product]) -> None:
    by = {s: titles(search_products(session=session, sort=s)) for s in ("price_asc", "price_desc")}
    assert by["price_asc"] == [
        "Hollow Tide",
        "Witchwood Hollow",
        "The Witcher's Lantern 3",
        "Neon Drift Racer",
        "Starfall Vanguard",
    ]
    assert by["price_desc"] == list(reversed(by["price_asc"]))
    assert titles(search_products(session=session, sort="newest")) == [
        "Neon Drift Racer",
        "Starfall Vanguard",
        "Witchwood Hollow",
        "The Witcher's Lantern 3",
        "Hollow Tide",
    ]
    assert titles(search_products(session=session, sort="title")) == [
        "Hollow Tide",
        "Neon Drift Racer",
        "Starfall Vanguard",
        "The Witcher's Lantern 3",
        "Witchwood Hollow",
    ]
    # Relevance without a query: featured first, then newest.
    assert titles(search_products(session=session))[:2] == ["Hollow Tide", "Neon Drift Racer"]
    with pytest.raises(InvalidInput):
        search_products(session=session, sort="cheapest")


def test_pagination_totals_and_pages(session: Session) -> None:
    for n in range(53):
        make_product(session, title=f"Ashen Relic {n:02d}", price_minor=100 + n)
    make_product(session, title="Unrelated Thing")
    first = search_products(session=session, query="ashen", sort="price_asc", per_page=20)
    assert (first.total, first.pages, len(first.items)) == (53, 3, 20)
    assert first.has_next and not first.has_previous
    last = search_products(session=session, query="ashen", sort="price_asc", per_page=20, page=3)
    assert len(last.items) == 13
    assert not last.has_next
    seen = [
        hit.id
        for page in (1, 2, 3)
        for hit in search_products(
            session=session, query="ashen", sort="price_asc", per_page=20, page=page
        ).items
    ]
    assert len(seen) == len(set(seen)) == 53
    beyond = search_products(session=session, query="ashen", per_page=20, page=4)
    assert (beyond.items, beyond.total) == ([], 53)
    empty = search_products(session=session, query="nothingmatches")
    assert (empty.total, empty.pages, empty.items) == (0, 0, [])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page": 0},
        {"page": -1},
        {"per_page": 0},
        {"per_page": 101},
        {"page": "2"},
        {"per_page": 2.5},
    ],
)
def test_invalid_pagination_is_invalid_input(session: Session, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        search_products(session=session, **kwargs)


def test_per_page_bounds_are_allowed(session: Session) -> None:
    assert search_products(session=session, per_page=1).per_page == 1
    assert search_products(session=session, per_page=100).per_page == 100


def test_hit_carries_what_a_card_needs(session: Session) -> None:
    product = new_product(
        session, list_price_minor=3999, featured=True, cover_url="https://x/y.png"
    )
    make_keys(session, product, 2)
    (hit,) = search_products(session=session, query="starfall").items
    assert hit.slug == "starfall-vanguard"
    assert (hit.price_minor, hit.currency, hit.list_price_minor) == (2999, "EUR", 3999)
    assert hit.discount_percent == 25
    assert (hit.featured, hit.cover_url, hit.available) == (True, "https://x/y.png", 2)


def test_facet_values_list_active_products_only(
    session: Session, shelf: dict[str, Product]
) -> None:
    make_product(session, platform="GOG", region="UK", genre="Strategy", active=False)
    facets = facet_values(session=session)
    assert facets["platforms"] == ["PlayStation", "Steam", "Xbox"]
    assert facets["regions"] == ["EU", "GLOBAL", "US"]
    assert facets["genres"] == ["Action", "Adventure", "Racing", "RPG"]


def test_totals_past_the_count_limit_are_reported_as_lower_bounds(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalogue_search, "COUNT_LIMIT", 10)
    for n in range(15):
        make_product(session, title=f"Velvet Comet {n}", price_minor=100 + n)
    broad = search_products(session=session, query="velvet", per_page=5, sort="price_asc")
    assert (broad.total, broad.total_is_exact, broad.pages) == (10, False, 2)
    assert search_products(session=session, query="velvet", per_page=5, page=2).has_next
    third = search_products(session=session, query="velvet", per_page=5, page=3, sort="price_asc")
    assert [h.price_minor for h in third.items] == [110, 111, 112, 113, 114]
    exact = search_products(session=session, query="velvet", exact_total=True)
    assert (exact.total, exact.total_is_exact) == (15, True)
    narrow = search_products(session=session, query="velvet 3")
    assert (narrow.total, narrow.total_is_exact) == (1, True)


def test_broad_queries_are_ordered_like_an_empty_search(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    make_product(session, title="Copper Tide", created_at=now - timedelta(days=3))
    make_product(session, title="Quiet Harbour", publisher="Copper Works", created_at=now)
    # Few matches: ranked, the title match first.
    assert titles(search_products(session=session, query="copper"))[0] == "Copper Tide"
    monkeypatch.setattr(catalogue_search, "RANK_LIMIT", 1)
    # Too many to rank: newest first.
    assert titles(search_products(session=session, query="copper")) == [
        "Quiet Harbour",
        "Copper Tide",
    ]
