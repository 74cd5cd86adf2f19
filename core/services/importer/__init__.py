"""Bulk import of keys from a file: ``keyshop import-keys --product SLUG FILE``.

The file is streamed, never held in memory: it is read line by line (``.txt``: one key
per line) or record by record (``.csv``: a header naming a ``key`` column, and optional
``cost``, ``currency``, ``supplier`` and ``product`` columns), ``batch_size`` lines at a
time.

What an operator can rely on:

- Nothing is written when the file cannot be imported at all (missing, a directory,
  a symbolic link, a named pipe or device, empty, binary, an unsupported extension, a
  CSV without a ``key`` column, an unknown ``--product``): the error says why, and not
  even an ``ImportBatch`` row is left. Links are followed only with
  ``follow_symlinks`` (``--follow-symlinks``), and files are opened with ``O_NOFOLLOW``
  so a link swapped in after the check is refused too; pipes and devices are read only
  with ``allow_special_files`` (``--allow-special-files``), once, into a private copy
  under ``var/import-spool/`` that is deleted afterwards.
- Otherwise an ``ImportBatch`` row (status ``running``) is committed first. Each batch of
  keys and the batch row's counters then commit in one transaction, so an interruption
  (Ctrl-C, a kill, a lost connection) leaves only whole batches behind, the counters
  match the keys stored, and the batch row says ``failed`` (or stays ``running`` after a
  kill). Running the same file again imports only what is missing.
- Every line read is counted exactly once: ``read == imported + duplicate_in_file +
  duplicate_in_stock + rejected``. A duplicate is found by the keyed fingerprint of the
  normalised code (``abcd-efgh`` and ``ABCDEFGH`` are one key) under the unique index on
  ``keys.fingerprint``: a code seen earlier in the same file is ``duplicate_in_file``
  (within a batch by a dictionary, across batches because the stored row carries this
  import's batch id); a code already in stock, or inserted by a concurrent import
  between our check and our insert, is ``duplicate_in_stock``. No set of the whole file
  is kept in memory.
- Rejected lines are reported by line number and reason, never by their text: keys are
  secrets. Reasons: ``empty``, ``too long``, ``control or binary characters``,
  ``malformed CSV: …`` (the line is no record: how many fields it has against the
  header's, or a quote not closed on the line), ``bad cost: …``, ``bad currency: …``,
  ``bad supplier: …`` (naming what is wrong with the field) and ``unknown product``. A record of a CSV file is numbered by the physical line it starts
  on. A line of only separators (spaces, hyphens) is ``empty``; a physical line longer
  than twice the maximum key length (plus some slack) is ``too long`` without being
  read into memory.
- CSV cost is a decimal in major units (``4.99``) stored as minor units (499) in the
  currency of the line (``currency`` column, else the product's currency). A
  ``currency`` without a ``cost`` is checked but not stored. The CSV delimiter is
  ``,``, or ``;`` or a tab when the header uses that instead.

The file is checked and opened in :mod:`.source`, its lines parsed in :mod:`.parse`,
each batch prepared (fingerprinted, encrypted) in :mod:`.prepare` and stored by the
writers of :mod:`.stores`, which also says how batches are stored and made durable.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from core import metrics
from core.config import get_settings
from core.crypto import KeyVault, get_vault
from core.db import get_engine, session_scope
from core.errors import DomainError, UnknownProduct
from core.models import ImportBatch, ImportStatus, Product, utcnow
from core.services.audit import Actor, record_audit
from core.services.importer.parse import (
    CONTROL,
    EMPTY,
    MALFORMED_CSV,
    TOO_LONG,
    UNKNOWN_PRODUCT,
    Rejection,
    _chunks_csv,
    _chunks_txt,
)
from core.services.importer.prepare import (
    REPORT_REJECTIONS,
    STORED_REJECTIONS,
    _prepare,
    _Prepared,
    _ProductRef,
    _Products,
)
from core.services.importer.source import _check_file, _Source, _spooled
from core.services.importer.stores import PG_WRITERS, _Store, _Stored, _Writer, _writer_count
from core.services.importer.stores import _PostgresStore as _PostgresStore

__all__ = [
    "CONTROL",
    "EMPTY",
    "MALFORMED_CSV",
    "PG_WRITERS",
    "REPORT_REJECTIONS",
    "STORED_REJECTIONS",
    "TOO_LONG",
    "UNKNOWN_PRODUCT",
    "ImportReport",
    "ProgressCallback",
    "Rejection",
    "import_keys",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class ImportReport:
    batch_id: int
    product_slug: str | None
    file_name: str
    read: int
    imported: int
    duplicate_in_file: int
    duplicate_in_stock: int
    rejected: int
    rejections: list[Rejection]  # the first 20 (ImportBatch.rejections keeps 100)


# --- the use case ------------------------------------------------------------------


@dataclass
class _Totals:
    read: int = 0
    imported: int = 0
    duplicate_in_file: int = 0
    duplicate_in_stock: int = 0
    rejected: int = 0

    def add(self, batch: _Prepared, stored: _Stored) -> None:
        self.read += batch.read
        self.rejected += batch.rejected
        self.imported += stored.imported
        self.duplicate_in_file += stored.duplicate_in_file
        self.duplicate_in_stock += stored.duplicate_in_stock


def import_keys(
    *,
    path: Path,
    product_slug: str | None,
    operator: str,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    engine: Engine | None = None,
    follow_symlinks: bool = False,
    allow_special_files: bool = False,
) -> ImportReport:
    """Import the keys of a ``.txt`` or ``.csv`` file into stock (see :func:`_import_keys`
    and the module doc). Only a regular file is read, and never through a symbolic link
    (ImportFileError, nothing written): ``follow_symlinks`` allows a link to a regular
    file, ``allow_special_files`` a named pipe or device, read once into a private copy."""
    path = Path(path)
    if not allow_special_files:
        return _import_keys(
            path=path, readable=path, product_slug=product_slug, operator=operator,
            batch_size=batch_size, progress=progress, engine=engine,
            follow_symlinks=follow_symlinks,
        )  # fmt: skip
    with _spooled(path, follow_symlinks=follow_symlinks) as readable:
        return _import_keys(
            path=path, readable=readable, product_slug=product_slug, operator=operator,
            batch_size=batch_size, progress=progress, engine=engine,
            follow_symlinks=follow_symlinks,
        )  # fmt: skip


def _import_keys(
    *,
    path: Path,
    readable: Path,
    product_slug: str | None,
    operator: str,
    batch_size: int | None,
    progress: ProgressCallback | None,
    engine: Engine | None,
    follow_symlinks: bool,
) -> ImportReport:
    """Import the keys of a ``.txt`` or ``.csv`` file into stock (see the module doc).

    Raises :class:`ImportFileError` or :class:`UnknownProduct` before writing anything
    when the file or the product is unusable. Owns its transactions: the batch row
    first, then one transaction per batch of ``batch_size`` lines (default
    ``settings.import_batch_size``). ``progress(bytes_done, bytes_total)`` is called
    after each batch is committed; an exception it raises (e.g. ``KeyboardInterrupt``)
    stops the import after that batch and the ones already being stored beside it
    (PostgreSQL), marks the batch row failed and propagates.
    """
    settings = get_settings()
    size = batch_size or settings.import_batch_size
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    engine = engine or get_engine()
    source = _check_file(readable, product_slug, follow_symlinks=follow_symlinks)
    default = _default_product(engine, product_slug)
    vault = get_vault()

    created_at = utcnow()
    with session_scope(engine=engine) as session:
        batch = ImportBatch(
            product_id=default.id if default else None,
            file_name=path.name[:500],
            file_format=source.file_format,
            operator=operator[:120],
            status=ImportStatus.RUNNING,
            started_at=created_at,
        )
        session.add(batch)
        session.flush()
        assert batch.id is not None
        batch_id: int = batch.id
    log.info(
        "import batch %s started: %s (%s, %d bytes), product %s, operator %s",
        batch_id,
        path.name,
        source.file_format,
        source.size,
        product_slug or "(per line)",
        operator,
    )

    report_rejections: list[Rejection] = []
    try:
        totals = _run(
            source=source,
            batch_size=size,
            vault=vault,
            products=_Products(engine, default),
            writers=[_Writer(engine, batch_id, created_at) for _ in range(_writer_count(engine))],
            report_rejections=report_rejections,
            progress=progress,
        )
    except BaseException as exc:
        _finish_failed(engine, batch_id, operator, exc)
        raise

    with session_scope(engine=engine) as session:
        row = session.get(ImportBatch, batch_id)
        assert row is not None
        row.status = ImportStatus.COMPLETED
        row.finished_at = utcnow()
        record_audit(
            session=session,
            actor=Actor.operator(operator),
            action="keys.import",
            object_type="import_batch",
            object_id=batch_id,
            data={
                "status": str(ImportStatus.COMPLETED),
                "file_name": path.name,
                "product": product_slug,
                "read": totals.read,
                "imported": totals.imported,
                "duplicate_in_file": totals.duplicate_in_file,
                "duplicate_in_stock": totals.duplicate_in_stock,
                "rejected": totals.rejected,
            },
        )
    metrics.KEYS_IMPORTED.inc(totals.imported)
    log.info(
        "import batch %s completed: read %d, imported %d, duplicate in file %d, "
        "duplicate in stock %d, rejected %d",
        batch_id,
        totals.read,
        totals.imported,
        totals.duplicate_in_file,
        totals.duplicate_in_stock,
        totals.rejected,
    )
    return ImportReport(
        batch_id=batch_id,
        product_slug=product_slug,
        file_name=path.name,
        read=totals.read,
        imported=totals.imported,
        duplicate_in_file=totals.duplicate_in_file,
        duplicate_in_stock=totals.duplicate_in_stock,
        rejected=totals.rejected,
        rejections=report_rejections,
    )


def _default_product(engine: Engine, slug: str | None) -> _ProductRef | None:
    if slug is None:
        return None
    with session_scope(write=False, engine=engine) as session:
        found = session.execute(
            select(col(Product.id), col(Product.currency)).where(col(Product.slug) == slug)
        ).first()
    if found is None:
        raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
    return _ProductRef(found[0], slug, found[1])


class _InlineExecutor(Executor):
    """Runs each call at once, in the calling thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 (a Future carries whatever the call raised)
            future.set_exception(exc)
        return future


