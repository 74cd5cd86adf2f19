"""A key always names a product and (if imported) an import batch that exist.

On SQLite these are foreign keys; on PostgreSQL triggers check them once per statement
(migration 0006). The same behaviour is asserted on both: a key naming a missing parent
is refused and nothing is written, and a parent that keys still name cannot be deleted.
The PostgreSQL-only tests cover what only a server with concurrent transactions has:
the bulk ``COPY`` path and a delete racing an insert.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.db import session_scope
from core.models import ImportBatch, Key, Product
from tests.factories import make_keys, make_product
from tests.race_condition import Competitor


def _key_count() -> int:
    with session_scope(write=False) as s:
        return s.execute(select(func.count()).select_from(Key)).scalar_one()


def _batch(session: Session, product: Product) -> ImportBatch:
    batch = ImportBatch(product_id=product.id, file_name="keys.txt", operator="test")
    session.add(batch)
    session.commit()
    return batch


def test_a_key_naming_a_missing_product_is_refused(session: Session) -> None:
    product = make_product(session)
    with pytest.raises(IntegrityError):
        make_keys(session, Product(id=product.id + 1000), 2)  # type: ignore[operator]
    session.rollback()
    assert _key_count() == 0


def test_a_key_naming_a_missing_import_batch_is_refused(session: Session) -> None:
    product = make_product(session)
    batch = _batch(session, product)
    make_keys(session, product, 1, import_batch_id=batch.id)
    with pytest.raises(IntegrityError):
        make_keys(session, product, 3, import_batch_id=batch.id + 1000)
    session.rollback()
    assert _key_count() == 1


def test_moving_a_key_to_a_missing_product_or_batch_is_refused(session: Session) -> None:
    product = make_product(session)
    batch = _batch(session, product)
    (key,) = make_keys(session, product, 1, import_batch_id=batch.id)
    other = make_product(session)
    for change in (
        {"product_id": product.id + 1000},
        {"import_batch_id": batch.id + 1000},
    ):
        with pytest.raises(IntegrityError):
            session.execute(update(Key).where(Key.id == key.id).values(**change))  # type: ignore[arg-type]
        session.rollback()
    # A change to a product that exists goes through, and so does an unrelated update.
    session.execute(update(Key).where(Key.id == key.id).values(product_id=other.id))  # type: ignore[arg-type]
    session.execute(update(Key).where(Key.id == key.id).values(status_note="checked"))  # type: ignore[arg-type]
    session.commit()
    with session_scope(write=False) as s:
        assert s.get(Key, key.id).product_id == other.id  # type: ignore[union-attr]


def test_a_product_or_batch_keys_name_cannot_be_deleted(session: Session) -> None:
    product = make_product(session)
    batch = _batch(session, product)
    make_keys(session, product, 2, import_batch_id=batch.id)
    for statement in (
        delete(ImportBatch).where(ImportBatch.id == batch.id),  # type: ignore[arg-type]
        delete(Product).where(Product.id == product.id),  # type: ignore[arg-type]
        update(Product).where(Product.id == product.id).values(id=product.id + 1000),  # type: ignore[arg-type]
    ):
        with pytest.raises(IntegrityError):
            session.execute(statement)
            session.flush()
        session.rollback()
    with session_scope(write=False) as s:
        assert s.get(Product, product.id) is not None and s.get(ImportBatch, batch.id) is not None

    # Once no key names them, they go (and an update that keeps the id is never refused).
    session.execute(update(Product).where(Product.id == product.id).values(title="Renamed"))  # type: ignore[arg-type]
    session.execute(delete(Key))
    session.execute(delete(ImportBatch).where(ImportBatch.id == batch.id))  # type: ignore[arg-type]
    session.execute(delete(Product).where(Product.id == product.id))  # type: ignore[arg-type]
    session.commit()
    with session_scope(write=False) as s:
        assert s.get(Product, product.id) is None


# -- PostgreSQL: COPY, the error's shape, concurrency -------------------------------------


def _copy_rows(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """COPY keys the way the importer does (text format here, for readability)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cur,
        cur.copy(
            "COPY keys (id, fingerprint, ciphertext, key_version, product_id, status, kind, "
            "import_batch_id, created_at) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _row(n: int, product_id: int, batch_id: int | None) -> tuple[object, ...]:
    from core.models.base import new_uuid, utcnow

    return (
        new_uuid(), bytes([n]) * 32, b"x" * 40, 1, product_id, "available", "text",
        batch_id, utcnow(),
    )  # fmt: skip


@pytest.mark.postgres_only
def test_a_copy_with_one_bad_row_stores_nothing(session: Session, engine: Engine) -> None:
    product = make_product(session)
    batch = _batch(session, product)
    good = [_row(n, product.id, batch.id) for n in range(1, 50)]  # type: ignore[arg-type]
    for bad in (_row(99, product.id + 1000, batch.id), _row(99, product.id, batch.id + 1000)):  # type: ignore[operator]
        with (
            engine.connect() as conn,
            pytest.raises(psycopg.errors.ForeignKeyViolation) as caught,
            conn.begin(),
        ):
            _copy_rows(conn, [*good[:25], bad, *good[25:]])
        diag = caught.value.diag
        assert diag.constraint_name in (
            "fk_keys_product_id_products",
            "fk_keys_import_batch_id_import_batches",
        )
        assert diag.table_name == "keys"
        assert _key_count() == 0
    with engine.connect() as conn, conn.begin():
        _copy_rows(conn, good)
    assert _key_count() == len(good)


@pytest.mark.postgres_only
def test_the_per_row_foreign_keys_are_replaced_by_statement_triggers(engine: Engine) -> None:
    with engine.connect() as conn:
        fks = set(
            conn.execute(
                text(
                    "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                    "AND conrelid = 'keys'::regclass"
                )
            ).scalars()
        )
        triggers = set(
            conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
                    "('keys'::regclass, 'products'::regclass, 'import_batches'::regclass)"
                )
            ).scalars()
        )
    assert fks == {
        "fk_keys_order_line_id_order_lines",
        "fk_keys_provider_purchase_id_provider_purchases",
    }
    assert {
        "keys_parents_exist",
        "keys_parents_exist_on_update",
        "products_keys_restrict",
        "import_batches_keys_restrict",
    } <= triggers


