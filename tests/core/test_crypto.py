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
        KEYSHOP_VAR_DIR=str(tmp_path), KEYSHOP_KEYRING=f"7:{base64.b64encode(K1).decode()}",
        KEYSHOP_FINGERPRINT_KEY=base64.b64encode(FP).decode(),
    )
    assert build_vault(settings).active_id == 7
    assert not (tmp_path / "keyring.json").exists()