def _run(
    *,
    source: _Source,
    batch_size: int,
    vault: KeyVault,
    products: _Products,
    writers: list[_Writer],
    report_rejections: list[Rejection],
    progress: ProgressCallback | None,
) -> _Totals:
    """Prepare the next batch here while the writer threads store the earlier ones.

    Batches go to the writers in turn, each writer a thread of its own with its own
    connection, so up to ``len(writers)`` batches are being stored at once; they are
    settled (counted, progress reported) in file order."""
    totals = _Totals()
    stored_rejections: list[dict[str, Any]] = []
    chunks = _chunks_csv if source.file_format == "csv" else _chunks_txt
    # SQLite binds and steps each row of executemany, dropping and taking the GIL each
    # time: a second thread would only make both threads wait for each other, so SQLite
    # writes in this thread. PostgreSQL gets one COPY per batch and works in parallel.
    pools: list[Executor] = [
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyshop-import")
        if writer.engine.dialect.name == "postgresql"
        else _InlineExecutor()
        for writer in writers
    ]
    in_flight: deque[tuple[_Prepared, Future[_Stored]]] = deque()

    def settle() -> None:
        batch, future = in_flight.popleft()
        totals.add(batch, future.result())
        if progress is not None:
            progress(batch.bytes_done, source.size)

    opened: list[Future[_Store]] = []
    try:
        opened = [pool.submit(w.open) for pool, w in zip(pools, writers, strict=True)]
        stores = [f.result() for f in opened]
        for n, chunk in enumerate(chunks(source, batch_size)):
            turn = n % len(writers)
            prepared = _prepare(
                chunk,
                vault=vault,
                products=products,
                store=stores[turn],
                stored_rejections=stored_rejections,
                report_rejections=report_rejections,
            )
            if len(writers) > 1 and prepared.fingerprints:
                codes = set(prepared.fingerprints)
                prepared.after = [
                    f
                    for earlier, f in in_flight
                    if not f.done() and not codes.isdisjoint(earlier.fingerprints)
                ]
            # Settle what the writers finished, and wait for this writer's last batch.
            while in_flight and (len(in_flight) >= len(writers) or in_flight[0][1].done()):
                settle()
            in_flight.append((prepared, pools[turn].submit(writers[turn].write, prepared)))
        while in_flight:
            settle()
    finally:
        # Let the batches already being written finish (each commits whole or not at
        # all) before the caller marks the batch row.
        for _, future in in_flight:
            future.exception()
        for opening in opened:
            opening.exception()  # an open still running
        for pool, writer in zip(pools, writers, strict=True):
            pool.submit(writer.close).exception()
            pool.shutdown(wait=True)
    return totals


def _describe(exc: BaseException) -> str:
    """The error for ImportBatch.error: never key text, so only messages known to be
    free of it (domain errors, file errors, the first line of a database error)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DomainError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    if isinstance(exc, DBAPIError):
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        return f"database error ({type(exc.orig).__name__}): {first}"[:1000]
    return f"{type(exc).__name__} (details withheld: they may quote a key)"


def _finish_failed(engine: Engine, batch_id: int, operator: str, exc: BaseException) -> None:
    error = _describe(exc)
    log.error("import batch %s failed: %s", batch_id, error)
    try:
        with session_scope(engine=engine) as session:
            row = session.get(ImportBatch, batch_id)
            if row is None:
                return
            row.status = ImportStatus.FAILED
            row.error = error
            row.finished_at = utcnow()
            record_audit(
                session=session,
                actor=Actor.operator(operator),
                action="keys.import",
                object_type="import_batch",
                object_id=batch_id,
                data={
                    "status": str(ImportStatus.FAILED),
                    "file_name": row.file_name,
                    "error": error,
                },
            )
    except Exception as mark_exc:  # noqa: BLE001 (best effort while reporting another failure)
        log.error("import batch %s: could not mark it failed: %s", batch_id, _describe(mark_exc))
