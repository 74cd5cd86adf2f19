import base64
import logging
import os
import stat
import uuid

import pytest

from core.config import load_settings
from core.crypto import KeyVault, build_vault, normalise_code
from core.errors import ConfigError, KeyDecryptionError

K1, K2, FP = b"1" * 32, b"2" * 32, b"f" * 32
CODE = "ABCDE-FGHIJ-KLMNO"


def test_round_trip_binds_the_row_and_never_shows_plaintext():
    vault = KeyVault({1: K1}, FP)
    row, other = uuid.uuid4(), uuid.uuid4()
    version, blob = vault.encrypt(CODE.encode(), row_id=row)
    assert version == 1 and CODE.encode() not in blob
    assert vault.decrypt(blob, key_version=1, row_id=row) == CODE.encode()
    with pytest.raises(KeyDecryptionError) as moved:
        vault.decrypt(blob, key_version=1, row_id=other)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyDecryptionError) as flipped:
        vault.decrypt(tampered, key_version=1, row_id=row)
    for err in (moved.value, flipped.value):
        assert CODE not in str(err) and CODE not in repr(err.data)


def test_the_newest_entry_encrypts_and_older_ones_still_decrypt():
    old = KeyVault({1: K1}, FP)
    row = uuid.uuid4()
    _, blob = old.encrypt(CODE.encode(), row_id=row)
    both = KeyVault({1: K1, 2: K2}, FP)
    assert both.active_id == 2 and both.encrypt(b"x", row_id=row)[0] == 2
    assert both.decrypt(blob, key_version=1, row_id=row) == CODE.encode()
    with pytest.raises(KeyDecryptionError, match="not in the keyring"):
        KeyVault({2: K2}, FP).decrypt(blob, key_version=1, row_id=row)


def test_same_nonce_never_reused_for_the_same_code():
    vault = KeyVault({1: K1}, FP)
    row = uuid.uuid4()
    assert vault.encrypt(b"same", row_id=row)[1] != vault.encrypt(b"same", row_id=row)[1]


def test_fingerprint_is_keyed_and_ignores_case_spaces_and_hyphens():
    vault = KeyVault({1: K1}, FP)
    assert normalise_code(" abcde-fghij klmno\t") == "ABCDEFGHIJKLMNO"
    assert vault.fingerprint("abcde-fghij-klmno") == vault.fingerprint("ABCDE FGHIJ KLMNO")
    assert vault.fingerprint(CODE) != vault.fingerprint("ABCDE-FGHIJ-KLMNP")
    assert KeyVault({1: K1}, b"g" * 32).fingerprint(CODE) != vault.fingerprint(CODE)
    assert "K1" not in repr(vault) and "1111" not in repr(vault)


def test_embedded_default_generates_a_private_keyring_once(tmp_path, caplog):
    settings = load_settings(KEYSHOP_VAR_DIR=str(tmp_path / "var"))
    with caplog.at_level(logging.WARNING):
        first = build_vault(settings)
    path = tmp_path / "var" / "keyring.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "GENERATED A NEW KEY-ENCRYPTION KEYRING" in caplog.text
    caplog.clear()
    second = build_vault(settings)
    assert caplog.text == ""
    row = uuid.uuid4()
    assert second.decrypt(first.encrypt(b"k", row_id=row)[1], key_version=1, row_id=row) == b"k"


def test_a_corrupt_keyring_file_is_a_clear_error(tmp_path):
    (tmp_path / "keyring.json").write_text("{not json")
    with pytest.raises(ConfigError, match="KEYSHOP_KEYRING"):
        build_vault(load_settings(KEYSHOP_VAR_DIR=str(tmp_path)))


def test_keyring_from_the_environment_is_used_and_no_file_is_written(tmp_path):
    settings = load_settings(
        KEYSHOP_VAR_DIR=str(tmp_path),
        KEYSHOP_KEYRING=f"7:{base64.b64encode(K1).decode()}",
        KEYSHOP_FINGERPRINT_KEY=base64.b64encode(FP).decode(),
    )
    assert build_vault(settings).active_id == 7
    assert not (tmp_path / "keyring.json").exists()


# --- bulk helpers used by the importer ------------------------------------------------


def test_fingerprints_match_fingerprint_for_ascii_and_unicode_codes():
    vault = KeyVault({1: K1}, FP)
    codes = [
        CODE,
        "abcde-fghij klmno",
        "A\tB-C D",
        "-",
        "x" * 300,  # ASCII: the fast path
        "\uff21\uff22\uff23\uff0d\uff46\uff47",
        "abc\u00a0def\u2013ghi",
        "stra\u00dfe",
        "\ufb01-x",  # NFKC path
    ]
    assert vault.fingerprints(codes) == [vault.fingerprint(c) for c in codes]
    assert vault.fingerprints(iter(codes[:2])) == [vault.fingerprint(c) for c in codes[:2]]
    assert vault.fingerprints([]) == []
    long_key = KeyVault({1: K1}, b"L" * 100)  # an HMAC key longer than a block is hashed
    assert long_key.fingerprints(codes) == [long_key.fingerprint(c) for c in codes]
    assert KeyVault({1: K1}, b"g" * 32).fingerprints([CODE]) != vault.fingerprints([CODE])


def test_encrypt_many_binds_each_row_and_decrypts_like_encrypt():
    vault = KeyVault({1: K1, 3: K2}, FP)
    rows = [uuid.uuid4() for _ in range(50)]
    codes = [f"CODE-{i:04d}".encode() for i in range(50)]
    version, blobs = vault.encrypt_many(codes, [r.bytes for r in rows])
    assert version == 3 and len(blobs) == 50
    assert len({blob[:12] for blob in blobs}) == 50  # a fresh nonce per code
    for code, row, blob in zip(codes, rows, blobs, strict=True):
        assert code not in blob
        assert vault.decrypt(blob, key_version=3, row_id=row) == code
    with pytest.raises(KeyDecryptionError):
        vault.decrypt(blobs[0], key_version=3, row_id=rows[1])
    assert vault.encrypt_many([], []) == (3, [])
    with pytest.raises(ValueError):
        vault.encrypt_many(codes[:2], [rows[0].bytes])
    with pytest.raises(ValueError):
        vault.encrypt_many(codes[:1], [str(rows[0]).encode()])


def test_new_uuids_are_version_7_unique_and_in_order():
    import time

    from core.models.base import new_uuid, new_uuids

    before = time.time_ns() // 1_000_000
    for n in (1, 255, 256, 16_385, 70_000):
        ids = new_uuids(n)
        assert len(ids) == n and len(set(ids)) == n and ids == sorted(ids)
        for raw in ids[:3] + ids[-3:]:
            value = uuid.UUID(bytes=raw)
            assert value.version == 7 and value.variant == uuid.RFC_4122
            assert before <= value.int >> 80 <= time.time_ns() // 1_000_000
    assert new_uuids(0) == []
    assert uuid.UUID(bytes=new_uuids(1)[0]).version == new_uuid().version
    with pytest.raises(ValueError):
        new_uuids(-1)
