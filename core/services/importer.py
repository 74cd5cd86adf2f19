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
  ``malformed CSV`` (wrong field count, bad quoting, bad cost, currency or supplier) and
  ``unknown product``. A record of a CSV file is numbered by the physical line it starts
  on. A line of only separators (spaces, hyphens) is ``empty``; a physical line longer
  than twice the maximum key length (plus some slack) is ``too long`` without being
  read into memory.
- CSV cost is a decimal in major units (``4.99``) stored as minor units (499) in the
  currency of the line (``currency`` column, else the product's currency). A
  ``currency`` without a ``cost`` is checked but not stored. The CSV delimiter is
  ``,``, or ``;`` or a tab when the header uses that instead.

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

import codecs
import contextlib
import csv
import io
import logging
import os
import shutil
import stat
import struct
import tempfile
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterator
from concurrent import futures
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import JSON, bindparam, case, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlmodel import col

from core.config import get_settings
from core.crypto import KeyVault, get_vault
from core.db import get_engine, session_scope
from core.errors import DomainError, ImportFileError, UnknownProduct
from core.models import ImportBatch, ImportStatus, Key, KeyStatus, Product, utcnow
from core.models.base import new_uuids
from core.services.audit import Actor, record_audit
from core.services.catalogue import refresh_stock_flags

log = logging.getLogger(__name__)

EMPTY = "empty"
TOO_LONG = "too long"
CONTROL = "control or binary characters"
MALFORMED_CSV = "malformed CSV"
UNKNOWN_PRODUCT = "unknown product"

REPORT_REJECTIONS = 20  # rejections listed in the ImportReport
STORED_REJECTIONS = 100  # rejections kept in ImportBatch.rejections
FORMATS = {".txt": "txt", ".csv": "csv"}
CSV_COLUMNS = ("key", "cost", "currency", "supplier", "product")
SNIFF_BYTES = 8192
SUPPLIER_MAX = 120  # keys.supplier is VARCHAR(120)
COST_MAX_MINOR = 10**15

# Characters the fingerprint ignores (core.crypto.normalise_code): a line made only of
# these has no code in it.
_SEPARATORS = " \t-\u00a0\u2010\u2011\u2012\u2013\u2014"
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# ISO 4217 currencies whose minor unit is not 1/100; every other code has two decimals.
_MINOR_EXPONENT = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

T = TypeVar("T")
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class Rejection:
    """A line that was not imported. Never carries the line's text (keys are secrets)."""

    line: int
    reason: str


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


# --- the file ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    path: Path
    file_format: str  # "txt" | "csv"
    size: int
    delimiter: str = ","
    columns: tuple[str, ...] = ()  # lower-cased CSV header
    follow_symlinks: bool = False

    def column(self, name: str) -> int | None:
        return self.columns.index(name) if name in self.columns else None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _check_kind(path: Path, *, follow_symlinks: bool) -> os.stat_result:
    """The file's status, refusing a symbolic link (unless ``follow_symlinks``) and
    anything that is not a regular file; never opens it (a FIFO would block)."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            if not follow_symlinks:
                raise ImportFileError(
                    f"{path} is a symbolic link; import the file it points to, or pass "
                    "--follow-symlinks if you mean it",
                    file=str(path),
                )
            st = os.stat(path)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file", file=str(path)) from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImportFileError(f"{path} is a directory, not a file of keys", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ImportFileError(
            f"{path} is not a regular file (a {_kind(st.st_mode)}); pass "
            "--allow-special-files to read it once into a private copy",
            file=str(path),
        )
    return st


def _open_regular(path: Path, *, follow_symlinks: bool) -> io.BufferedReader:
    """Open ``path`` for reading as checked by :func:`_check_kind`: ``O_NOFOLLOW`` (a link
    put in its place after the check is refused) and ``O_NONBLOCK`` (a FIFO put there
    does not hang), then the opened file itself must be regular."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImportFileError(f"{path} changed into something other than a file", file=str(path))
    os.set_blocking(fd, True)
    return open(fd, "rb")


@contextlib.contextmanager
def _spooled(path: Path, *, follow_symlinks: bool) -> Iterator[Path]:
    """A regular file to import from: ``path`` itself, or, for a named pipe or a device
    (``allow_special_files``), a private copy (mode 0600) under ``var/import-spool/``,
    read once and deleted afterwards (it holds plaintext keys)."""
    try:
        mode = (os.stat if follow_symlinks else os.lstat)(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # _check_kind reports it
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        yield path
        return
    folder = get_settings().var_dir / "import-spool"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=folder, suffix=path.suffix)
    copy = Path(name)
    try:
        with open(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _check_file(path: Path, product_slug: str | None, *, follow_symlinks: bool = False) -> _Source:
    """Everything that refuses the file as a whole, before anything is written."""
    path = Path(path)
    st = _check_kind(path, follow_symlinks=follow_symlinks)
    file_format = FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ImportFileError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; "
            "use .txt (one key per line) or .csv (with a 'key' column)",
            file=str(path),
        )
    if st.st_size == 0:
        raise ImportFileError(f"{path} is empty", file=str(path))
    try:
        with _open_regular(path, follow_symlinks=follow_symlinks) as fh:
            _refuse_binary(path, fh.read(SNIFF_BYTES))
            fh.seek(0)
            if _only_whitespace(fh):
                raise ImportFileError(f"{path} is empty (only blank lines)", file=str(path))
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read it ({exc.strerror})", file=str(path)) from None
    source = _Source(
        path=path, file_format=file_format, size=st.st_size, follow_symlinks=follow_symlinks
    )
    if file_format == "csv":
        source = _read_csv_header(source)
    if product_slug is None and source.column("product") is None:
        raise ImportFileError(
            f"{path}: say which product the keys are for (--product SLUG), "
            "or give a CSV file with a 'product' column",
            file=str(path),
        )
    return source


def _refuse_binary(path: Path, head: bytes) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(f"{path} is UTF-16 text; save it as UTF-8", file=str(path))
    if b"\x00" in head:
        raise ImportFileError(
            f"{path} looks like a binary file (NUL bytes), not text", file=str(path)
        )
    # final=False: a multi-byte character cut at the end of the sample is not an error.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(
        head.removeprefix(codecs.BOM_UTF8), final=False
    )
    bad = sum(1 for ch in text if ch == "\ufffd" or (ch not in "\r\n\t" and not ch.isprintable()))
    if text and bad * 10 > len(text) * 3:  # over 30%: binary, not a few bad lines
        raise ImportFileError(f"{path} is not UTF-8 text (binary data?)", file=str(path))


