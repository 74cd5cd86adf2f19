"""Inventory: claiming keys for order lines, releasing, delivering, revoking, stock counts.

Every function here runs inside the caller's transaction and **never commits**: the
use case that calls it (fulfilment, refund, an operator action) owns the transaction
through ``core.db.session_scope()``, so a claim, its delivery and the audit event land
together or not at all. The row-locking queries themselves live in
:mod:`core.services.locking`.

Key statuses (DESIGN §3): ``available → reserved → delivered``, plus ``revoked`` and
``faulty``. Invariant 1 — a key is delivered to at most one order line — rests on the
claim statement: one ``UPDATE … RETURNING`` that takes only rows still ``available``,
under ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and inside a ``BEGIN IMMEDIATE``
transaction on SQLite. The one way a key leaves a line again is :func:`revoke_key`
with ``to_stock=True`` for a key that was never revealed and came from our own stock
(DESIGN §5.5); the audit trail keeps that history.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from core import crypto, metrics
from core.config import get_settings
from core.errors import (
    DuplicateKey,
    InsufficientStock,
    InvalidInput,
    InvalidKeyState,
    NotFound,
    UnknownProduct,
)
from core.models import Key, KeyStatus, OrderLine, Product, new_uuid, utcnow
from core.services import giftcards, locking
from core.services.audit import Actor, record_audit
from core.services.catalogue import note_stock_changed
from core.services.low_stock import LowStock, is_low_stock, low_stock_products

KS = KeyStatus

__all__ = [
    "ClaimedKey",
    "LowStock",
    "StockCount",
    "add_keys",
    "assign_key_manually",
    "claim_for_lines",
    "claim_keys",
    "is_low_stock",
    "low_stock_products",
    "mark_delivered",
    "mark_faulty",
    "release_keys",
    "revoke_key",
    "stock_counts",
]


# -- claiming ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    """A key just reserved for an order line: what the claim statement knows, without
    loading the ORM row (claims are the hot path; fulfilment goes on with
    :func:`mark_delivered`, which loads the keys it changes). ``load`` gives the
    ``Key`` when a caller needs the full row."""

    id: uuid.UUID
    product_id: int
    order_line_id: int
    reserved_at: datetime
    status: str = KeyStatus.RESERVED.value

    def load(self, session: Session) -> Key:
        key = session.get(Key, self.id, populate_existing=True)
        assert key is not None  # reserved by this transaction: it exists
        return key


def _check_line(session: Session, *, line_id: int, product_id: int) -> None:
    """Explain a claim that took nothing: the line is missing or sells another product.
    Only called on the failure path, so a successful claim costs one round trip."""
    line = session.get(OrderLine, line_id)
    if line is None:
        raise NotFound(f"order line {line_id} does not exist", line_id=line_id)
    if line.product_id != product_id:
        raise InvalidInput(
            f"order line {line_id} sells product {line.product_id}, not {product_id}",
            line_id=line_id,
            product_id=product_id,
        )


def _shortfall_error(shortfalls: dict[int, dict[str, int]]) -> InsufficientStock:
    parts = ", ".join(
        f"product {pid}: asked {s['requested']}, {s['available']} available"
        for pid, s in sorted(shortfalls.items())
    )
    return InsufficientStock(
        f"not enough keys in stock ({parts})",
        shortfalls={pid: s["requested"] - s["available"] for pid, s in shortfalls.items()},
        details=[{"product_id": pid, **s} for pid, s in sorted(shortfalls.items())],
    )


def _undo_claims(session: Session, claims: dict[int, list[ClaimedKey]]) -> None:
    for line_id, keys in claims.items():
        locking.unclaim(session, line_id=line_id, key_ids=[k.id for k in keys])
        _expire_cached(session, (k.id for k in keys))


def _count_claims(session: Session, count: int) -> None:
    if count:
        metrics.after_commit(session, lambda: metrics.KEYS_CLAIMED.inc(count))


def _claim(session: Session, *, product_id: int, quantity: int, line_id: int) -> list[ClaimedKey]:
    now = utcnow()
    ids = locking.claim_available(
        session, product_id=product_id, quantity=quantity, line_id=line_id, now=now
    )
    if len(ids) < quantity:  # sold out: products.in_stock is refreshed at commit
        note_stock_changed(session=session, product_ids=(product_id,))
    _expire_cached(session, ids)
    return [ClaimedKey(i, product_id, line_id, now) for i in ids]


def _expire_cached(session: Session, key_ids: Iterable[uuid.UUID]) -> None:
    """The claim changes rows with a Core statement: expire any of them this session had
    loaded, so it reads them fresh (nothing to do, and no cost, in the usual case)."""
    if not len(session.identity_map):
        return
    for key_id in key_ids:
        cached = session.identity_map.get(identity_key(Key, key_id))
        if cached is not None:
            session.expire(cached)


def claim_keys(
    *,
    session: Session,
    product_id: int,
    quantity: int,
    line_id: int,
    allow_partial: bool = False,
) -> list[ClaimedKey]:
    """Reserve ``quantity`` available keys of ``product_id`` for order line ``line_id``
    (``available → reserved``, ``order_line_id`` and ``reserved_at`` set), oldest first,
    and return them in id order as :class:`ClaimedKey` (id, product, line, time; its
    ``load(session)`` gives the ``Key`` row). Lightweight on purpose: one ``UPDATE …
    RETURNING id`` and no ORM loading, because this is the hot path under load.

    All or nothing: when fewer than ``quantity`` are available, raises
    :class:`InsufficientStock` (``data["shortfalls"] = {product_id: missing}``) and
    leaves no key reserved — the keys the statement did take are put back before raising,
    so the caller's transaction is as it was (its row locks stay until it ends). With
    ``allow_partial=True`` it returns what there was instead (possibly nothing), for
    fulfilment that buys the rest from a provider.

    Runs inside the caller's transaction and never commits; the claimed rows stay locked
    until the caller commits. On PostgreSQL concurrent claimers skip each other's rows
    (``FOR UPDATE SKIP LOCKED``) instead of queueing; on SQLite the caller's
    ``BEGIN IMMEDIATE`` transaction makes it the only writer.
    """
    if quantity < 1:
        raise InvalidInput("quantity must be at least 1", quantity=quantity)
    keys = _claim(session, product_id=product_id, quantity=quantity, line_id=line_id)
    if len(keys) == quantity:
        _count_claims(session, quantity)
        return keys
    if not keys:
        _check_line(session, line_id=line_id, product_id=product_id)
    if allow_partial:
        _count_claims(session, len(keys))
        return keys
    _undo_claims(session, {line_id: keys})
    raise _shortfall_error({product_id: {"requested": quantity, "available": len(keys)}})


def claim_for_lines(
    *, session: Session, requests: Sequence[tuple[int, int, int]]
) -> dict[int, list[ClaimedKey]]:
    """Claim keys for several order lines at once: ``requests`` holds
    ``(line_id, product_id, quantity)``. Returns ``{line_id: [ClaimedKey, ...]}``.

    Claims in product-id order (then line id), so concurrent multi-line claims take
    their locks in one global order. Every shortfall is collected before one
    :class:`InsufficientStock` is raised (``data["shortfalls"] = {product_id: missing}``,
    ``data["details"]`` with requested/available per product); in that case nothing
    stays reserved. Runs inside the caller's transaction and never commits.
    """
    for line_id, _product_id, quantity in requests:
        if quantity < 1:
            raise InvalidInput("quantity must be at least 1", line_id=line_id, quantity=quantity)
    if len({r[0] for r in requests}) != len(requests):
        raise InvalidInput("an order line appears twice in one claim")
    claims: dict[int, list[ClaimedKey]] = {}
    asked: dict[int, dict[str, int]] = defaultdict(lambda: {"requested": 0, "available": 0})
    for line_id, product_id, quantity in sorted(requests, key=lambda r: (r[1], r[0])):
        keys = _claim(session, product_id=product_id, quantity=quantity, line_id=line_id)
        if not keys:
            _check_line(session, line_id=line_id, product_id=product_id)
        claims[line_id] = keys
        asked[product_id]["requested"] += quantity
        asked[product_id]["available"] += len(keys)
    shortfalls = {pid: s for pid, s in asked.items() if s["available"] < s["requested"]}
    if shortfalls:
        _undo_claims(session, claims)
        raise _shortfall_error(shortfalls)
    _count_claims(session, sum(len(keys) for keys in claims.values()))
    return claims


def release_keys(
    *, session: Session, line_id: int, key_ids: Sequence[uuid.UUID] | None = None
) -> int:
    """Put reserved keys of a line back in stock (``reserved → available``, line and
    ``reserved_at`` cleared) and return how many. With ``key_ids``, exactly those keys,
    each of which must be reserved for this line (else :class:`InvalidKeyState` and
    nothing changes). Delivered keys are never released: use :func:`revoke_key`.
    Runs inside the caller's transaction and never commits."""
    if key_ids is None:
        keys = locking.lock_line_keys(session, line_id=line_id, status=KS.RESERVED)
    else:
        wanted = set(key_ids)
        keys = locking.lock_keys(session, list(wanted))
        wrong = sorted(
            str(k.id) for k in keys if k.status != KS.RESERVED or k.order_line_id != line_id
        )
        missing = sorted(str(k) for k in wanted - {k.id for k in keys})
        if wrong or missing:
            raise InvalidKeyState(
                f"{len(wrong) + len(missing)} of the keys are not reserved for line {line_id}",
                line_id=line_id,
                key_ids=wrong + missing,
            )
    for key in keys:
        key.status = KS.AVAILABLE
        key.order_line_id = None
        key.reserved_at = None
    session.flush()
    return len(keys)


