"""The stock summary ``products.in_stock``: an own key available, or a mapped provider
offer with stock. Kept exact by :func:`refresh_stock_flags` in the transaction that
changes keys or offers; ORM changes are noticed by session events installed when this
module is imported, Core statements report theirs with :func:`note_stock_changed`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    event,
    exists,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from core.models import Key, KeyStatus, ProviderOffer
from core.services import locking
from core.services.catalogue.products import _KEY_AVAILABLE, keys_table, offers, products


def _in_stock_condition() -> ColumnElement[bool]:
    """What ``products.in_stock`` summarises: an own key with status ``available``, or a
    mapped provider offer with stock > 0 (each one probe of a partial index)."""
    own = exists().where(keys_table.c.product_id == products.c.id, text(_KEY_AVAILABLE))
    provider = exists().where(offers.c.product_id == products.c.id, offers.c.stock > 0)
    return or_(own, provider)


# -- stock summary (products.in_stock) ---------------------------------------------

#: Where a session collects the products whose stock changed in its transaction.
_STOCK_TOUCHED: Final = "keyshop.catalogue.stock_touched"
_AVAILABLE: Final = KeyStatus.AVAILABLE.value
_REFRESH_CHUNK: Final = 1000


def refresh_stock_flags(
    *, session: Session | Connection, product_ids: Iterable[int] | None = None
) -> int:
    """Recompute ``products.in_stock`` for these products (None: every product whose
    flag differs from its keys and offers) and return how many flags changed.

    Runs inside the caller's transaction (a Session or a Core Connection) and never
    commits; call it after the transaction's last change to keys or offers. It is
    exact under concurrency: on PostgreSQL it first locks the products' rows (``FOR NO
    KEY UPDATE``, id order; key inserts and claims take no such lock, so it waits only
    for another refresh of the same products) and then recomputes in a new statement,
    whose snapshot sees every transaction that refreshed these products before it. So
    the last transaction to commit a change to a product's keys or offers writes a flag
    that counts every committed change. SQLite has one writer at a time.
    """
    conn = session.connection() if isinstance(session, OrmSession) else session
    truth = _in_stock_condition()
    if product_ids is None:
        stale = select(products.c.id).where(products.c.in_stock != truth).order_by(products.c.id)
        ids = list(conn.execute(stale).scalars())
    else:
        ids = sorted({int(pid) for pid in product_ids})
    postgres = conn.dialect.name == "postgresql"
    changed = 0
    for start in range(0, len(ids), _REFRESH_CHUNK):
        chunk = ids[start : start + _REFRESH_CHUNK]
        if postgres:
            locking.lock_products_for_flags(conn, chunk)
        result = conn.execute(
            products.update()
            .where(products.c.id.in_(chunk), products.c.in_stock != truth)
            .values(in_stock=truth)
        )
        changed += result.rowcount
    return changed


def note_stock_changed(*, session: Session, product_ids: Iterable[int]) -> None:
    """Record that keys or offers of these products changed in the session's
    transaction through SQL the ORM does not see (claims are Core statements). Their
    ``in_stock`` flags are refreshed once, by :func:`refresh_stock_flags`, just before
    the transaction commits. No SQL until then.

    Changes made through ORM objects (a ``Key`` whose status moves to or from
    ``available``, a new available ``Key``, a ``ProviderOffer`` whose stock or product
    changes) are noticed without this call, by the session events below.
    """
    session.info.setdefault(_STOCK_TOUCHED, set()).update(product_ids)


def _moved_from(session: OrmSession, obj: Key | ProviderOffer, table: Table) -> list[int]:
    """The product a key or offer is being moved away from (None when it is not)."""
    moved = inspect(obj).attrs.product_id.history
    if not moved.has_changes():
        return []
    if moved.deleted:
        return [pid for pid in moved.deleted if pid is not None]
    # The old value was not loaded (an expired object): the row still holds it.
    old = session.connection().execute(
        select(table.c.product_id).where(table.c.id == inspect(obj).identity[0])
    )
    return [pid for pid in old.scalars() if pid is not None]


def _key_touches(session: OrmSession, key: Key, new: bool) -> list[int]:
    if new:
        return [key.product_id] if key.status == _AVAILABLE else []
    status = inspect(key).attrs.status.history
    moved_from = _moved_from(session, key, keys_table)
    if moved_from:
        return [key.product_id, *moved_from]
    if not status.has_changes():
        return []
    if status.deleted and _AVAILABLE not in status.added and _AVAILABLE not in status.deleted:
        return []  # e.g. reserved → delivered: availability did not change
    return [key.product_id]


def _offer_touches(session: OrmSession, offer: ProviderOffer, new: bool) -> list[int]:
    if new:
        return [offer.product_id] if offer.product_id is not None and offer.stock > 0 else []
    moved_from = _moved_from(session, offer, offers)
    state = inspect(offer).attrs
    # an offer mapped for the first time moves from no product: still a change
    if not state.product_id.history.has_changes() and not state.stock.history.has_changes():
        return []
    return [pid for pid in (offer.product_id, *moved_from) if pid is not None]


def _note_flushed_stock(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Collect, before each flush, the products whose availability the flush changes."""
    touched: list[int] = []
    for obj in session.new:
        if isinstance(obj, Key):
            touched += _key_touches(session, obj, True)
        elif isinstance(obj, ProviderOffer):
            touched += _offer_touches(session, obj, True)
    for obj in session.dirty:
        if isinstance(obj, Key):
            touched += _key_touches(session, obj, False)
        elif isinstance(obj, ProviderOffer):
            touched += _offer_touches(session, obj, False)
    for obj in session.deleted:
        if isinstance(obj, (Key, ProviderOffer)) and obj.product_id is not None:
            touched.append(obj.product_id)
    if touched:
        session.info.setdefault(_STOCK_TOUCHED, set()).update(touched)


def _refresh_before_commit(session: OrmSession) -> None:
    session.flush()  # the commit's own flush comes after this event
    touched = session.info.pop(_STOCK_TOUCHED, None)
    if touched:
        refresh_stock_flags(session=cast(Session, session), product_ids=touched)


def _forget_touched(session: OrmSession, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended (commit or rollback)
        session.info.pop(_STOCK_TOUCHED, None)


_LISTENERS: tuple[tuple[str, Any], ...] = (
    ("before_flush", _note_flushed_stock),
    ("before_commit", _refresh_before_commit),
    ("after_transaction_end", _forget_touched),
)


def install_listeners() -> None:
    """Install the session listeners that keep ``products.in_stock`` exact on every
    session. ``core.db`` calls it where engines are built, so the flags do not depend on
    which modules a program happened to import. Installing twice is a no-op."""
    for name, listener in _LISTENERS:
        if not event.contains(OrmSession, name, listener):
            event.listen(OrmSession, name, listener)
