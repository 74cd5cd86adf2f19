"""Two-factor sign-in with TOTP (RFC 6238, pyotp) and one-use recovery codes.

Enrolment
    :func:`start_totp` makes a secret and keeps it encrypted on the customer row
    (AES-256-GCM under a key derived from ``KEYSHOP_SECRET_KEY``, bound to the customer
    id), not yet in force; it returns the secret, its ``otpauth://`` URI and a QR code
    (SVG, segno) for the authenticator app. :func:`confirm_totp` turns it on once a code
    from the app proves the enrolment worked, and returns ten recovery codes, shown once:
    only their keyed hashes (HMAC-SHA256) are stored.

Checking a code (:func:`verify_second_factor`)
    A six-digit code of the current 30-second step (or the one before or after, for
    clock drift) is accepted once: the step is recorded, and a code of that step or an
    earlier one is refused afterwards (no replay). Otherwise the code is tried as a
    recovery code, which then is used up. Attempts are limited to 10 per account in 15
    minutes (RateLimited), whoever makes them.

Where it is asked for
    At sign-in, after the password (``core.services.accounts.sign_in``), and again for
    every key reveal of an order whose account has it on
    (``core.services.portal.reveal_order_key``), whichever way the order was opened.
    :func:`disable_totp` needs a valid code too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Final

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, or_, update
from sqlmodel import col

from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.models import Customer, RecoveryCode
from core.models.base import utcnow
from core.services.audit import Actor, record_audit
from core.services.ratelimit import check_rate
from core.signing import secret_key

ISSUER: Final = "keyshop"
STEP_SECONDS: Final = 30
RECOVERY_CODES: Final = 10
ATTEMPT_LIMIT: Final = ("2fa:customer", 10, 900)


def now() -> float:
    """The clock (tests replace it)."""
    return time.time()


class SecondFactorRequired(DomainError):
    """The account has two-factor sign-in on: a code is needed."""

    code = "second_factor_required"
    http_status = 401

    def __init__(self) -> None:
        super().__init__(
            "Enter the 6-digit code from your authenticator app, or one of your recovery codes."
        )


class InvalidSecondFactor(DomainError):
    code = "invalid_second_factor"
    http_status = 401

    def __init__(self) -> None:
        super().__init__("That code is not right, or it was already used.")


@dataclass(frozen=True)
class Enrolment:
    secret: str = field(repr=False)
    uri: str = field(repr=False)
    qr_svg: str = field(repr=False)


# -- secrets at rest ------------------------------------------------------------------------


def _key() -> bytes:
    return hmac.new(secret_key(), b"keyshop totp secret\x00", hashlib.sha256).digest()


def _seal(customer_id: int, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_key()).encrypt(nonce, secret.encode(), f"totp:{customer_id}".encode())


def _unseal(customer_id: int, blob: bytes | None) -> str | None:
    if not blob:
        return None
    try:
        plain = AESGCM(_key()).decrypt(blob[:12], blob[12:], f"totp:{customer_id}".encode())
    except InvalidTag:
        return None
    return plain.decode()


def _normalise(code: str) -> str:
    return "".join(ch for ch in code if ch.isalnum()).lower()


def _recovery_hash(code: str) -> bytes:
    return hmac.new(
        secret_key(), b"recovery\x00" + _normalise(code).encode(), hashlib.sha256
    ).digest()


def _matching_step(secret: str, code: str) -> int | None:
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int(now() // STEP_SECONDS)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _customer(customer_id: int) -> Customer:
    with session_scope(write=False) as session:
        customer = session.get(Customer, customer_id)
    if customer is None:
        raise InvalidInput("unknown customer", field="customer_id")
    return customer


def totp_enabled(*, customer_id: int) -> bool:
    return _customer(customer_id).totp_enabled_at is not None


# -- enrolment ------------------------------------------------------------------------------


def start_totp(*, customer_id: int) -> Enrolment:
    """A new secret for the authenticator app (not in force until confirmed)."""
    customer = _customer(customer_id)
    if customer.totp_enabled_at is not None:
        raise InvalidInput("two-factor sign-in is already on", field="code")
    secret = pyotp.random_base32()
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(col(Customer.id) == customer_id, col(Customer.totp_enabled_at).is_(None))
            .values(totp_secret=_seal(customer_id, secret))
        )
    uri = pyotp.TOTP(secret).provisioning_uri(name=customer.email, issuer_name=ISSUER)
    return Enrolment(secret=secret, uri=uri, qr_svg=segno.make(uri, error="m").svg_inline(scale=4))


def confirm_totp(*, customer_id: int, code: str, ip: str | None = None) -> list[str]:
    """Turn two-factor sign-in on with a first code from the app; returns the recovery
    codes (shown once, stored only hashed)."""
    scope, limit, window = ATTEMPT_LIMIT
    check_rate(scope=scope, subject=str(customer_id), limit=limit, window_seconds=window)
    customer = _customer(customer_id)
    secret = _unseal(customer_id, customer.totp_secret)
    if customer.totp_enabled_at is not None or secret is None:
        raise InvalidInput("start the set-up again", field="code")
    step = _matching_step(secret, _normalise(code or ""))
    if step is None:
        raise InvalidSecondFactor()
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    with session_scope() as session:
        enabled = session.execute(
            update(Customer)
            .where(col(Customer.id) == customer_id, col(Customer.totp_enabled_at).is_(None))
            .values(totp_enabled_at=utcnow(), totp_last_step=step)
        )
        if not enabled.rowcount:  # type: ignore[attr-defined]
            raise InvalidInput("two-factor sign-in is already on", field="code")
        session.execute(delete(RecoveryCode).where(col(RecoveryCode.customer_id) == customer_id))
        for recovery in codes:
            session.add(RecoveryCode(customer_id=customer_id, code_hash=_recovery_hash(recovery)))
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip),
            action="customer.two_factor_enabled",
            object_type="customer",
            object_id=customer_id,
        )
    return codes


def disable_totp(*, customer_id: int, code: str, ip: str | None = None) -> None:
    """Turn two-factor sign-in off; needs a valid code (or a recovery code)."""
    verify_second_factor(customer_id=customer_id, code=code)
    with session_scope() as session:
        session.execute(
            update(Customer)
            .where(col(Customer.id) == customer_id)
            .values(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
        )
        session.execute(delete(RecoveryCode).where(col(RecoveryCode.customer_id) == customer_id))
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip),
            action="customer.two_factor_disabled",
            object_type="customer",
            object_id=customer_id,
        )


# -- checking a code ------------------------------------------------------------------------


def verify_second_factor(*, customer_id: int, code: str | None) -> str:
    """Accept ``code`` for the account once (see the module docstring): ``"totp"`` or
    ``"recovery"``; ``"off"`` when the account has no second factor. SecondFactorRequired
    without a code, InvalidSecondFactor for a wrong or used one, RateLimited after 10
    attempts in 15 minutes."""
    customer = _customer(customer_id)
    if customer.totp_enabled_at is None:
        return "off"
    if not code or not isinstance(code, str) or not code.strip():
        raise SecondFactorRequired()
    scope, limit, window = ATTEMPT_LIMIT
    check_rate(scope=scope, subject=str(customer_id), limit=limit, window_seconds=window)
    given = _normalise(code[:64])
    secret = _unseal(customer_id, customer.totp_secret)
    if secret is not None and len(given) == 6 and given.isdigit():
        step = _matching_step(secret, given)
        if step is None:
            raise InvalidSecondFactor()
        with session_scope() as session:
            taken = session.execute(
                update(Customer)
                .where(
                    col(Customer.id) == customer_id,
                    or_(
                        col(Customer.totp_last_step).is_(None),
                        col(Customer.totp_last_step) < step,
                    ),
                )
                .values(totp_last_step=step)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                raise InvalidSecondFactor()  # this code (or a later one) was used already
        return "totp"
    with session_scope() as session:
        used = session.execute(
            update(RecoveryCode)
            .where(
                col(RecoveryCode.customer_id) == customer_id,
                col(RecoveryCode.code_hash) == _recovery_hash(given),
                col(RecoveryCode.used_at).is_(None),
            )
            .values(used_at=utcnow())
        )
        if not used.rowcount:  # type: ignore[attr-defined]
            raise InvalidSecondFactor()
        record_audit(
            session=session,
            actor=Actor.customer(customer_id),
            action="customer.recovery_code_used",
            object_type="customer",
            object_id=customer_id,
        )
    return "recovery"