def mark_delivered(*, session: Session, line_id: int) -> list[Key]:
    """Deliver the keys reserved for a line (``reserved → delivered``, ``delivered_at``
    set) and return them; an empty list when none are reserved (so a retried fulfilment
    step is harmless). Runs inside the caller's transaction and never commits."""
    keys = locking.lock_line_keys(session, line_id=line_id, status=KS.RESERVED)
    now = utcnow()
    for key in keys:
        key.status = KS.DELIVERED
        key.delivered_at = now
    session.flush()
    if keys:
        giftcards.activate_delivered(session=session, line_ids=[line_id])
    return keys


def deliver_lines(*, session: Session, line_ids: Sequence[int]) -> int:
    """Deliver every key reserved for these lines in one statement (the keys stay locked
    by the caller's claim until it commits); returns how many. Runs inside the caller's
    transaction and never commits."""
    if not line_ids:
        return 0
    session.flush()  # the caller's pending changes first (no ORM layer on this statement)
    result = session.connection().execute(_DELIVER, {"line_ids": list(line_ids), "now": utcnow()})
    delivered = int(result.rowcount or 0)
    if delivered:
        giftcards.activate_delivered(session=session, line_ids=line_ids)
    return delivered


# Built once, on the table (not the ORM entity): the hot path's delivery statement.
_DELIVER = (
    sa_update(locking.KEYS)
    .where(
        locking.KEYS.c.order_line_id.in_(bindparam("line_ids", expanding=True)),
        locking.KEYS.c.status == KS.RESERVED.value,
    )
    .values(status=KS.DELIVERED.value, delivered_at=bindparam("now"))
)


