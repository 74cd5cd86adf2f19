"""Storing prepared batches: one writer per connection, each batch and the import's
counters in one transaction.

Speed: the calling thread parses, fingerprints and encrypts the next batch (a column
at a time: ``KeyVault.fingerprints``, ``KeyVault.encrypt_many``, ``new_uuids``) while
writer threads store the earlier ones. On PostgreSQL there are ``PG_WRITERS`` (2)
writers, each with its own connection, taking batches in turn, so two server processes
share the work: one backend inserting a batch (heap and five index entries a key) is
the limit otherwise. The batch's product and import batch are checked once per COPY, not
once per key (migration 0006). Batches are counted and reported in
file order, but the writers commit them in whichever order they finish, so when an
import stops half-way the batches stored are whole but not always the first ones; a
re-run imports what is missing either way. A batch that shares a code with an earlier
batch still being stored waits for that one to end before it starts (holding no locks
meanwhile), so the first line of a code is the one stored, as one writer would do it.
A batch is sent with binary ``COPY`` straight into ``keys``. While duplicates are being
found (from the first batch on, and after any batch that had some), one ``fingerprint
= ANY(...)`` query first finds the batch's codes already stored, and only the others
are copied. If the COPY still meets a stored fingerprint (a concurrent import, or a
duplicate of an earlier batch when not looking first) or deadlocks with a concurrent
import, the transaction is rolled back whole and the batch is stored again through a
temporary staging table with ``INSERT ... SELECT ... ON CONFLICT (fingerprint) DO
NOTHING``.

Each batch's transaction on PostgreSQL runs with ``synchronous_commit = off``
(``SET LOCAL``: that transaction only): its commit does not wait for the WAL to reach
the disk. A crash of the database server can then lose the last batches reported as
committed (at most about three ``wal_writer_delay`` periods, 0.6 s by default) — whole
batches, their keys together with their counters, never part of one — and the batch
row stays ``running``; running the import again stores them. The last transaction,
which marks the batch row ``completed``, commits synchronously and so makes every
batch before it durable: an import reported complete is on disk.

On SQLite a batch is one ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``
inside an immediate transaction, in the calling thread. ``bench/import_keys.py``
measures it.
"""

from __future__ import annotations

import logging
import struct
import time
import uuid
from collections.abc import Container
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import JSON, bindparam, case, func, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from core.models import ImportBatch, Key, KeyStatus
from core.services.catalogue import refresh_stock_flags
from core.services.importer.prepare import _Meta, _Prepared, _Rows

log = logging.getLogger(__name__)


class _Store(Protocol):
    """How one backend stores a batch of rows. ``encode`` runs in the calling thread;
    the other methods in the writer thread, inside the writer's transaction."""

    def encode(self, rows: _Rows) -> Any: ...

    def open(self, conn: Connection) -> None: ...

    def store(
        self, conn: Connection, payload: Any, fingerprints: list[bytes], *, careful: bool
    ) -> tuple[int, int]:
        """Insert the rows whose fingerprint is not stored yet. Returns (inserted, how
        many of ``fingerprints`` earlier batches of this import stored). ``careful``:
        this batch is being stored again after :meth:`retryable` failure."""
        ...

    def retryable(self, exc: BaseException) -> bool:
        """Whether the batch's transaction failed only because of a concurrent import
        (then it is rolled back and stored again, carefully)."""
        ...

    def close(self, conn: Connection) -> None: ...