def _only_whitespace(fh: io.BufferedReader) -> bool:
    first = True
    while chunk := fh.read(1 << 16):
        if first:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            first = False
        if chunk.strip():
            return False
    return True


def _open_text(source: _Source) -> tuple[io.BufferedReader, io.TextIOWrapper]:
    raw = _open_regular(source.path, follow_symlinks=source.follow_symlinks)
    # utf-8-sig drops a BOM; surrogateescape turns invalid bytes into lone surrogates,
    # which the per-line check rejects (category Cs) without failing the whole file.
    text = io.TextIOWrapper(
        raw,
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="" if source.file_format == "csv" else None,
    )
    return raw, text


def _line_limit() -> int:
    return get_settings().max_key_length * 2 + 256


class _Lines:
    """Physical lines of a text file, each at most ``limit`` characters: a longer line is
    skipped without being held in memory, replaced by an empty line, and flagged."""

    def __init__(self, fh: io.TextIOWrapper, limit: int) -> None:
        self._readline = fh.readline
        self._limit = limit
        self.overlong = False  # set when a line was cut; the reader clears it

    def __iter__(self) -> Iterator[str]:
        readline, limit = self._readline, self._limit
        while line := readline(limit):
            if len(line) == limit and not line.endswith(("\n", "\r")):
                while (
                    (rest := readline(limit))
                    and len(rest) == limit
                    and not rest.endswith(("\n", "\r"))
                ):
                    pass
                self.overlong = True
                yield "\n"
                continue
            yield line


