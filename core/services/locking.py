"""The row-locking queries, all in one place (STYLE: "Transactions and concurrency").

Every function here runs inside the caller's transaction and never commits: the locks it
takes are held until the caller's ``session_scope()`` ends. Rules they follow:

- Rows are locked in primary-key order, so two transactions locking overlapping sets
  wait for each other instead of deadlocking.
- On PostgreSQL, claims and rotation batches use ``FOR UPDATE SKIP LOCKED``: a row
  another transaction holds is passed over, never waited for and never handed out twice.
- On SQLite, ``FOR UPDATE`` renders as nothing; the guarantee comes from write
  transactions beginning ``IMMEDIATE`` (``core.db``): there is one writer at a time, so
  the claim statement below reads and writes with no other writer in between.

The claim is one statement (``WITH candidates AS MATERIALIZED (SELECT id … LIMIT n FOR
UPDATE SKIP LOCKED) UPDATE keys … FROM candidates … RETURNING …``) served by the partial index ``ix_keys_available``: there is no
gap between choosing keys and taking them, and one round trip per claim.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Update, bindparam, func, literal_column, select, update
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col

from core.models import (
    CryptoPayment,
    Key,
    KeyReport,
    KeyStatus,
    LedgerAccount,
    MailOutbox,
    Order,
    OrderLine,
    Product,
    PromoCode,
    ProviderOffer,
    WebhookEvent,
)

KEYS: Table = Key.__table__  # type: ignore[attr-defined]
ORDER_LINES: Table = OrderLine.__table__  # type: ignore[attr-defined]
OFFERS: Table = ProviderOffer.__table__  # type: ignore[attr-defined]

AVAILABLE = KeyStatus.AVAILABLE.value
RESERVED = KeyStatus.RESERVED.value

#: ``'available'`` written into the SQL, not bound: a partial index is only usable when
#: the planner can see the query's condition implies the index's ``WHERE status =
#: 'available'`` — SQLite never can with a bound parameter, and PostgreSQL cannot in
#: the generic plan of a prepared statement (psycopg prepares a statement after five
#: executions).
_IS_AVAILABLE = KEYS.c.status == literal_column("'available'")

# Built once: only the bound values change between claims, so SQLAlchemy's compiled
# cache serves every call and no statement objects are built per claim.
_LINE_MATCHES = (
    select(ORDER_LINES.c.id)
    .where(
        ORDER_LINES.c.id == bindparam("b_line"),
        ORDER_LINES.c.product_id == bindparam("b_product"),
    )
    .exists()
)
#: The candidates: available keys of the product, oldest (lowest id) first, walked in
#: the partial index ``ix_keys_available (product_id, id) WHERE status = 'available'``.
#: ``product_id BETWEEN :p AND :p`` rather than ``= :p`` is deliberate: with ``=`` the
#: planner treats ``product_id`` as a constant, sees that the primary key alone gives
#: ``ORDER BY id``, and — whenever statistics were taken while most keys were still
#: available — walks the primary key through every key already reserved or delivered
#: (the figures: bench/NOTES.md). With a range, only
#: ``ix_keys_available`` yields ``ORDER BY product_id, id`` without a sort, so it is
#: the plan whatever the statistics say.
_CANDIDATES = (
    select(KEYS.c.id)
    .where(
        KEYS.c.product_id.between(bindparam("b_product"), bindparam("b_product")),
        _IS_AVAILABLE,
        # Keys only ever go to a line of their own product (checked in the same
        # statement: no extra round trip; a mismatch claims nothing).
        _LINE_MATCHES,
    )
    .order_by(KEYS.c.product_id, KEYS.c.id)
    .limit(bindparam("b_quantity"))
    .with_for_update(skip_locked=True)
)

#: Reserve up to ``quantity`` available keys of a product for one order line.
#:
#: The candidates are a ``MATERIALIZED`` CTE, evaluated exactly once: written as
#: ``WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL may plan the
#: subquery as the inner side of a nested loop and re-run it per row, and with SKIP
#: LOCKED each re-run can return other rows — one claim of 1 took 961 keys in the
#: stress test. The outer ``status = 'available'`` repeats the candidates' test, so a
#: row that changed in between (PostgreSQL re-checks the row it updates) is never taken.
_CANDIDATES_CTE = _CANDIDATES.cte("candidates").prefix_with("MATERIALIZED")
CLAIM_STATEMENT = (
    update(KEYS)
    .where(KEYS.c.id == _CANDIDATES_CTE.c.id, _IS_AVAILABLE)
    .values(
        status=RESERVED,
        order_line_id=bindparam("b_line"),
        reserved_at=bindparam("b_now"),
    )
    .returning(KEYS.c.id)
)

_UNCLAIM_STATEMENT = (
    update(KEYS)
    .where(
        KEYS.c.id == bindparam("b_key"),
        KEYS.c.status == RESERVED,
        KEYS.c.order_line_id == bindparam("b_line"),
    )
    .values(status=AVAILABLE, order_line_id=None, reserved_at=None)
)


@functools.lru_cache(maxsize=8)
def _compiled_for(statement: Update, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement's SQL for ``dialect`` and its fixed parameter values, compiled once."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def claim_available(
    session: Session, *, product_id: int, quantity: int, line_id: int, now: datetime
) -> list[uuid.UUID]:
    """Reserve up to ``quantity`` available keys of ``product_id`` for ``line_id``, oldest
    first, and return their ids in id order (possibly fewer than asked; the caller
    decides what a shortfall means). One statement, one round trip, no ORM objects.
    Runs in the caller's transaction, never commits; the rows stay locked until it ends.

    On PostgreSQL the statement, compiled once, goes straight to the session's own
    psycopg connection — the same connection and transaction — skipping SQLAlchemy's
    per-execution work (what it cost: bench/NOTES.md). The parameters need no conversion
    there (integers and an aware UTC datetime). SQLite, a single writer, takes the
    ordinary path.
    """
    params = {"b_product": product_id, "b_quantity": quantity, "b_line": line_id, "b_now": now}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        sql, fixed = _compiled_for(CLAIM_STATEMENT, conn.dialect)
        driver = conn.connection.driver_connection
        assert driver is not None
        rows = driver.execute(sql, {**fixed, **params}).fetchall()
    else:
        rows = conn.execute(CLAIM_STATEMENT, params).all()
    return sorted(row[0] for row in rows)


def unclaim(session: Session, *, line_id: int, key_ids: Sequence[uuid.UUID]) -> None:
    """Undo :func:`claim_available` for keys this transaction just reserved (still locked
    by it, so nobody else has seen them reserved). Never commits."""
    if key_ids:
        session.connection().execute(
            _UNCLAIM_STATEMENT, [{"b_key": k, "b_line": line_id} for k in key_ids]
        )


def unreserve_order_keys(session: Session, *, order_id: int) -> list[int]:
    """Put every key still ``reserved`` for a line of the order back in stock
    (``available``, line and ``reserved_at`` cleared) in one statement, and return the
    products they belong to (one entry per key). Keys already delivered are left alone.
    The statement locks the rows it changes; on PostgreSQL a row a concurrent
    transaction changed first is re-checked, so a key is never taken from another line.
    Never commits."""
    lines = select(ORDER_LINES.c.id).where(ORDER_LINES.c.order_id == order_id)
    statement = (
        update(KEYS)
        .where(KEYS.c.order_line_id.in_(lines.scalar_subquery()), KEYS.c.status == RESERVED)
        .values(status=AVAILABLE, order_line_id=None, reserved_at=None)
        .returning(KEYS.c.product_id)
    )
    return [int(row[0]) for row in session.connection().execute(statement)]


def lock_offers(session: Session, *, product_ids: Sequence[int]) -> list[int]:
    """Lock the provider offers mapped to these products (``FOR UPDATE``, primary-key
    order) and return their ids: while a checkout counts free offer units and writes its
    hold, no other checkout counts the same offers (SQLite: the single writer). Never
    commits."""
    if not product_ids:
        return []
    query = (
        select(OFFERS.c.id)
        .where(OFFERS.c.product_id.in_(sorted(set(product_ids))))
        .order_by(OFFERS.c.id)
        .with_for_update()
    )
    return [int(row[0]) for row in session.connection().execute(query)]


def lock_keys(session: Session, key_ids: Sequence[uuid.UUID]) -> list[Key]:
    """Load and lock the given keys (``FOR UPDATE``, primary-key order), refreshed from
    the database. Missing ids are simply absent from the result. Never commits."""
    if not key_ids:
        return []
    query = (
        select(Key)
        .where(KEYS.c.id.in_(sorted(set(key_ids))))
        .order_by(KEYS.c.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def lock_key(session: Session, key_id: uuid.UUID) -> Key | None:
    """Load and lock one key (``FOR UPDATE``), refreshed from the database."""
    found = lock_keys(session, [key_id])
    return found[0] if found else None


def lock_line_keys(session: Session, *, line_id: int, status: str) -> list[Key]:
    """Load and lock the keys of one order line in one status, primary-key order."""
    query = (
        select(Key)
        .where(KEYS.c.order_line_id == line_id, KEYS.c.status == status)
        .order_by(KEYS.c.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def lock_order_line(session: Session, line_id: int) -> OrderLine | None:
    """Load and lock one order line (``FOR UPDATE``): serialises manual assignments to
    the same line, so two operators cannot over-fill it. Never commits."""
    query = (
        select(OrderLine)
        .where(ORDER_LINES.c.id == line_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


def count_line_keys(session: Session, *, line_id: int, statuses: Sequence[str]) -> int:
    """How many keys of a line are in the given statuses (inside the caller's lock)."""
    query = (
        select(func.count())
        .select_from(KEYS)
        .where(KEYS.c.order_line_id == line_id, KEYS.c.status.in_(list(statuses)))
    )
    return int(session.connection().execute(query).scalar_one())


def lock_rotation_batch(
    session: Session, *, active_id: int, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, int, bytes]]:
    """The next ``limit`` keys (by id, after ``after``) not encrypted under keyring entry
    ``active_id``, locked ``FOR UPDATE SKIP LOCKED``: keys a claim or reveal holds right
    now are passed over (a later pass or run picks them up) so rotation never blocks
    fulfilment. Returns (id, key_version, ciphertext) rows. Never commits."""
    query = select(KEYS.c.id, KEYS.c.key_version, KEYS.c.ciphertext).where(
        KEYS.c.key_version != active_id
    )
    if after is not None:
        query = query.where(KEYS.c.id > after)
    query = query.order_by(KEYS.c.id).limit(limit).with_for_update(skip_locked=True)
    return [(r[0], r[1], r[2]) for r in session.connection().execute(query)]


