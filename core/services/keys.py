"""Key plaintext: revealing a delivered key, and re-encrypting stock under a new keyring
entry.

Plaintext exists only in memory, at the moment of reveal (invariant 5): it is returned
to the caller and never logged, audited or put into an error. Ownership — that the
person revealing owns the order — is the web layer's check; this module records who
revealed what.

Rotation (``keyshop keys rotate``): add a new entry to ``KEYSHOP_KEYRING`` (the highest
id encrypts), run :func:`rotate_keys`, then remove the old entry once the report shows
nothing remaining.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import crypto
from core.db import get_engine, session_scope
from core.errors import InvalidInput, InvalidKeyState, KeyDecryptionError, NotFound
from core.models import ActorType, KeyStatus, utcnow
from core.services import locking
from core.services.audit import Actor, record_audit

log = logging.getLogger(__name__)

__all__ = ["RotationReport", "reveal_key", "rotate_keys"]


def reveal_key(*, session: Session, key_id: uuid.UUID, actor: Actor) -> str:
    """Decrypt a delivered key and return its code. The customer's first reveal sets
    ``revealed_at`` (from then on the key can no longer go back to stock); every reveal
    records ``key.reveal`` (object: the key id; data: ``order_line_id``, ``first``).
    An operator's reveal is recorded as ``key.operator_reveal`` (data: ``order_line_id``,
    ``customer_revealed``) and never changes ``revealed_at``: it is not what the
    customer has seen.

    Only ``delivered`` keys can be revealed (:class:`InvalidKeyState` otherwise); a
    ciphertext that fails authentication raises :class:`KeyDecryptionError` (naming the
    key id only). The key row is locked while revealing, so two simultaneous first
    reveals record exactly one ``first``. Runs inside the caller's transaction and never
    commits: the audit event lands with the reveal or not at all.
    """
    key = locking.lock_key(session, key_id)
    if key is None:
        raise NotFound(f"key {key_id} does not exist", key_id=str(key_id))
    if key.status != KeyStatus.DELIVERED:
        raise InvalidKeyState(
            f"key {key.id} is {key.status}; only delivered keys can be revealed",
            key_id=str(key.id),
            status=key.status,
        )
    plaintext = crypto.get_vault().decrypt(
        key.ciphertext, key_version=key.key_version, row_id=key.id
    )
    if actor.type == ActorType.OPERATOR:
        record_audit(
            session=session,
            actor=actor,
            action="key.operator_reveal",
            object_type="key",
            object_id=str(key.id),
            data={
                "order_line_id": key.order_line_id,
                "customer_revealed": key.revealed_at is not None,
            },
        )
        return plaintext.decode("utf-8")
    first = key.revealed_at is None
    if first:
        key.revealed_at = utcnow()
        session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="key.reveal",
        object_type="key",
        object_id=str(key.id),
        data={"order_line_id": key.order_line_id, "first": first},
    )
    return plaintext.decode("utf-8")


# -- rotation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    """``total``: keys not under the active entry when the run started; ``rotated``: how
    many this run re-encrypted; ``remaining``: keys still not under the active entry when
    it ended (failures, plus rows locked by a claim at the time — run again).
    ``failed``: ids (never codes) of keys whose ciphertext did not decrypt."""

    total: int
    rotated: int
    remaining: int
    active_id: int = 0
    failed: tuple[str, ...] = field(default_factory=tuple)


_REENCRYPT = (
    update(locking.KEYS)
    .where(
        locking.KEYS.c.id == bindparam("b_id"),
        locking.KEYS.c.key_version == bindparam("b_old"),
    )
    .values(ciphertext=bindparam("b_blob"), key_version=bindparam("b_new"))
)


def _count_stale(engine: Engine, active_id: int) -> int:
    with session_scope(write=False, engine=engine) as session:
        query = (
            select(func.count())
            .select_from(locking.KEYS)
            .where(locking.KEYS.c.key_version != active_id)
        )
        return int(session.connection().execute(query).scalar_one())


def rotate_keys(
    *,
    batch_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> RotationReport:
    """Re-encrypt every key not under the vault's active keyring entry, ``batch_size``
    keys per transaction, each batch committed on its own.

    Owns its transactions (``session_scope`` on ``engine``, default the configured one).
    Interruptible and resumable: an interrupted run leaves every committed batch under
    the new entry and the rest under the old one (all still decrypting); a second run
    continues with what is left; a run with nothing left is a no-op.

    Rows are taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so rotation never
    waits for (or blocks) a claim in progress; skipped rows get a second pass, and any
    still locked then are reported as ``remaining`` for the next run. Keys whose
    ciphertext fails to decrypt are left untouched, counted and reported by id, and do
    not stop the run. ``progress(done, total)`` is called after each committed batch;
    if it raises, the run stops there (committed batches stay rotated).
    """
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", batch_size=batch_size)
    vault = crypto.get_vault()
    active = vault.active_id
    bind = engine or get_engine()
    total = _count_stale(bind, active)
    if total == 0:
        return RotationReport(total=0, rotated=0, remaining=0, active_id=active)
    rotated = 0
    failed: dict[uuid.UUID, None] = {}
    for _pass in range(2):
        after: uuid.UUID | None = None
        while True:
            with session_scope(engine=bind) as session:
                rows = locking.lock_rotation_batch(
                    session, active_id=active, after=after, limit=batch_size
                )
                if not rows:
                    break
                after = rows[-1][0]
                updates = []
                for key_id, version, blob in rows:
                    if key_id in failed:
                        continue
                    try:
                        plain = vault.decrypt(blob, key_version=version, row_id=key_id)
                    except KeyDecryptionError:
                        failed[key_id] = None
                        log.warning("key %s does not decrypt; left as it is", key_id)
                        continue
                    new_version, new_blob = vault.encrypt(plain, row_id=key_id)
                    del plain
                    updates.append(
                        {"b_id": key_id, "b_old": version, "b_blob": new_blob, "b_new": new_version}
                    )
                if updates:
                    session.connection().execute(_REENCRYPT, updates)
            rotated += len(updates)
            if progress is not None:
                progress(min(rotated + len(failed), total), total)
        remaining = _count_stale(bind, active)
        if remaining <= len(failed):
            break
    return RotationReport(
        total=total,
        rotated=rotated,
        remaining=remaining,
        active_id=active,
        failed=tuple(str(k) for k in failed),
    )