def _read_csv_header(source: _Source) -> _Source:
    raw, fh = _open_text(source)
    with raw, fh:
        first = fh.readline(_line_limit())
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    try:
        header = next(csv.reader([first], delimiter=delimiter, strict=True), [])
    except csv.Error:
        header = []
    columns = tuple(name.strip().lower() for name in header)
    # Never echo the header: a key list saved as .csv would put a key in the message.
    if "key" not in columns:
        raise ImportFileError(
            f"{source.path}: the first line of a CSV file must be a header naming a 'key' "
            "column (optional: cost, currency, supplier, product)",
            file=str(source.path),
        )
    for name in CSV_COLUMNS:
        if columns.count(name) > 1:
            raise ImportFileError(
                f"{source.path}: the CSV header names {name!r} twice", file=str(source.path)
            )
    return _Source(
        path=source.path,
        file_format="csv",
        size=source.size,
        delimiter=delimiter,
        columns=columns,
        follow_symlinks=source.follow_symlinks,
    )


# --- parsing lines -----------------------------------------------------------------

# One parsed line: (line number, code, product slug or None, supplier, cost, currency).
_Parsed = tuple[int, str, str | None, str | None, Decimal | None, str | None]


@dataclass
class _Chunk:
    """``batch_size`` lines as read: what is left to import, and what was rejected."""

    read: int = 0
    parsed: list[_Parsed] = field(default_factory=list)  # CSV records
    codes: list[str] = field(default_factory=list)  # lines of a .txt file (default product)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    bytes_done: int = 0


def _code_problem(code: str, max_len: int) -> str | None:
    if not code or not code.strip(_SEPARATORS):
        return EMPTY
    if not code.isprintable() and (
        # Every non-printable ASCII character is a control character (Cc); beyond ASCII,
        # separators such as U+00A0 are not printable either but are allowed.
        code.isascii() or any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in code)
    ):
        return CONTROL
    if len(code) > max_len:
        return TOO_LONG
    return None


def _chunks_txt(source: _Source, batch_size: int) -> Iterator[_Chunk]:
    max_len = get_settings().max_key_length
    raw, fh = _open_text(source)
    with raw, fh:
        lines = _Lines(fh, _line_limit())
        chunk = _Chunk()
        for number, line in enumerate(lines, 1):
            chunk.read += 1
            if lines.overlong:
                lines.overlong = False
                chunk.rejections.append((number, TOO_LONG))
            else:
                code = line.strip()
                problem = _code_problem(code, max_len)
                if problem is None:
                    chunk.codes.append(code)
                else:
                    chunk.rejections.append((number, problem))
            if chunk.read >= batch_size:
                chunk.bytes_done = raw.tell()
                yield chunk
                chunk = _Chunk()
        if chunk.read:
            chunk.bytes_done = source.size
            yield chunk


def _chunks_csv(source: _Source, batch_size: int) -> Iterator[_Chunk]:
    max_len = get_settings().max_key_length
    ncols = len(source.columns)
    i_key = source.column("key")
    i_cost, i_currency = source.column("cost"), source.column("currency")
    i_supplier, i_product = source.column("supplier"), source.column("product")
    assert i_key is not None
    raw, fh = _open_text(source)
    with raw, fh:
        lines = _Lines(fh, _line_limit())
        reader = csv.reader(lines, delimiter=source.delimiter, strict=True)
        with contextlib.suppress(csv.Error):
            next(reader, None)  # the header, checked by _read_csv_header
        lines.overlong = False
        chunk = _Chunk()
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                row = None
            chunk.read += 1
            overlong, lines.overlong = lines.overlong, False
            if overlong:
                chunk.rejections.append((start, TOO_LONG))
            elif row is None:
                chunk.rejections.append((start, MALFORMED_CSV))
            elif not any(cell.strip() for cell in row):
                chunk.rejections.append((start, EMPTY))
            elif len(row) != ncols:
                chunk.rejections.append((start, MALFORMED_CSV))
            else:
                code = row[i_key].strip()
                problem = _code_problem(code, max_len)
                if problem is None:
                    parsed = _csv_fields(row, i_supplier, i_cost, i_currency, i_product)
                    if isinstance(parsed, str):
                        problem = parsed
                    else:
                        chunk.parsed.append((start, code, *parsed))
                if problem is not None:
                    chunk.rejections.append((start, problem))
            if chunk.read >= batch_size:
                chunk.bytes_done = raw.tell()
                yield chunk
                chunk = _Chunk()
        if chunk.read:
            chunk.bytes_done = source.size
            yield chunk


