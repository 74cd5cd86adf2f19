"""Reveal and keyring rotation."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from core import config, crypto
from core.config import Settings, reveal
from core.db import session_scope
from core.errors import InvalidKeyState, KeyDecryptionError, NotFound
from core.models import AuditEvent, Key, KeyStatus, utcnow
from core.services.audit import Actor
from core.services.keys import reveal_key, rotate_keys
from tests.factories import make_keys, make_order, make_product, order_lines

CUSTOMER = Actor.customer(7, ip="203.0.113.9")
SECOND_ENTRY = base64.b64encode(b"2" * 32).decode()


@contextmanager
def keyring(test_settings: Settings, spec: str) -> Iterator[crypto.KeyVault]:
    """Run with another KEYSHOP_KEYRING (same database, var dir and fingerprint key)."""
    new = config.load_settings(
        KEYSHOP_KEYRING=spec,
        KEYSHOP_FINGERPRINT_KEY=reveal(test_settings.fingerprint_key),
        DATABASE_URL=test_settings.database_url,
        KEYSHOP_VAR_DIR=str(test_settings.var_dir),
    )
    config.use_settings(new)
    try:
        yield crypto.get_vault()
    finally:
        config.use_settings(test_settings)


def _versions() -> dict[uuid.UUID, int]:
    with session_scope(write=False) as s:
        return {
            r.id: r.key_version for r in s.connection().execute(select(Key.id, Key.key_version))
        }


def _decrypt_all(vault: crypto.KeyVault) -> dict[uuid.UUID, str]:
    with session_scope(write=False) as s:
        rows = s.connection().execute(select(Key.id, Key.ciphertext, Key.key_version)).all()
    return {
        r.id: vault.decrypt(r.ciphertext, key_version=r.key_version, row_id=r.id).decode()
        for r in rows
    }


# -- reveal ------------------------------------------------------------------------------


def _delivered(session: Session, code: str = "REVEAL-ME-00001") -> tuple[Key, int]:
    product = make_product(session)
    order = make_order(session, [(product, 1)])
    line = order_lines(session, order)[0].id
    assert line is not None
    key = make_keys(
        session,
        product,
        1,
        codes=[code],
        status=KeyStatus.DELIVERED,
        order_line_id=line,
        delivered_at=utcnow(),
    )[0]
    return key, line


def test_reveal_returns_the_code_and_audits_every_reveal(session: Session) -> None:
    key, line = _delivered(session)
    assert reveal_key(session=session, key_id=key.id, actor=CUSTOMER) == "REVEAL-ME-00001"
    session.commit()
    first_at = session.get(Key, key.id, populate_existing=True).revealed_at  # type: ignore[union-attr]
    assert first_at is not None
    assert reveal_key(session=session, key_id=key.id, actor=CUSTOMER) == "REVEAL-ME-00001"
    session.commit()
    assert session.get(Key, key.id, populate_existing=True).revealed_at == first_at  # type: ignore[union-attr]

    events = list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == "key.reveal").order_by(AuditEvent.id)
        )
    )
    assert [e.data for e in events] == [
        {"order_line_id": line, "first": True},
        {"order_line_id": line, "first": False},
    ]
    assert all(e.object_id == str(key.id) and e.actor_id == "7" for e in events)
    assert events[0].ip == "203.0.113.9"
    assert all("REVEAL" not in str(e.data) for e in events)


def test_only_delivered_keys_can_be_revealed(session: Session) -> None:
    product = make_product(session)
    for status in (KeyStatus.AVAILABLE, KeyStatus.RESERVED, KeyStatus.REVOKED, KeyStatus.FAULTY):
        key = make_keys(session, product, 1, status=status)[0]
        with pytest.raises(InvalidKeyState):
            reveal_key(session=session, key_id=key.id, actor=CUSTOMER)
    with pytest.raises(NotFound):
        reveal_key(session=session, key_id=uuid.uuid4(), actor=CUSTOMER)
    assert not list(session.scalars(select(AuditEvent)))


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(session: Session) -> None:
    """Invariant: the row identity is bound as associated data."""
    victim, _ = _delivered(session, "VICTIM-CODE-0001")
    thief, _ = _delivered(session, "THIEF-CODE-00001")
    session.execute(
        update(Key).where(Key.id == thief.id).values(ciphertext=victim.ciphertext)  # type: ignore[arg-type]
    )
    session.commit()
    with pytest.raises(KeyDecryptionError) as caught:
        reveal_key(session=session, key_id=thief.id, actor=CUSTOMER)
    message = str(caught.value) + repr(caught.value.to_dict())
    assert str(thief.id) in message
    assert "VICTIM" not in message and "THIEF" not in message
    session.rollback()
    assert session.get(Key, thief.id, populate_existing=True).revealed_at is None  # type: ignore[union-attr]


# -- rotation ----------------------------------------------------------------------------


def test_rotation_moves_every_key_to_the_new_entry(
    session: Session, test_settings: Settings
) -> None:
    product = make_product(session)
    codes = [f"ROTATE-{n:05d}" for n in range(25)]
    make_keys(session, product, 0, codes=codes)
    session.commit()
    assert set(_versions().values()) == {1}

    assert test_settings.keyring is not None
    with keyring(test_settings, f"{reveal(test_settings.keyring)},2:{SECOND_ENTRY}") as vault:
        assert vault.active_id == 2
        calls: list[tuple[int, int]] = []
        report = rotate_keys(batch_size=10, progress=lambda d, t: calls.append((d, t)))
        assert (report.total, report.rotated, report.remaining, report.failed) == (25, 25, 0, ())
        assert calls == [(10, 25), (20, 25), (25, 25)]
        assert rotate_keys(batch_size=10).total == 0  # nothing left: a no-op

    assert set(_versions().values()) == {2}
    # The old entry can go: everything decrypts under entry 2 alone.
    with keyring(test_settings, f"2:{SECOND_ENTRY}") as only_new:
        assert sorted(_decrypt_all(only_new).values()) == codes


def test_an_interrupted_rotation_resumes(session: Session, test_settings: Settings) -> None:
    product = make_product(session)
    codes = [f"RESUME-{n:05d}" for n in range(12)]
    make_keys(session, product, 0, codes=codes)
    session.commit()

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(done: int, total: int) -> None:
        raise Interrupted

    assert test_settings.keyring is not None
    with keyring(test_settings, f"{reveal(test_settings.keyring)},2:{SECOND_ENTRY}") as vault:
        with pytest.raises(Interrupted):
            rotate_keys(batch_size=5, progress=stop_after_first_batch)
        versions = _versions()
        assert sorted(versions.values()) == [1] * 7 + [2] * 5  # the first batch committed
        assert sorted(_decrypt_all(vault).values()) == codes  # all still readable

        report = rotate_keys(batch_size=5)
        assert (report.total, report.rotated, report.remaining) == (7, 7, 0)
        assert set(_versions().values()) == {2}
        assert sorted(_decrypt_all(vault).values()) == codes


def test_keys_that_fail_to_decrypt_are_reported_and_skipped(
    session: Session, test_settings: Settings
) -> None:
    product = make_product(session)
    keys = make_keys(session, product, 0, codes=[f"BROKEN-{n:05d}" for n in range(6)])
    broken = keys[2]
    session.execute(
        update(Key).where(Key.id == broken.id).values(ciphertext=keys[3].ciphertext)  # type: ignore[arg-type]
    )
    session.commit()

    assert test_settings.keyring is not None
    with keyring(test_settings, f"{reveal(test_settings.keyring)},2:{SECOND_ENTRY}"):
        report = rotate_keys(batch_size=2)
    assert (report.total, report.rotated, report.remaining) == (6, 5, 1)
    assert report.failed == (str(broken.id),)
    versions = _versions()
    assert versions[broken.id] == 1  # left as it was
    assert sorted(versions.values()) == [1, 2, 2, 2, 2, 2]


def test_decryption_errors_carry_no_plaintext(vault: crypto.KeyVault) -> None:
    row, other = uuid.uuid4(), uuid.uuid4()
    version, blob = vault.encrypt(b"PLAINTEXT-SECRET", row_id=row)
    with pytest.raises(KeyDecryptionError) as moved:
        vault.decrypt(blob, key_version=version, row_id=other)
    with pytest.raises(KeyDecryptionError) as unknown_entry:
        vault.decrypt(blob, key_version=99, row_id=row)
    for err in (moved.value, unknown_entry.value):
        text = str(err) + repr(err.to_dict()) + repr(err.args)
        assert "PLAINTEXT" not in text and "SECRET" not in text
        assert blob.hex() not in text


@pytest.mark.postgres_only
def test_rotation_skips_keys_a_claim_holds_and_a_rerun_takes_them(
    session: Session, test_settings: Settings
) -> None:
    """SKIP LOCKED: rotation neither waits for nor blocks fulfilment. (SQLite has one
    writer: rotation would simply wait for the claim to commit.)"""
    from core.services.inventory import claim_keys

    product = make_product(session)
    keys = sorted(make_keys(session, product, 4), key=lambda k: k.id)
    order = make_order(session, [(product, 1)])
    line = order_lines(session, order)[0].id
    session.commit()

    assert test_settings.keyring is not None
    with keyring(test_settings, f"{reveal(test_settings.keyring)},2:{SECOND_ENTRY}"):
        with session_scope() as claimer:  # holds the oldest key's row lock meanwhile
            claim_keys(session=claimer, product_id=product.id, quantity=1, line_id=line)  # type: ignore[arg-type]
            report = rotate_keys(batch_size=2)
            assert (report.total, report.rotated, report.remaining) == (4, 3, 1)
        assert _versions()[keys[0].id] == 1
        report = rotate_keys(batch_size=2)
        assert (report.total, report.rotated, report.remaining) == (1, 1, 0)
    assert set(_versions().values()) == {2}