def _pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _wait_until_blocked(engine: Engine, pid: int, competitor: Competitor[object]) -> None:
    """Until backend ``pid`` waits for a lock (or the competitor finished early)."""
    deadline = time.monotonic() + 10
    with engine.connect() as watcher:
        while time.monotonic() < deadline and not competitor.finished.is_set():
            waiting = watcher.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            ).scalar()
            watcher.rollback()
            if waiting == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError("the competing transaction never waited for the lock")


def _run_blocked(
    engine: Engine, first: Callable[[Connection], None], second: Callable[[Connection], None]
) -> Competitor[object]:
    """``first`` in a transaction left open; ``second`` in another thread, which must
    wait for ``first``'s locks; then ``first`` commits. Returns the finished competitor."""
    with engine.connect() as holder:
        tx = holder.begin()
        first(holder)
        with engine.connect() as other:
            pid = _pid(other)
            other.rollback()

            def act() -> object:
                with other.begin():
                    second(other)
                return None

            competitor: Competitor[object] = Competitor(act)
            competitor.start()
            _wait_until_blocked(engine, pid, competitor)
            assert not competitor.finished.is_set()
            tx.commit()
            assert competitor.join(10)
    return competitor


@pytest.mark.postgres_only
def test_deleting_a_product_waits_for_an_insert_in_flight_and_then_refuses(
    session: Session, engine: Engine
) -> None:
    product = make_product(session)
    competitor = _run_blocked(
        engine,
        lambda c: _copy_rows(c, [_row(1, product.id, None)]),  # type: ignore[arg-type]
        lambda c: c.execute(delete(Product).where(Product.id == product.id)),  # type: ignore[arg-type]
    )
    assert isinstance(competitor.error, IntegrityError)
    assert competitor.error.orig.diag.constraint_name == "fk_keys_product_id_products"  # type: ignore[union-attr]
    assert _key_count() == 1
    with session_scope(write=False) as s:
        assert s.get(Product, product.id) is not None


@pytest.mark.postgres_only
def test_an_insert_waits_for_a_delete_in_flight_and_then_refuses(
    session: Session, engine: Engine
) -> None:
    product = make_product(session)
    competitor = _run_blocked(
        engine,
        lambda c: c.execute(delete(Product).where(Product.id == product.id)),  # type: ignore[arg-type]
        lambda c: _copy_rows(c, [_row(1, product.id, None)]),  # type: ignore[arg-type]
    )
    assert isinstance(competitor.error, psycopg.errors.ForeignKeyViolation)
    assert _key_count() == 0