def _csv_fields(
    row: list[str],
    i_supplier: int | None,
    i_cost: int | None,
    i_currency: int | None,
    i_product: int | None,
) -> tuple[str | None, str | None, Decimal | None, str | None] | str:
    """(product slug, supplier, cost, currency) of one CSV row, or a rejection reason."""
    slug = row[i_product].strip() or None if i_product is not None else None
    if slug is not None and _code_problem(slug, len(slug)) == CONTROL:
        return CONTROL  # undecodable bytes cannot even be looked up
    supplier = row[i_supplier].strip() or None if i_supplier is not None else None
    if supplier is not None:
        if _code_problem(supplier, SUPPLIER_MAX) == CONTROL:
            return CONTROL
        if len(supplier) > SUPPLIER_MAX:
            return MALFORMED_CSV
    cost: Decimal | None = None
    cost_text = row[i_cost].strip() if i_cost is not None else ""
    if cost_text:
        try:
            cost = Decimal(cost_text)
        except InvalidOperation:
            return MALFORMED_CSV
        if not cost.is_finite() or cost < 0:
            return MALFORMED_CSV
    currency = row[i_currency].strip().upper() or None if i_currency is not None else None
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isalpha()
    ):
        return MALFORMED_CSV
    return slug, supplier, cost, currency


def _minor_units(cost: Decimal, currency: str) -> int | None:
    scaled = cost.scaleb(_MINOR_EXPONENT.get(currency, 2))
    if scaled != scaled.to_integral_value() or scaled >= COST_MAX_MINOR:
        return None
    return int(scaled)


# --- preparing rows ----------------------------------------------------------------


@dataclass(frozen=True)
class _ProductRef:
    id: int
    slug: str
    currency: str


class _Products:
    """Product slugs of CSV lines, looked up once per batch and remembered."""

    MAX_CACHED = 10_000

    def __init__(self, engine: Engine, default: _ProductRef | None) -> None:
        self._engine = engine
        self.default = default
        self._known: dict[str, _ProductRef | None] = {}

    def resolve(self, slugs: set[str]) -> None:
        missing = [s for s in slugs if s not in self._known]
        if not missing:
            return
        if len(self._known) + len(missing) > self.MAX_CACHED:
            self._known.clear()
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            with session_scope(write=False, engine=self._engine) as session:
                rows = session.execute(
                    select(col(Product.id), col(Product.slug), col(Product.currency)).where(
                        col(Product.slug).in_(part)
                    )
                ).all()
            found = {slug: _ProductRef(pid, slug, cur) for pid, slug, cur in rows}
            for slug in part:
                self._known[slug] = found.get(slug)

    def get(self, slug: str | None) -> _ProductRef | None:
        return self.default if slug is None else self._known.get(slug)


# Per-row details of CSV lines: (product_id, supplier, cost_minor, cost_currency).
_Meta = tuple[int, str | None, int | None, str | None]


@dataclass
class _Rows:
    """A batch's new keys, column by column (``metas`` None: all of the default product,
    no supplier or cost)."""

    ids: list[bytes]  # 16-byte UUID values
    fingerprints: list[bytes]
    ciphertexts: list[bytes]
    key_version: int
    product_id: int | None
    metas: list[_Meta] | None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _Prepared:
    """A batch after the calling thread's work, ready for the writer thread."""

    read: int
    rejected: int
    duplicate_in_file: int  # within this batch
    rows: int
    fingerprints: list[bytes]
    payload: Any  # the store's encoding of the rows
    rejections: list[dict[str, Any]] | None  # the new ImportBatch.rejections, if changed
    bytes_done: int
    # Earlier batches, still being stored, that hold some of this batch's codes: this
    # batch is stored only after they end, so the first line of a code is the one kept.
    after: list[Future[Any]] = field(default_factory=list)
    product_ids: tuple[int, ...] = ()  # whose in_stock flag the batch refreshes