# -- operator actions -------------------------------------------------------------------


def _locked_key(session: Session, key_id: uuid.UUID) -> Key:
    key = locking.lock_key(session, key_id)
    if key is None:
        raise NotFound(f"key {key_id} does not exist", key_id=str(key_id))
    return key


def revoke_key(
    *,
    session: Session,
    key_id: uuid.UUID,
    actor: Actor,
    reason: str,
    to_stock: bool = False,
) -> Key:
    """Take a key away from its line (refund, dispute, fraud) and record ``key.revoke``.

    - ``to_stock=True``: a key that was never revealed and came from our own stock (not
      bought from a provider for this order) goes back to ``available`` with its line
      cleared — the customer never saw it. A revealed key, or one a provider sold us,
      cannot: :class:`InvalidKeyState`.
    - otherwise the key becomes ``revoked`` (``revoked_at``, ``status_note`` = reason),
      keeping its line for the record. A revealed key can be revoked (the customer knows
      it; the audit data says so), it just never returns to stock.

    Revoked and faulty keys cannot be revoked again. Runs inside the caller's
    transaction and never commits.
    """
    key = _locked_key(session, key_id)
    before = key.status
    if before in (KS.REVOKED, KS.FAULTY):
        raise InvalidKeyState(f"key {key.id} is {before}", key_id=str(key.id), status=before)
    line_id = key.order_line_id
    if to_stock:
        if before == KS.AVAILABLE:
            raise InvalidKeyState(
                f"key {key.id} is already in stock", key_id=str(key.id), status=before
            )
        if key.revealed_at is not None:
            raise InvalidKeyState(
                f"key {key.id} was revealed to the customer; it cannot go back to stock",
                key_id=str(key.id),
                status=before,
            )
        if key.provider_purchase_id is not None:
            raise InvalidKeyState(
                f"key {key.id} was bought from a provider for an order; it cannot go to stock",
                key_id=str(key.id),
                status=before,
            )
        key.status = KS.AVAILABLE
        key.order_line_id = None
        key.reserved_at = None
        key.delivered_at = None
        key.status_note = reason[:500] or None
    else:
        key.status = KS.REVOKED
        key.revoked_at = utcnow()
        key.status_note = reason[:500] or None
    session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="key.revoke",
        object_type="key",
        object_id=str(key.id),
        data={
            "reason": reason,
            "from_status": before,
            "to_status": key.status,
            "order_line_id": line_id,
            "to_stock": to_stock,
            "revealed": key.revealed_at is not None,
        },
    )
    return key


