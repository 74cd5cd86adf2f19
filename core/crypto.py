"""The key vault: AES-256-GCM under a versioned keyring, and keyed fingerprints.

- Each stored key is encrypted with a fresh 96-bit random nonce under the newest keyring
  entry; the entry's id is stored beside the ciphertext (``keys.key_version``) so older
  entries keep decrypting until ``keyshop keys rotate`` has re-encrypted everything.
- The row's identity (its UUID) is bound as associated data: a ciphertext copied onto
  another row fails authentication and decrypts to nothing.
- The fingerprint is HMAC-SHA256 under a separate secret of the *normalised* code
  (Unicode NFKC, whitespace and hyphens removed, upper case), so ``abcd-efgh`` and
  ``ABCDEFGH`` are one key. A unique index on it rejects duplicates without decrypting.
- Plaintext never goes into a log record, an exception message or a repr.

In the embedded default the keyring and the fingerprint secret are generated into
``var/keyring.json`` (mode 0600) on first use, with a loud warning; in production they
come from ``KEYSHOP_KEYRING`` and ``KEYSHOP_FINGERPRINT_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import logging
import os
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.config import (
    Settings,
    get_settings,
    on_settings_change,
    parse_keyring,
    parse_secret_key,
    reveal,
)
from core.errors import ConfigError, KeyDecryptionError

log = logging.getLogger(__name__)

NONCE_BYTES = 12
_AAD_PREFIX = b"keyshop/key/v1:"
_STRIP = {ord(c): None for c in " \t-\u00a0\u2010\u2011\u2012\u2013\u2014"}


def _fast_sha256() -> Any:
    """CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before): no OpenSSL EVP
    set-up per call, so about twice as fast on short input; else hashlib's."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256  # pragma: no cover - depends on the interpreter


_sha256 = _fast_sha256()


def normalise_code(code: str) -> str:
    return unicodedata.normalize("NFKC", code).translate(_STRIP).upper()


def key_aad(row_id: uuid.UUID) -> bytes:
    """The associated data a key's ciphertext is bound to: its row's UUID."""
    return _AAD_PREFIX + row_id.bytes