_PG_STAGE = "keyshop_import_stage"
_PG_COLUMNS = (
    "id, fingerprint, ciphertext, key_version, product_id, status, kind, import_batch_id, "
    "supplier, cost_minor, cost_currency, created_at"
)
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PG_COPY_TRAILER = struct.pack("!h", -1)
# Field count, id, fingerprint, ciphertext length (the ciphertext follows).
_PG_ROW_HEAD = struct.Struct("!hi16si32si")
_PG_NULL = struct.pack("!i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_UNIQUE_VIOLATION = "23505"
_PG_DEADLOCK = "40P01"


@dataclass
class _CopyRows:
    """A batch in PostgreSQL's binary COPY format: ``data`` is the whole stream, and
    ``parts`` three pieces per row, to drop rows found already stored."""

    parts: list[bytes]
    data: bytes

    def without(self, fingerprints: list[bytes], stored: Container[bytes]) -> bytes:
        parts = self.parts
        out = [_PG_COPY_HEADER]
        for i, fp in enumerate(fingerprints):
            if fp not in stored:
                out += parts[3 * i : 3 * i + 3]
        out.append(_PG_COPY_TRAILER)
        return b"".join(out)


class _PostgresStore:
    """Binary COPY straight into ``keys``, after a query for the batch's fingerprints
    already stored while duplicates are being found. When the COPY meets a stored
    fingerprint (unique violation) or deadlocks with a concurrent import, the writer
    rolls the batch back and calls again with ``careful``: COPY into a temporary staging
    table and ``INSERT ... SELECT ... ON CONFLICT (fingerprint) DO NOTHING``."""

    def __init__(self, batch_id: int, created_at: datetime) -> None:
        self.batch_id = batch_id
        delta = created_at.astimezone(UTC) - _PG_EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        self._fixed = (  # status, kind, import_batch_id
            struct.pack("!i", 9) + str(KeyStatus.AVAILABLE).encode()
            + struct.pack("!i", 4) + b"text"
            + struct.pack("!ii", 4, batch_id)
        )  # fmt: skip
        self._created = struct.pack("!iq", 8, micros)
        self._check = True  # look for stored fingerprints before the next COPY

    def _tail(self, version: int, product_id: int, meta: _Meta | None) -> bytes:
        """The fields after the ciphertext."""
        out = [struct.pack("!ihii", 2, version, 4, product_id), self._fixed]
        supplier, cost_minor, currency = meta[1:] if meta else (None, None, None)
        if supplier is None:
            out.append(_PG_NULL)
        else:
            text = supplier.encode()
            out.append(struct.pack("!i", len(text)) + text)
        out.append(_PG_NULL if cost_minor is None else struct.pack("!iq", 8, cost_minor))
        out.append(_PG_NULL if currency is None else struct.pack("!i", 3) + currency.encode())
        out.append(self._created)
        return b"".join(out)

    def encode(self, rows: _Rows) -> _CopyRows:
        head = _PG_ROW_HEAD.pack
        parts: list[bytes] = []
        append = parts.append
        version = rows.key_version
        if rows.metas is None:
            assert rows.product_id is not None
            tail = self._tail(version, rows.product_id, None)
            for row_id, fp, blob in zip(rows.ids, rows.fingerprints, rows.ciphertexts, strict=True):
                append(head(12, 16, row_id, 32, fp, len(blob)))
                append(blob)
                append(tail)
        else:
            for row_id, fp, blob, meta in zip(
                rows.ids, rows.fingerprints, rows.ciphertexts, rows.metas, strict=True
            ):
                append(head(12, 16, row_id, 32, fp, len(blob)))
                append(blob)
                append(self._tail(version, meta[0], meta))
        return _CopyRows(parts, b"".join((_PG_COPY_HEADER, *parts, _PG_COPY_TRAILER)))

    def open(self, conn: Connection) -> None:
        with conn.begin():
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{_PG_STAGE}")
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {_PG_STAGE} (id uuid NOT NULL, "
                "fingerprint bytea NOT NULL, ciphertext bytea NOT NULL, key_version int2 NOT NULL, "
                "product_id int4 NOT NULL, status text NOT NULL, kind text NOT NULL, "
                "import_batch_id int4 NOT NULL, supplier text, cost_minor int8, "
                "cost_currency text, created_at timestamptz NOT NULL) ON COMMIT DELETE ROWS"
            )

    def store(
        self, conn: Connection, payload: _CopyRows, fingerprints: list[bytes], *, careful: bool
    ) -> tuple[int, int]:
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur:
            # This batch's commit does not wait for its WAL to reach the disk (see the
            # module doc: a crash can only lose whole batches, which a re-run imports).
            cur.execute("SET LOCAL synchronous_commit = off")
            if careful:
                self._check = True
                return self._store_on_conflict(cur, payload, fingerprints)
            stored = self._already_stored(cur, fingerprints) if self._check else {}
            # Look first only while duplicates are being found (a file imported again):
            # a new file goes straight to COPY, whose unique index still catches any
            # duplicate and sends that batch the careful way.
            self._check = bool(stored)
            if len(stored) < len(fingerprints):
                data = payload.without(fingerprints, stored) if stored else payload.data
                with cur.copy(f"COPY keys ({_PG_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(data)
            earlier = sum(1 for batch in stored.values() if batch == self.batch_id)
            return len(fingerprints) - len(stored), earlier

    def _already_stored(self, cur: Any, fingerprints: list[bytes]) -> dict[bytes, int | None]:
        """The batch's fingerprints already in ``keys``, with the import batch of each."""
        # One probe of the unique index per fingerprint, never a scan of the whole table
        # (which the planner may pick for thousands of values, or without statistics).
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute(
            "SELECT fingerprint, import_batch_id FROM keys WHERE fingerprint = ANY(%s)",
            (fingerprints,),
        )
        found = dict(cur.fetchall())
        cur.execute("RESET enable_seqscan")
        return found

    def _store_on_conflict(
        self, cur: Any, payload: _CopyRows, fingerprints: list[bytes]
    ) -> tuple[int, int]:
        with cur.copy(f"COPY {_PG_STAGE} ({_PG_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(payload.data)
        insert = f"INSERT INTO keys ({_PG_COLUMNS}) SELECT {_PG_COLUMNS} FROM {_PG_STAGE}"  # noqa: S608 (constants)
        cur.execute(f"{insert} ON CONFLICT (fingerprint) DO NOTHING")
        inserted = int(cur.rowcount)
        if inserted == len(fingerprints):
            return inserted, 0
        # Rows stored by an earlier batch of this import carry its batch id; the count
        # includes the rows just inserted.
        cur.execute(
            "SELECT count(*) FROM keys WHERE fingerprint = ANY(%s) AND import_batch_id = %s",
            (fingerprints, self.batch_id),
        )
        found = cur.fetchone()
        return inserted, (int(found[0]) if found else 0) - inserted

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, DBAPIError):
            exc = exc.orig  # type: ignore[assignment]
        return getattr(exc, "sqlstate", None) in (_PG_UNIQUE_VIOLATION, _PG_DEADLOCK)

    def close(self, conn: Connection) -> None:
        with conn.begin():
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{_PG_STAGE}")


class _SqliteStore:
    """``executemany`` of INSERT ... ON CONFLICT DO NOTHING in an immediate transaction."""

    _CHUNK = 500  # bound parameters per IN (...) query

    def __init__(self, batch_id: int, created_at: datetime, conn: Connection) -> None:
        self.batch_id = batch_id
        table = Key.__table__  # type: ignore[attr-defined]
        self._uuid = table.c.id.type.bind_processor(conn.dialect)
        stamp = table.c.created_at.type.bind_processor(conn.dialect)
        self._created_at = stamp(created_at) if stamp else created_at

    def encode(self, rows: _Rows) -> list[tuple[Any, ...]]:
        to_db = self._uuid or (lambda v: v)
        status, batch_id, created = str(KeyStatus.AVAILABLE), self.batch_id, self._created_at
        version = rows.key_version
        metas: list[tuple[Any, ...]] = list(rows.metas or [])
        if rows.metas is None:
            metas = [(rows.product_id, None, None, None)] * len(rows)
        return [
            (to_db(uuid.UUID(bytes=rid)), meta[0], status, "text", blob, version, fp, batch_id,
             meta[1], meta[2], meta[3], created)
            for rid, fp, blob, meta in zip(rows.ids, rows.fingerprints, rows.ciphertexts, metas, strict=True)
        ]  # fmt: skip

    def open(self, conn: Connection) -> None:
        pass

    def store(
        self,
        conn: Connection,
        payload: list[tuple[Any, ...]],
        fingerprints: list[bytes],
        *,
        careful: bool,
    ) -> tuple[int, int]:
        driver = conn.connection.driver_connection
        assert driver is not None
        cur = driver.cursor()
        try:
            cur.executemany(
                "INSERT INTO keys (id, product_id, status, kind, ciphertext, key_version, "
                "fingerprint, import_batch_id, supplier, cost_minor, cost_currency, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING",
                payload,
            )
            inserted = int(cur.rowcount)
            if inserted == len(fingerprints):
                return inserted, 0
            # Rows stored by an earlier batch of this import carry its batch id; the
            # count includes the rows just inserted.
            total = 0
            for start in range(0, len(fingerprints), self._CHUNK):
                part = fingerprints[start : start + self._CHUNK]
                marks = ", ".join("?" * len(part))
                cur.execute(
                    f"SELECT count(*) FROM keys WHERE import_batch_id = ? AND fingerprint IN ({marks})",  # noqa: S608 (only "?" placeholders)
                    (self.batch_id, *part),
                )
                total += int(cur.fetchone()[0])
            return inserted, total - inserted
        finally:
            cur.close()

    def retryable(self, exc: BaseException) -> bool:
        return False  # one writer at a time: ON CONFLICT settles everything

    def close(self, conn: Connection) -> None:
        pass


@dataclass
class _Stored:
    imported: int
    duplicate_in_file: int
    duplicate_in_stock: int


_ATTEMPTS = 5  # stores of one batch before a conflict with concurrent imports is an error
PG_WRITERS = 2  # connections storing batches side by side on PostgreSQL


def _writer_count(engine: Engine) -> int:
    return PG_WRITERS if engine.dialect.name == "postgresql" else 1


class _Writer:
    """Owns one connection, used only from the writer thread."""

    def __init__(self, engine: Engine, batch_id: int, created_at: datetime) -> None:
        self.engine = engine
        self.batch_id = batch_id
        self.created_at = created_at
        self.conn: Connection | None = None
        self.store: _Store | None = None
        self._batches = ImportBatch.__table__  # type: ignore[attr-defined]

    def open(self) -> _Store:
        self.conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            store: _Store = _PostgresStore(self.batch_id, self.created_at)
        else:
            store = _SqliteStore(self.batch_id, self.created_at, self.conn)
        store.open(self.conn)
        self.store = store
        return store

    def write(self, batch: _Prepared) -> _Stored:
        """Store one batch and add it to the batch row's counters: one transaction."""
        conn, store = self.conn, self.store
        assert conn is not None and store is not None
        if batch.after:
            # Outside any transaction: nothing of ours is locked while we wait.
            futures.wait(batch.after)
        for attempt in range(_ATTEMPTS):
            try:
                with conn.begin():
                    inserted = earlier = 0
                    if batch.rows:
                        inserted, earlier = store.store(
                            conn, batch.payload, batch.fingerprints, careful=attempt > 0
                        )
                    if inserted:  # the same transaction: listings see the stock at once
                        refresh_stock_flags(session=conn, product_ids=batch.product_ids)
                    stored = _Stored(
                        imported=inserted,
                        duplicate_in_file=batch.duplicate_in_file + earlier,
                        duplicate_in_stock=batch.rows - inserted - earlier,
                    )
                    t = self._batches.c
                    values: dict[str, Any] = {
                        "lines_read": t.lines_read + batch.read,
                        "imported": t.imported + stored.imported,
                        "duplicate_in_file": t.duplicate_in_file + stored.duplicate_in_file,
                        "duplicate_in_stock": t.duplicate_in_stock + stored.duplicate_in_stock,
                        "rejected": t.rejected + batch.rejected,
                    }
                    if batch.rejections is not None:
                        # The list only grows, batch after batch; batches stored side by
                        # side commit in any order, so the longest list wins.
                        listed = bindparam(None, batch.rejections, type_=JSON)
                        values["rejections"] = case(
                            (func.json_array_length(t.rejections) < len(batch.rejections), listed),
                            else_=t.rejections,
                        )
                    conn.execute(
                        update(self._batches).where(t.id == self.batch_id).values(**values)
                    )
                return stored
            except Exception as exc:
                if attempt + 1 == _ATTEMPTS or not store.retryable(exc):
                    raise
                # Rolled back whole; the message names no key (sqlstate only).
                log.info(
                    "import batch %s: a concurrent import got there first (%s); "
                    "storing the batch again",
                    self.batch_id,
                    getattr(getattr(exc, "orig", exc), "sqlstate", "?"),
                )
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            if self.store is not None and not self.conn.closed and not self.conn.invalidated:
                self.store.close(self.conn)
        except SQLAlchemyError:
            log.warning("import batch %s: could not drop the staging table", self.batch_id)
        finally:
            self.conn.close()
            self.conn = None
