"""Setting values that need more than a type: secrets written as base64, the keyring,
database URLs; and the two ways a secret leaves a setting (:func:`reveal` in code,
:func:`mask_url` for display). Re-exported by :mod:`core.config`."""

from __future__ import annotations

import base64
import binascii

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

KEY_BYTES = 32


def parse_secret_key(value: str) -> bytes:
    """A 32-byte secret written as standard or URL-safe base64."""
    text = value.strip()
    try:
        raw = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if ("-" in text or "_" in text) else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"must be {KEY_BYTES} bytes of base64, got {len(raw)} bytes")
    return raw


def parse_keyring(value: str) -> dict[int, bytes]:
    """``ID:BASE64[,ID:BASE64...]``; the highest id encrypts, every id decrypts."""
    entries: dict[int, bytes] = {}
    for n, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        kid_text, sep, secret = part.partition(":")
        if not sep or not kid_text.strip().isdigit():
            raise ValueError(f"entry {n + 1} must look like ID:BASE64 with a numeric ID")
        kid = int(kid_text)
        if not 1 <= kid <= 32767:
            raise ValueError(f"entry {n + 1}: key id must be between 1 and 32767")
        if kid in entries:
            raise ValueError(f"key id {kid} appears twice")
        try:
            entries[kid] = parse_secret_key(secret)
        except ValueError as exc:
            raise ValueError(f"entry {kid}: {exc}") from None
    if not entries:
        raise ValueError("is empty")
    return entries


def normalise_database_url(value: str) -> str:
    if value.startswith("postgres://"):  # the spelling Heroku and others hand out
        value = "postgresql://" + value.removeprefix("postgres://")
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a database URL (expected sqlite:///path or postgresql://user@host/db)"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        driver = url.get_driver_name()
        if driver not in ("psycopg", "postgresql", "postgres", ""):
            raise ValueError(
                f"PostgreSQL driver {driver!r} is not supported; use postgresql+psycopg://"
            )
        if not url.database:
            raise ValueError("names no database")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"database {backend!r} is not supported (SQLite or PostgreSQL)")


def reveal(value: SecretStr | str | None) -> str | None:
    """The plain text of a secret setting (None when unset). The one way code reads a
    secret; ``repr``, ``check-config`` and logs only ever see ``***``."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def mask_url(url: str) -> str:
    """A URL with its password (or its whole user part for Redis and SMTP) masked."""
    if url.startswith(("redis", "rediss", "smtp")):
        if "@" not in url:
            return url
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return make_url(url).render_as_string(hide_password=True)