def _prepare(
    chunk: _Chunk,
    *,
    vault: KeyVault,
    products: _Products,
    store: _Store,
    stored_rejections: list[dict[str, Any]],
    report_rejections: list[Rejection],
) -> _Prepared:
    """Fingerprint, de-duplicate within the batch and encrypt (the calling thread).
    Whole columns at a time: no per-row objects beyond the values themselves."""
    rejections = chunk.rejections
    metas: list[_Meta] | None = None
    product_id: int | None = None
    if chunk.parsed:  # CSV: product, cost and currency per line
        slugs = {p[2] for p in chunk.parsed if p[2] is not None}
        if slugs:
            products.resolve(slugs)
        default = products.default
        codes: list[str] = []
        metas = []
        for number, code, slug, supplier, cost, currency in chunk.parsed:
            product = default if slug is None else products.get(slug)
            if product is None:
                rejections.append((number, UNKNOWN_PRODUCT))
                continue
            cost_minor: int | None = None
            if cost is not None:
                currency = currency or product.currency
                cost_minor = _minor_units(cost, currency)
                if cost_minor is None:
                    rejections.append((number, MALFORMED_CSV))
                    continue
            else:
                currency = None
            codes.append(code)
            metas.append((product.id, supplier, cost_minor, currency))
    else:
        codes = chunk.codes
        if codes:
            assert products.default is not None  # a .txt import names its product
            product_id = products.default.id
    fingerprints = vault.fingerprints(codes)
    unique = dict.fromkeys(fingerprints)
    duplicates = len(fingerprints) - len(unique)
    if duplicates:  # keep the first line of each code
        first = {fp: i for i, fp in reversed(list(enumerate(fingerprints)))}
        keep = sorted(first.values())
        codes = [codes[i] for i in keep]
        fingerprints = list(unique)
        if metas is not None:
            metas = [metas[i] for i in keep]
    ids = new_uuids(len(codes))
    version, ciphertexts = vault.encrypt_many([c.encode() for c in codes], ids)
    rows = _Rows(ids, fingerprints, ciphertexts, version, product_id, metas)
    changed = None
    if rejections:
        rejections.sort()
        if len(stored_rejections) < STORED_REJECTIONS:
            room = STORED_REJECTIONS - len(stored_rejections)
            stored_rejections.extend({"line": n, "reason": r} for n, r in rejections[:room])
            changed = list(stored_rejections)
        room = REPORT_REJECTIONS - len(report_rejections)
        report_rejections.extend(Rejection(n, r) for n, r in rejections[: max(room, 0)])
    return _Prepared(
        read=chunk.read,
        rejected=len(rejections),
        duplicate_in_file=duplicates,
        rows=len(rows),
        fingerprints=fingerprints,
        payload=store.encode(rows) if len(rows) else None,
        rejections=changed,
        bytes_done=chunk.bytes_done,
        product_ids=(
            tuple({m[0] for m in metas})
            if metas is not None
            else (product_id,)
            if product_id
            else ()
        ),
    )


# --- storing rows ------------------------------------------------------------------


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
        cur.execute(
            f"INSERT INTO keys ({_PG_COLUMNS}) SELECT {_PG_COLUMNS} FROM {_PG_STAGE} "
            "ON CONFLICT (fingerprint) DO NOTHING"
        )
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
                    f"SELECT count(*) FROM keys WHERE import_batch_id = ? AND fingerprint IN ({marks})",
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
        except BaseException as exc:
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
    except Exception as mark_exc:
        log.error("import batch %s: could not mark it failed: %s", batch_id, _describe(mark_exc))
