"""A parsed batch made ready to store, in the calling thread: product slugs looked up,
costs in minor units, duplicates within the batch dropped (the first line of a code is
kept), codes fingerprinted and encrypted a column at a time."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.crypto import KeyVault
from core.db import session_scope
from core.models import Product
from core.models.base import new_uuids
from core.services.importer.parse import (
    UNKNOWN_PRODUCT,
    Rejection,
    _Chunk,
    _minor_units,
    bad_cost_precision,
)

if TYPE_CHECKING:
    from core.services.importer.stores import _Store

REPORT_REJECTIONS = 20  # rejections listed in the ImportReport
STORED_REJECTIONS = 100  # rejections kept in ImportBatch.rejections


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
                    rejections.append((number, bad_cost_precision(currency)))
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