def lock_unprocessed_webhooks(
    session: Session, *, received_before: datetime, limit: int = 500
) -> list[WebhookEvent]:
    """Authenticated webhooks still unprocessed and received before ``received_before``,
    oldest first, locked ``FOR UPDATE SKIP LOCKED``: a row a worker is acting on right now
    (its claim holds the row) is passed over, never waited for. Never commits."""
    query = (
        select(WebhookEvent)
        .where(
            WebhookEvent.__table__.c.processed_at.is_(None),  # type: ignore[attr-defined]
            WebhookEvent.__table__.c.authenticated.is_(True),  # type: ignore[attr-defined]
            WebhookEvent.__table__.c.received_at < received_before,  # type: ignore[attr-defined]
        )
        .order_by(WebhookEvent.__table__.c.id)  # type: ignore[attr-defined]
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


_MAIL_OUTBOX: Table = MailOutbox.__table__  # type: ignore[attr-defined]
_DUE_MAIL = (
    select(_MAIL_OUTBOX.c.id, _MAIL_OUTBOX.c.order_id, _MAIL_OUTBOX.c.kind)
    .add_columns(_MAIL_OUTBOX.c.ref, _MAIL_OUTBOX.c.attempts)
    .where(_MAIL_OUTBOX.c.due_at <= bindparam("at"))
    .order_by(_MAIL_OUTBOX.c.due_at, _MAIL_OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def take_due_mail(session: Session, *, at: datetime, limit: int) -> list[Any]:
    """Up to ``limit`` order e-mails due at ``at`` (``mail_outbox`` rows: id, order_id,
    kind, ref, attempts), oldest first, locked ``FOR UPDATE SKIP LOCKED``: rows another
    batch is taking right now are passed over, never waited for. The caller moves their
    ``due_at`` past the batch in the same transaction. Never commits."""
    return list(session.execute(_DUE_MAIL, {"at": at, "limit": limit}).all())


def lock_crypto_payment(
    session: Session, *, provider: str, payment_id: str
) -> CryptoPayment | None:
    """Load and lock one crypto payment's row (``FOR UPDATE``): IPNs and status lookups
    of the same payment update it one at a time. Never commits."""
    return session.scalars(
        select(CryptoPayment)
        .where(
            col(CryptoPayment.provider) == provider,
            col(CryptoPayment.payment_id) == payment_id,
        )
        .with_for_update()
    ).first()


def lock_key_report(session: Session, report_id: int) -> KeyReport | None:
    """Load and lock one faulty-key report (``FOR UPDATE``), refreshed from the database:
    two operators resolving the same report are serialised. Never commits."""
    return session.get(KeyReport, report_id, with_for_update=True, populate_existing=True)


def lock_product_by_slug(session: Session, slug: str) -> Product | None:
    """Load and lock one product by slug (``FOR UPDATE``): two changes that each replace
    what the other read (a cover upload and its clean-up) are serialised. Never commits."""
    return session.scalars(
        select(Product).where(col(Product.slug) == slug).with_for_update()
    ).first()


def lock_products_for_flags(conn: Any, product_ids: Sequence[int]) -> None:
    """Lock the products' rows ``FOR NO KEY UPDATE`` in id order (PostgreSQL) before their
    stock flags are recomputed: it waits only for another refresh of the same products
    (key inserts and claims take no such lock). ``conn`` is a Connection of the caller's
    transaction. Never commits."""
    products = Product.__table__  # type: ignore[attr-defined]
    conn.execute(
        select(products.c.id)
        .where(products.c.id.in_(sorted(product_ids)))
        .order_by(products.c.id)
        .with_for_update(key_share=True)
    ).all()


def take_promo_use(session: Session, promo_id: int) -> bool:
    """Count one more use of a promo code, unless it is used up: one conditional
    ``UPDATE promo_codes SET uses = uses + 1 WHERE id = :id AND (max_uses IS NULL OR
    uses < max_uses)``. On PostgreSQL a second checkout's UPDATE waits for the first's
    row lock and then re-reads ``uses`` (READ COMMITTED re-checks the condition on the
    newest row), so a code is never used more than ``max_uses`` times; the lock is held
    until the caller's transaction ends, which also serialises the per-customer count
    that follows. SQLite: one writer at a time. False: used up. Never commits."""
    codes = PromoCode.__table__  # type: ignore[attr-defined]
    result = session.execute(
        update(codes)
        .where(
            codes.c.id == promo_id,
            (codes.c.max_uses.is_(None)) | (codes.c.uses < codes.c.max_uses),
        )
        .values(uses=codes.c.uses + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def raise_refunded(session: Session, order_id: int, amount_minor: int) -> bool:
    """Record that ``amount_minor`` of an order has been refunded so far, unless as much
    or more is recorded already: one conditional ``UPDATE orders SET refunded_minor =
    :amount WHERE id = :id AND refunded_minor < :amount``. Refund events carry the
    running total, so events that arrive late, twice or concurrently record the largest
    once (the row lock serialises them; READ COMMITTED re-checks the condition). False:
    nothing to record. Never commits."""
    orders = Order.__table__  # type: ignore[attr-defined]
    result = session.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.refunded_minor < amount_minor)
        .values(refunded_minor=amount_minor)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def give_back_promo_use(session: Session, promo_id: int) -> None:
    """One use of a promo code back (its order was cancelled or expired unpaid); never
    below zero. Takes the code's row lock until the caller's transaction ends. Never
    commits."""
    codes = PromoCode.__table__  # type: ignore[attr-defined]
    session.execute(
        update(codes)
        .where(codes.c.id == promo_id, codes.c.uses > 0)
        .values(uses=codes.c.uses - 1)
        .execution_options(synchronize_session=False)
    )


def locking_the_order(statement: Any) -> Any:
    """``statement`` (a read of the ``orders`` table) taking the order's row lock
    (``FOR UPDATE OF orders``): fulfilment's fast path reads the order and its lines in
    one statement and holds the order while it delivers."""
    return statement.with_for_update(of=Order.__table__)  # type: ignore[attr-defined]


def lock_ledger_accounts(session: Session, account_ids: Sequence[int]) -> None:
    """Lock ledger accounts (``FOR UPDATE``, primary-key order) so that reading a balance
    and moving money out of it is one step for every other transaction: two checkouts
    spending the same gift card or the same credit wait for each other. Never commits."""
    if not account_ids:
        return
    accounts = LedgerAccount.__table__  # type: ignore[attr-defined]
    session.execute(
        select(accounts.c.id)
        .where(accounts.c.id.in_(sorted(set(account_ids))))
        .order_by(accounts.c.id)
        .with_for_update()
    ).all()
