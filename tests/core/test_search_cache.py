"""The search-result cache (issue #20): a repeated search is served from it, and any
stock or price change is visible on the very next search -- in this process and in
another one (the generation is shared: a file on the SQLite pass's default settings,
Redis on the PostgreSQL pass)."""

from __future__ import annotations

import os

import pytest
from prometheus_client import REGISTRY
from sqlmodel import Session

from core import config
from core.db import session_scope
from core.models import Product
from core.services import maintenance
from core.services.audit import Actor
from core.services.catalogue import search_products, update_product
from core.services.catalogue.prices import set_product_price
from core.services.catalogue.search_cache import CACHE, SearchCache
from core.services.fulfilment import fulfil_order
from tests.factories import make_keys, make_order, make_product


def cache_count(result: str) -> float:
    value = REGISTRY.get_sample_value("keyshop_search_cache_requests_total", {"result": result})
    return value or 0.0


def search(**kwargs):
    with session_scope(write=False) as s:
        return search_products(session=s, **kwargs)


def slugs(page) -> list[str]:
    return [hit.slug for hit in page.items]


@pytest.fixture(autouse=True)
def _empty_cache():
    CACHE.reset()
    yield
    CACHE.reset()


def test_a_repeated_search_is_a_hit_with_the_same_page(session: Session) -> None:
    make_product(session, slug="comet-a", title="Comet Alpha", price_minor=1000)
    make_product(session, slug="comet-b", title="Comet Beta", price_minor=2000)
    hits, misses = cache_count("hit"), cache_count("miss")
    first = search(query="comet", sort="price_asc")
    assert (cache_count("hit"), cache_count("miss")) == (hits, misses + 1)
    again = search(query="comet", sort="price_asc")
    assert (cache_count("hit"), cache_count("miss")) == (hits + 1, misses + 1)
    assert again == first and slugs(again) == ["comet-a", "comet-b"]
    search(query="comet", sort="price_desc")  # other parameters: another entry
    assert cache_count("miss") == misses + 2


def uncached(**kwargs):
    """The same search with the cache emptied first: what the answer must be."""
    CACHE.reset()
    return search(**kwargs)


def test_stock_changes_are_visible_on_the_next_search(session: Session) -> None:
    game = make_product(session, slug="last-keys", title="Last Keys")
    make_keys(session, game, 2)
    assert search(query="last", in_stock=True).items[0].available == 2
    order = make_order(session, [(game, 1)])
    assert fulfil_order(order_id=order.id, clients={}).outcome == "fulfilled"
    hits = cache_count("hit")
    [hit] = search(query="last", in_stock=True).items
    assert hit.available == 1 and cache_count("hit") == hits + 1  # served, stock fresh
    order = make_order(session, [(game, 1)])
    assert fulfil_order(order_id=order.id, clients={}).outcome == "fulfilled"
    served = search(query="last", in_stock=True)
    assert served == uncached(query="last", in_stock=True)
    assert served.items[0].available == 0
    # the stock flag is corrected (the periodic task): the in-stock search drops it
    search(query="last", in_stock=True)
    assert maintenance.refresh_stock_flags() == 1
    assert search(query="last", in_stock=True).items == []
    assert slugs(search(query="last", in_stock=False)) == ["last-keys"]
    make_keys(session, game, 1)  # back in stock
    assert slugs(search(query="last", in_stock=True)) == ["last-keys"]
    assert search(query="last", in_stock=False).items == []


def test_price_changes_are_visible_on_the_next_search(session: Session) -> None:
    cheap = make_product(session, slug="cheap-one", title="Price Quest", price_minor=500)
    make_product(session, slug="dear-one", title="Price Quest Two", price_minor=900)
    assert slugs(search(query="price", sort="price_asc")) == ["cheap-one", "dear-one"]
    assert slugs(search(query="price", max_price_minor=600)) == ["cheap-one"]
    update_product(session=session, product_id=cheap.id, price_minor=1500)
    session.commit()
    assert slugs(search(query="price", sort="price_asc")) == ["dear-one", "cheap-one"]
    assert search(query="price", max_price_minor=600).items == []
    assert search(query="price", sort="price_asc").items[1].price_minor == 1500
    # a price in another currency (product_prices)
    assert search(query="price", currency="USD").items == []
    set_product_price(slug="dear-one", currency="USD", price="12.00", actor=Actor.operator("test"))
    [usd] = search(query="price", currency="USD").items
    assert (usd.slug, usd.price_minor, usd.currency) == ("dear-one", 1200, "USD")


def test_a_change_made_in_another_process_is_seen_through_the_shared_generation(
    session: Session,
) -> None:
    make_product(session, slug="shared-a", title="Shared Saga")
    elsewhere = SearchCache()  # another web process's cache, same settings
    generation, found = elsewhere.lookup("k")
    assert found is None and generation is not None
    elsewhere.store("k", generation, object())  # type: ignore[arg-type]
    assert elsewhere.lookup("k")[1] is not None
    make_product(session, slug="shared-b", title="Shared Saga Two")  # committed here
    assert elsewhere.lookup("k")[1] is None  # that process now misses


def test_a_search_in_a_transaction_that_changed_the_catalogue_is_not_shared(
    session: Session,
) -> None:
    make_product(session, slug="draft-a", title="Draft Days")
    assert slugs(search(query="draft")) == ["draft-a"]
    with Session(session.get_bind()) as writer:
        writer.add(Product(slug="draft-b", title="Draft Nights", platform="Steam", price_minor=100))
        writer.flush()
        bypass = cache_count("bypass")
        found = search_products(session=writer, query="draft")
        assert sorted(slugs(found)) == ["draft-a", "draft-b"]
        assert cache_count("bypass") == bypass + 1
        writer.rollback()
    assert slugs(search(query="draft")) == ["draft-a"]  # the rolled-back product never shows


@pytest.mark.postgres_only
def test_the_generation_lives_in_redis_when_the_queue_is_redis(
    session: Session, test_settings
) -> None:
    url = os.environ.get("KEYSHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    config.use_settings(
        test_settings.model_copy(update={"queue_url": url, "queue_name": f"t-{os.getpid()}"})
    )
    try:
        make_product(session, slug="redis-a", title="Redis Run")
        assert slugs(search(query="redis")) == ["redis-a"]
        elsewhere = SearchCache()
        generation, _ = elsewhere.lookup("k")
        elsewhere.store("k", generation, object())  # type: ignore[arg-type]
        make_product(session, slug="redis-b", title="Redis Run Two")
        assert elsewhere.lookup("k")[1] is None
        assert sorted(slugs(search(query="redis"))) == ["redis-a", "redis-b"]
    finally:
        CACHE.generation().client.delete(CACHE.generation().key)  # type: ignore[attr-defined]
        config.use_settings(test_settings)
