"""Operator actions on stock and providers: low-stock thresholds, revoking keys, and
queueing a provider sync.

Every action is audited (invariant 7) and goes through the same services as the
automatic paths. Each action owns its transaction: the console never opens a write
transaction itself.
"""

from __future__ import annotations

import re
import uuid

from sqlmodel import Session, col, select

from core import jobs
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, InvalidKeyState
from core.jobs import Job
from core.models import (
    Alert,
    Key,
    KeyStatus,
    Product,
    utcnow,
)
from core.services import locking
from core.services.alerts import acknowledge_alert
from core.services.audit import Actor, record_audit
from core.services.catalogue import get_product, update_product
from core.services.inventory import revoke_key

# -- stock ----------------------------------------------------------------------------------

MAX_LOW_STOCK_THRESHOLD = 1_000_000
MAX_KEYS_REVOKED_AT_ONCE = 10_000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def set_low_stock_threshold(*, product_id: int, threshold: int | str, actor: Actor) -> Product:
    """Set a product's low-stock threshold (a whole number from 0, meaning never low, to
    1,000,000; text as typed by an operator is accepted) through
    :func:`core.services.catalogue.update_product`, audited as ``product.threshold``.
    Bad input is InvalidInput and changes nothing. Owns its transaction."""
    threshold = parse_low_stock_threshold(threshold)
    with session_scope() as session:
        product = get_product(session=session, product_id=product_id)
        before = product.low_stock_threshold
        update_product(session=session, product_id=product_id, low_stock_threshold=threshold)
        record_audit(
            session=session,
            actor=actor,
            action="product.threshold",
            object_type="product",
            object_id=product_id,
            data={"slug": product.slug, "from": before, "to": threshold},
        )
        session.flush()
        return product


def parse_low_stock_threshold(threshold: int | str) -> int:
    """A low-stock threshold as typed (or given): a whole number from 0 to 1,000,000.
    InvalidInput (naming the field) otherwise; dialogs call it to refuse before closing."""
    if isinstance(threshold, str):
        text = threshold.strip()
        if not _WHOLE_NUMBER.fullmatch(text):
            raise InvalidInput(
                f"the low-stock threshold must be a whole number, 0 or more (got {text!r})"
                if text
                else "the low-stock threshold must be a whole number, 0 or more",
                field="low_stock_threshold",
            )
        threshold = int(text)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise InvalidInput(
            "the low-stock threshold must be a whole number, 0 or more",
            field="low_stock_threshold",
        )
    if threshold > MAX_LOW_STOCK_THRESHOLD:
        raise InvalidInput(
            f"the low-stock threshold is at most {MAX_LOW_STOCK_THRESHOLD:,}",
            field="low_stock_threshold",
        )
    return threshold


def revoke_stock_keys(
    *,
    product_id: int,
    count: int,
    actor: Actor,
    reason: str,
    import_batch_id: int | None = None,
) -> list[uuid.UUID]:
    """Revoke ``count`` available keys of a product (oldest first; with
    ``import_batch_id``, only keys of that import — a bad batch), each audited as
    ``key.revoke``, plus one ``product.revoke_keys`` event. All or nothing: fewer
    available keys than ``count``, a count outside 1 to 10,000, an empty reason or an
    unknown product is InvalidInput (or UnknownProduct) and nothing changes. Returns the
    revoked keys' ids. Owns its transaction."""
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not (1 <= count <= MAX_KEYS_REVOKED_AT_ONCE)
    ):
        raise InvalidInput(
            f"the number of keys to revoke must be from 1 to {MAX_KEYS_REVOKED_AT_ONCE:,}"
        )
    reason = reason.strip()
    if not reason:
        raise InvalidInput("revoking keys needs a reason")
    with session_scope() as session:
        return _revoke_stock_keys(session, product_id, count, actor, reason, import_batch_id)


def _revoke_stock_keys(
    session: Session,
    product_id: int,
    count: int,
    actor: Actor,
    reason: str,
    import_batch_id: int | None,
) -> list[uuid.UUID]:
    product = get_product(session=session, product_id=product_id)
    query = select(Key.id).where(Key.product_id == product_id, Key.status == KeyStatus.AVAILABLE)
    if import_batch_id is not None:
        query = query.where(Key.import_batch_id == import_batch_id)
    ids = list(session.exec(query.order_by(col(Key.id)).limit(count)))
    where = f" from import #{import_batch_id}" if import_batch_id is not None else ""
    if len(ids) < count:
        raise InvalidInput(
            f"{product.slug} has {len(ids)} available key(s){where}; asked to revoke {count}",
            available=len(ids),
        )
    locked = locking.lock_keys(session, ids)
    if len(locked) != count or any(k.status != KeyStatus.AVAILABLE for k in locked):
        raise InvalidKeyState("stock changed while choosing the keys; try again")
    for key in locked:
        revoke_key(session=session, key_id=key.id, actor=actor, reason=reason)
    record_audit(
        session=session,
        actor=actor,
        action="product.revoke_keys",
        object_type="product",
        object_id=product_id,
        data={
            "slug": product.slug,
            "count": count,
            "reason": reason,
            "import_batch_id": import_batch_id,
        },
    )
    session.flush()
    return [k.id for k in locked]


# -- providers ------------------------------------------------------------------------------


def request_provider_sync(*, provider: str, actor: Actor) -> None:
    """Queue a catalogue/price/stock sync of ``provider`` (the ``sync_provider`` job,
    after the commit), audited as ``provider.sync``. Owns its transaction."""
    if provider not in get_settings().providers:
        raise InvalidInput(f"{provider} is not a configured provider")
    with session_scope() as session:
        record_audit(
            session=session,
            actor=actor,
            action="provider.sync",
            object_type="provider",
            object_id=provider,
            data={"requested_at": utcnow().isoformat()},
        )
        jobs.enqueue_after_commit(session, Job.SYNC_PROVIDER, provider)


# -- alerts ---------------------------------------------------------------------------------


def acknowledge_alerts(*, alert_ids: list[int], actor: Actor) -> list[Alert]:
    """Acknowledge one or more alerts at once (each audited as ``alert.acknowledge``;
    already acknowledged ones are left as they are). An unknown id is NotFound and
    nothing changes. Owns its transaction."""
    if not alert_ids:
        raise InvalidInput("no alert chosen")
    with session_scope() as session:
        return [
            acknowledge_alert(session=session, alert_id=alert_id, actor=actor)
            for alert_id in alert_ids
        ]