def mark_faulty(*, session: Session, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    """Quarantine a key that does not work (``faulty``, ``status_note`` = reason) and
    record ``key.faulty``. It keeps its line, so the customer's replacement and the
    claim against the supplier can refer to it. Runs inside the caller's transaction
    and never commits."""
    key = _locked_key(session, key_id)
    before = key.status
    if before == KS.FAULTY:
        raise InvalidKeyState(f"key {key.id} is already faulty", key_id=str(key.id), status=before)
    key.status = KS.FAULTY
    key.status_note = reason[:500] or None
    session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="key.faulty",
        object_type="key",
        object_id=str(key.id),
        data={"reason": reason, "from_status": before, "order_line_id": key.order_line_id},
    )
    return key


def assign_key_manually(*, session: Session, key_id: uuid.UUID, line_id: int, actor: Actor) -> Key:
    """An operator hands a specific available key to an order line (``available →
    delivered``) and ``key.assign`` is recorded. Refused (:class:`InvalidKeyState` /
    :class:`InvalidInput`) for a key that is not available, a key of another product
    than the line's, or a line that already has its quantity of reserved or delivered
    keys. The line is locked first (then the key), so two operators cannot over-fill
    it. Runs inside the caller's transaction and never commits."""
    line = locking.lock_order_line(session, line_id)
    if line is None:
        raise NotFound(f"order line {line_id} does not exist", line_id=line_id)
    key = _locked_key(session, key_id)
    if key.status != KS.AVAILABLE:
        raise InvalidKeyState(
            f"key {key.id} is {key.status}, not available", key_id=str(key.id), status=key.status
        )
    if key.product_id != line.product_id:
        raise InvalidInput(
            f"key {key.id} is for product {key.product_id}; line {line_id} sells "
            f"product {line.product_id}",
            key_id=str(key.id),
            line_id=line_id,
        )
    held = locking.count_line_keys(session, line_id=line_id, statuses=[KS.RESERVED, KS.DELIVERED])
    if held >= line.quantity:
        raise InvalidKeyState(
            f"order line {line_id} already has its {line.quantity} key(s)",
            line_id=line_id,
            quantity=line.quantity,
        )
    now = utcnow()
    key.status = KS.DELIVERED
    key.order_line_id = line_id
    key.reserved_at = now
    key.delivered_at = now
    session.flush()
    giftcards.activate_delivered(session=session, line_ids=[line_id])
    record_audit(
        session=session,
        actor=actor,
        action="key.assign",
        object_type="key",
        object_id=str(key.id),
        data={"order_line_id": line_id, "order_id": line.order_id},
    )
    return key


# -- stock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockCount:
    available: int = 0
    reserved: int = 0
    delivered: int = 0
    revoked: int = 0
    faulty: int = 0

    @property
    def total(self) -> int:
        return self.available + self.reserved + self.delivered + self.revoked + self.faulty


