"""Signed, expiring tokens for links (blob downloads, portal access, password resets).

A token is ``base64url(payload).expiry.base64url(hmac)`` where the HMAC-SHA256 covers
the purpose, the payload and the expiry, under ``KEYSHOP_SECRET_KEY`` (generated into
``var/secret.key`` with mode 0600 in the embedded default). A token made for one purpose
never verifies for another; a tampered or expired token raises :class:`InvalidToken`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time

from core.config import get_settings, on_settings_change, reveal
from core.errors import DomainError

_lock = threading.Lock()
_secret: bytes | None = None


class InvalidToken(DomainError):
    code = "invalid_token"
    http_status = 403


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_key() -> bytes:
    """The signing secret in force (loaded or generated once)."""
    global _secret
    with _lock:
        if _secret is None:
            settings = get_settings()
            if settings.secret_key:
                _secret = (reveal(settings.secret_key) or "").encode("utf-8")
            else:
                path = settings.secret_key_file
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        with os.fdopen(fd, "w") as fh:
                            fh.write(_b64e(os.urandom(32)) + "\n")
                    except FileExistsError:
                        pass  # another process made it first
                _secret = path.read_text().strip().encode("utf-8")
        return _secret


@on_settings_change
def reset_secret() -> None:
    global _secret
    with _lock:
        _secret = None


def _mac(purpose: str, payload: str, expires: int) -> bytes:
    message = f"{purpose}\x00{payload}\x00{expires}".encode()
    return hmac.new(secret_key(), message, hashlib.sha256).digest()


def make_token(purpose: str, payload: str, *, ttl_seconds: int, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    return f"{_b64e(payload.encode())}.{expires}.{_b64e(_mac(purpose, payload, expires))}"


def check_token(purpose: str, token: str, *, now: float | None = None) -> str:
    """The payload of a valid token for ``purpose``; InvalidToken otherwise."""
    try:
        payload_part, expires_part, mac_part = token.split(".")
        payload = _b64d(payload_part).decode("utf-8")
        expires = int(expires_part)
        given = _b64d(mac_part)
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("this link is not valid") from None
    if not hmac.compare_digest(given, _mac(purpose, payload, expires)):
        raise InvalidToken("this link is not valid")
    if (now if now is not None else time.time()) > expires:
        raise InvalidToken("this link has expired")
    return payload
