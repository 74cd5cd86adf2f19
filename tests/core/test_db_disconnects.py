"""Pooled connections whose backends died (a database restart, a failover, an operator's
``pg_terminate_backend``) are never handed to a service: the pool sees the dead socket
at checkout and opens a new connection. A read-only session whose first statement still
meets a dead connection runs it again once; a write transaction that loses its connection
mid-way fails with an error :func:`core.db.is_database_unavailable` recognises (the
store API answers it 503) and leaves nothing behind, and the next one succeeds."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel import select

from core.db import get_engine, is_database_unavailable, session_scope
from core.models import Order, Product
from core.services.checkout import CartLine, place_order
from tests.conftest import is_postgres_run
from tests.factories import fresh, make_keys, make_product

pytestmark = pytest.mark.skipif(not is_postgres_run(), reason="pooled connections: PostgreSQL only")


@pytest.fixture
def admin(test_settings):
    """A connection of its own (outside the shop's pool) to terminate backends from."""
    engine = create_engine(test_settings.effective_database_url, poolclass=NullPool)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn
    engine.dispose()


def backend_pid(connection) -> int:
    return int(connection.connection.dbapi_connection.info.backend_pid)


def terminate(admin, pids: list[int]) -> None:
    """pg_terminate_backend each, then wait until PostgreSQL no longer lists them."""
    for pid in pids:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    deadline = time.monotonic() + 10
    while admin.execute(
        text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
    ).scalar():
        assert time.monotonic() < deadline, "the backends did not go"
        time.sleep(0.02)


def fill_pool(size: int) -> list[int]:
    """``size`` connections opened at once and returned to the pool, idle; their backends."""
    engine = get_engine()
    conns = [engine.connect() for _ in range(size)]
    pids = [backend_pid(c) for c in conns]
    for c in conns:
        c.close()
    return pids


def cart(product) -> list[CartLine]:
    return [CartLine(slug=product.slug, quantity=1)]


def test_after_every_pooled_backend_is_terminated_reads_and_checkouts_all_succeed(
    session, admin, test_settings
):
    product = make_product(session)
    make_keys(session, product, 20)
    session.commit()
    size = 8
    terminate(admin, fill_pool(size))

    # one after the other (LIFO: each takes a dead connection)...
    for _ in range(size + 1):
        with session_scope(write=False) as s:
            assert s.exec(select(func.count()).select_from(Product)).one() == 1
    terminate(admin, fill_pool(size))
    # ... and all at once, each holding a dead connection before any has failed
    barrier = threading.Barrier(size)

    def buy(i: int) -> str:
        barrier.wait(timeout=10)
        return place_order(email=f"buyer{i}@example.com", lines=cart(product)).number

    with ThreadPoolExecutor(max_workers=size) as pool:
        numbers = list(pool.map(buy, range(size)))
    assert len(set(numbers)) == size
    assert fresh(session).exec(select(func.count()).select_from(Order)).one() == size


def test_a_read_whose_connection_dies_before_its_first_statement_is_run_again(session, admin):
    make_product(session, title="Still There")
    session.commit()
    with session_scope(write=False) as s:
        terminate(admin, [backend_pid(s.connection())])
        assert [p.title for p in s.exec(select(Product))] == ["Still There"]


def test_a_write_that_loses_its_connection_fails_cleanly_and_the_next_succeeds(session, admin):
    product = make_product(session)
    make_keys(session, product, 2)
    session.commit()
    with pytest.raises(DBAPIError) as caught, session_scope() as s:
        s.execute(
            text("UPDATE products SET title = 'Half Written' WHERE id = :id"), {"id": product.id}
        )
        terminate(admin, [backend_pid(s.connection())])
        s.execute(text("SELECT 1"))
    assert is_database_unavailable(caught.value)
    assert fresh(session).get(Product, product.id).title != "Half Written"
    assert place_order(email="next@example.com", lines=cart(product)).number