def stock_counts(
    *, session: Session, product_ids: Iterable[int] | None = None
) -> dict[int, StockCount]:
    """Keys per status per product, in one grouped query. Products asked for by id
    appear even with no keys (all zero); without ``product_ids``, every product that
    has keys. Read-only."""
    keys = locking.KEYS
    query = select(keys.c.product_id, keys.c.status, func.count()).group_by(
        keys.c.product_id, keys.c.status
    )
    wanted = None if product_ids is None else sorted(set(product_ids))
    if wanted is not None:
        if not wanted:
            return {}
        query = query.where(keys.c.product_id.in_(wanted))
    counts: dict[int, dict[str, int]] = {pid: {} for pid in wanted or []}
    for product_id, status, n in session.connection().execute(query):
        if status in StockCount.__dataclass_fields__:
            counts.setdefault(product_id, {})[status] = int(n)
    return {pid: StockCount(**c) for pid, c in counts.items()}


def add_keys(
    *,
    session: Session,
    product_id: int,
    codes: Iterable[str],
    supplier: str | None = None,
    cost_minor: int | None = None,
    cost_currency: str | None = None,
    provider_purchase_id: int | None = None,
) -> list[Key]:
    """Add a few keys to stock (provider deliveries, tests; bulk files go through the
    importer), encrypted under the active keyring entry with their row id as associated
    data. Codes are stripped; an empty or over-long code is :class:`InvalidInput`. A
    code already in stock, or twice in ``codes``, is :class:`DuplicateKey` naming its
    position(s) in ``codes`` — never the code — and nothing is added.

    Runs inside the caller's transaction and never commits. If a concurrent transaction
    inserts the same code first, the unique fingerprint index turns the flush into
    :class:`DuplicateKey` and the caller must roll back.
    """
    if session.get(Product, product_id) is None:
        raise UnknownProduct(f"product {product_id} does not exist", product_id=product_id)
    if cost_currency is not None and (len(cost_currency) != 3 or not cost_currency.isalpha()):
        raise InvalidInput("cost_currency must be a three-letter ISO code")
    max_len = get_settings().max_key_length
    vault = crypto.get_vault()
    cleaned: list[str] = []
    for n, code in enumerate(codes):
        text = code.strip()
        if not text or not crypto.normalise_code(text):
            raise InvalidInput(f"code #{n + 1} is empty", position=n)
        if len(text) > max_len:
            raise InvalidInput(f"code #{n + 1} is longer than {max_len} characters", position=n)
        cleaned.append(text)
    if not cleaned:
        return []
    prints = [vault.fingerprint(c) for c in cleaned]
    first_at: dict[bytes, int] = {}
    repeated: list[int] = []
    for n, fp in enumerate(prints):
        if fp in first_at:
            repeated.append(n)
        else:
            first_at[fp] = n
    if repeated:
        raise DuplicateKey(
            f"{len(repeated)} code(s) appear twice in this delivery", positions=repeated
        )
    existing: set[bytes] = set()
    keys_table = locking.KEYS
    for start in range(0, len(prints), 500):
        chunk = prints[start : start + 500]
        existing.update(
            session.connection()
            .execute(select(keys_table.c.fingerprint).where(keys_table.c.fingerprint.in_(chunk)))
            .scalars()
        )
    if existing:
        positions = [n for n, fp in enumerate(prints) if fp in existing]
        raise DuplicateKey(f"{len(positions)} code(s) are already in stock", positions=positions)
    extra: dict[str, Any] = {
        "supplier": supplier,
        "cost_minor": cost_minor,
        "cost_currency": cost_currency.upper() if cost_currency else None,
        "provider_purchase_id": provider_purchase_id,
    }
    rows: list[Key] = []
    for code, fp in zip(cleaned, prints, strict=True):
        row_id = new_uuid()
        version, blob = vault.encrypt(code.encode("utf-8"), row_id=row_id)
        rows.append(
            Key(
                id=row_id,
                product_id=product_id,
                status=KS.AVAILABLE,
                ciphertext=blob,
                key_version=version,
                fingerprint=fp,
                **extra,
            )
        )
    session.add_all(rows)
    try:
        session.flush()
    except IntegrityError as exc:
        if "fingerprint" not in str(exc.orig).lower():
            raise
        raise DuplicateKey(
            "a code was added to stock by someone else at the same moment; roll back and retry"
        ) from None
    return rows