class KeyVault:
    """Encrypts, decrypts and fingerprints key codes. Holds secrets; never logs them."""

    def __init__(self, keyring: dict[int, bytes], fingerprint_key: bytes) -> None:
        if not keyring:
            raise ValueError("empty keyring")
        self._ciphers = {kid: AESGCM(secret) for kid, secret in keyring.items()}
        self.active_id = max(keyring)
        self._active = self._ciphers[self.active_id]
        self._fp_key = fingerprint_key
        self._fp_pads: tuple[Any, Any] | None = None  # HMAC states, made on first use

    def __repr__(self) -> str:
        return f"KeyVault(key_ids={sorted(self._ciphers)}, active={self.active_id})"

    @property
    def key_ids(self) -> list[int]:
        return sorted(self._ciphers)

    def encrypt(self, plaintext: bytes, *, row_id: uuid.UUID) -> tuple[int, bytes]:
        """Returns (key_version, nonce || ciphertext+tag)."""
        nonce = os.urandom(NONCE_BYTES)
        return self.active_id, nonce + self._active.encrypt(nonce, plaintext, key_aad(row_id))

    def decrypt(self, blob: bytes, *, key_version: int, row_id: uuid.UUID) -> bytes:
        cipher = self._ciphers.get(key_version)
        if cipher is None:
            raise KeyDecryptionError(
                f"key {row_id} is encrypted under keyring entry {key_version}, which is not in the keyring",
                key_id=str(row_id),
            )
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], key_aad(row_id))
        except (InvalidTag, ValueError):
            raise KeyDecryptionError(
                f"key {row_id} failed authentication (tampered, or not this row's ciphertext)",
                key_id=str(row_id),
            ) from None

    def fingerprint(self, code: str) -> bytes:
        return hmac.new(self._fp_key, normalise_code(code).encode("utf-8"), hashlib.sha256).digest()

    def fingerprints(self, codes: Iterable[str]) -> list[bytes]:
        """``[fingerprint(c) for c in codes]``, the same bytes, faster (bench/NOTES.md):
        HMAC-SHA256 from precomputed inner and outer states (RFC 2104), and an ASCII code
        normalised with ``str.replace`` (NFKC leaves ASCII unchanged, and the only ASCII
        characters the fingerprint ignores are space, tab and hyphen)."""
        if self._fp_pads is None:
            key = self._fp_key if len(self._fp_key) <= 64 else hashlib.sha256(self._fp_key).digest()
            key = key.ljust(64, b"\0")
            self._fp_pads = (
                _sha256(bytes(b ^ 0x36 for b in key)),
                _sha256(bytes(b ^ 0x5C for b in key)),
            )
        inner_copy, outer_copy = self._fp_pads[0].copy, self._fp_pads[1].copy
        out: list[bytes] = []
        append = out.append
        for code in codes:
            if code.isascii():
                data = code.replace("-", "").replace(" ", "").replace("\t", "").upper().encode()
            else:
                data = normalise_code(code).encode("utf-8")
            inner = inner_copy()
            inner.update(data)
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.digest())
        return out

    def encrypt_many(
        self, plaintexts: Sequence[bytes], row_ids: Sequence[bytes]
    ) -> tuple[int, list[bytes]]:
        """``encrypt`` for many codes at once: returns (key_version, [nonce || ciphertext+tag])
        in order. ``row_ids`` are the rows' 16-byte UUID values (``uuid.UUID.bytes``), bound
        as associated data exactly as ``encrypt(row_id=uuid.UUID(bytes=...))`` does. The
        nonces come from one ``os.urandom`` call (the same generator, one system call)."""
        n = len(plaintexts)
        if len(row_ids) != n:
            raise ValueError("encrypt_many: one row id per plaintext")
        nonces = os.urandom(NONCE_BYTES * n)
        encrypt, prefix = self._active.encrypt, _AAD_PREFIX
        out: list[bytes] = []
        append = out.append
        start = 0
        for plaintext, row_id in zip(plaintexts, row_ids, strict=True):
            if len(row_id) != 16:
                raise ValueError("encrypt_many: a row id is 16 bytes (uuid.UUID.bytes)")
            nonce = nonces[start : start + NONCE_BYTES]
            start += NONCE_BYTES
            append(nonce + encrypt(nonce, plaintext, prefix + row_id))
        return self.active_id, out


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _load_or_create_file(path: Path) -> tuple[dict[int, bytes], bytes]:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            keyring = parse_keyring(",".join(f"{k}:{v}" for k, v in data["keyring"].items()))
            fp = parse_secret_key(data["fingerprint_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                "KEYSHOP_KEYRING", f"keyring file {path} is unreadable: {exc}"
            ) from None
        return keyring, fp
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = {1: os.urandom(32)}
    fp = os.urandom(32)
    body = json.dumps({"keyring": {"1": _b64(keyring[1])}, "fingerprint_key": _b64(fp)}, indent=2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(body + "\n")
    log.warning(
        "GENERATED A NEW KEY-ENCRYPTION KEYRING at %s (mode 0600). Every stored key is "
        "unreadable without this file: back it up, and in production give "
        "KEYSHOP_KEYRING and KEYSHOP_FINGERPRINT_KEY instead.",
        path,
    )
    return keyring, fp


def build_vault(settings: Settings) -> KeyVault:
    file_keyring: dict[int, bytes] | None = None
    file_fp: bytes | None = None
    if not settings.keyring or not settings.fingerprint_key:
        if settings.env == "production":
            raise ConfigError("KEYSHOP_KEYRING", "required when KEYSHOP_ENV=production")
        file_keyring, file_fp = _load_or_create_file(settings.keyring_file)
    keyring = parse_keyring(reveal(settings.keyring) or "") if settings.keyring else file_keyring
    fp = (
        parse_secret_key(reveal(settings.fingerprint_key) or "")
        if settings.fingerprint_key
        else file_fp
    )
    assert keyring is not None and fp is not None
    return KeyVault(keyring, fp)


_vault: KeyVault | None = None
_vault_lock = threading.Lock()


def get_vault() -> KeyVault:
    global _vault
    with _vault_lock:
        if _vault is None:
            _vault = build_vault(get_settings())
        return _vault


@on_settings_change
def reset_vault() -> None:
    global _vault
    with _vault_lock:
        _vault = None


def generate_keyring_entry() -> str:
    """A new random 32-byte secret in base64, for operators adding a keyring entry."""
    return _b64(os.urandom(32))
