"""Customer accounts: sign-up, sign-in, sessions, password reset and the order history.

Passwords (hashing and policy) are :mod:`core.services.passwords`.

Sessions
    A session is a bearer token (``secrets.token_urlsafe(32)``, 256 random bits) held by
    the browser; the database keeps only its SHA-256, so a copy of the database signs
    nobody in. A session lives ``KEYSHOP_SESSION_DAYS`` (30) since it was last used:
    :func:`customer_for_token` slides ``last_seen_at`` and ``expires_at`` forward, at
    most once a minute so that page loads do not all write.

Sign-in
    One answer (:class:`InvalidCredentials`) for an unknown e-mail and a wrong password,
    and about the same time for both: an unknown e-mail still verifies a password against
    a dummy hash. Limits (:data:`SIGN_IN_LIMITS`): attempts from one client address
    are refused past 30 in 15 minutes (counted before the password is checked);
    failures for one e-mail from one address are refused past 10; failures for one
    e-mail from all addresses together never refuse (that would let anyone lock a known
    e-mail out) but slow every further attempt for it down, doubling from 0.25 s up to
    4 s, so guessing from many addresses stays slow while the owner still gets in.
    An account with two-factor sign-in on also needs ``code`` once the password is
    right (core.services.twofactor: SecondFactorRequired, InvalidSecondFactor).

Password reset
    :func:`request_password_reset` answers the same, doing the same work, whether or not
    an account uses the address (no account enumeration): it only queues a job, and the
    job (:func:`send_password_reset`, on the worker) looks the address up and, when an
    account uses it, e-mails a link ``{KEYSHOP_PUBLIC_URL}/reset-password?token=…``.
    The token is signed (:func:`core.signing.make_token`, purpose ``password-reset``,
    valid ``KEYSHOP_PASSWORD_RESET_MINUTES``) over the customer id and an HMAC of the
    current password hash, so it stops working once the password changes: it works once.
    A mail failure is the job's to retry, never shown to the person who asked.
    :func:`reset_password` sets the new password, revokes every session the account had,
    marks the e-mail verified (following the link proved it) and signs in.

Orders and accounts
    An order placed while signed in belongs to the account (checkout stores the
    customer id). A guest order placed with the account's e-mail is attached to the
    account once the e-mail is verified, never before: an unverified sign-up with
    someone's address must not see that person's guest orders. Verification happens when
    a reset link is followed; the guest orders with that address are attached in the same
    transaction, and each later sign-in of a verified account attaches guest orders placed
    since. Sign-up itself (enumeration-proof, with its verification link) is
    :mod:`core.services.signup`. The portal's ownership check (``order.customer_id``) then covers them.

Every function here opens its own transactions (these are use cases, called by the web
layer); the slow password hashing always runs outside any transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.i18n import gettext
from core.mail import get_mailer, password_reset_notice
from core.models import Customer, CustomerSession, Order, OrderLine, OrderStatus
from core.models.base import utcnow
from core.services.audit import Actor, record_audit
from core.services.customers import normalise_email
from core.services.passwords import (
    PASSWORD_MAX,
    _dummy_hash,
    check_password_policy,
    hash_password,
    password_hasher,
)
from core.services.ratelimit import check_rate, hits, record_hit, refuse_if_reached
from core.signing import InvalidToken, check_token, make_token, secret_key

log = logging.getLogger(__name__)

DISPLAY_NAME_MAX: Final = 120
RESET_PURPOSE: Final = "password-reset"
SEEN_EVERY: Final = timedelta(minutes=1)
HISTORY_MAX: Final = 200

# (scope, limit, window seconds). Sign-in: attempts per client address are refused past
# 30; failures per (e-mail, address) are refused past 10; failures per e-mail from every
# address only slow that e-mail's sign-ins down (nobody can lock an account out).
SIGN_IN_LIMITS: Final = {
    "ip": ("sign-in:ip", 30, 900),
    "pair": ("sign-in:pair", 10, 900),
    "email": ("sign-in:email", 10, 900),
}
SLOW_DOWN_BASE: Final = 0.25  # seconds, doubled per failure past the e-mail's limit
SLOW_DOWN_MAX: Final = 4.0
SIGN_UP_LIMIT: Final = ("sign-up:ip", 20, 3600)
RESET_LIMITS: Final = {"email": ("reset:email", 5, 3600), "ip": ("reset:ip", 20, 3600)}

_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]{20,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- results and errors ---------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    customer_id: int
    email: str
    display_name: str
    token: str = field(repr=False)  # the bearer token: the browser's cookie, nowhere else


@dataclass(frozen=True)
class CustomerInfo:
    id: int
    email: str
    display_name: str
    verified: bool


@dataclass(frozen=True)
class OrderSummary:
    number: str
    status: str
    status_label: str
    created_at: datetime
    total_minor: int
    currency: str
    item_count: int


class InvalidCredentials(DomainError):
    """Unknown e-mail or wrong password: deliberately the same answer."""

    code = "invalid_credentials"
    http_status = 401

    def __init__(self) -> None:
        super().__init__("That e-mail address and password do not match an account.")


class InvalidResetLink(InvalidToken):
    """The password reset link is tampered with, expired or already used."""

    code = "invalid_reset_link"


# -- input checks and limits ----------------------------------------------------------


def _check_display_name(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("the name must be text", field="display_name")
    name = value.strip()
    if len(name) > DISPLAY_NAME_MAX or _CONTROL.search(name):
        raise InvalidInput(
            f"the name must be one line of at most {DISPLAY_NAME_MAX} characters",
            field="display_name",
        )
    return name


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if isinstance(value, str) and value else None


def slow_down(seconds: float) -> None:
    """Wait before checking a password (tests replace it)."""
    time.sleep(seconds)


def _rate(limits: tuple[str, int, int], subject: str) -> None:
    scope, limit, window = limits
    check_rate(scope=scope, subject=subject, limit=limit, window_seconds=window)


# -- sessions ---------------------------------------------------------------------------


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def _start_session(
    session: Session, customer_id: int, ip: str | None, user_agent: str | None
) -> str:
    """Add a new session for ``customer_id`` to the caller's transaction; return the
    bearer token (never stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        CustomerSession(
            token_hash=token_hash(token),
            customer_id=customer_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(days=get_settings().session_days),
            ip=_clip(ip, 64),
            user_agent=_clip(user_agent, 400),
        )
    )
    return token


def _attach_guest_orders(session: Session, customer: Customer) -> int:
    """Attach guest orders placed with the (verified) customer's e-mail to the account.
    Runs in the caller's transaction."""
    assert customer.verified_at is not None and customer.id is not None
    result = session.execute(
        update(Order)
        .where(col(Order.customer_id).is_(None), col(Order.email) == customer.email)
        .values(customer_id=customer.id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def create_account(
    *,
    email: str,
    password: str,
    display_name: str = "",
    ip: str | None = None,
    user_agent: str | None = None,
) -> SignedIn:
    """Create an account and sign it in. InvalidInput (field ``email``) when the address
    already has an account. The new account is unverified (see the module docstring).

    This answer tells whether an address has an account: the storefront never calls it
    (it uses :func:`core.services.signup.sign_up`); operator tools and tests do."""
    address = normalise_email(email)
    check_password_policy(password, address)
    name = _check_display_name(display_name)
    if ip:
        _rate(SIGN_UP_LIMIT, ip)
    taken = InvalidInput(
        "an account with this e-mail address already exists: sign in, or reset your password",
        field="email",
    )
    with session_scope(write=False) as session:
        if session.exec(select(Customer.id).where(Customer.email == address)).first():
            raise taken
    password_hash = hash_password(password)
    try:
        with session_scope() as session:
            customer = Customer(email=address, password_hash=password_hash, display_name=name)
            session.add(customer)
            session.flush()
            assert customer.id is not None
            token = _start_session(session, customer.id, ip, user_agent)
            record_audit(
                session=session,
                actor=Actor.customer(customer.id, ip=ip, user_agent=user_agent),
                action="customer.signed_up",
                object_type="customer",
                object_id=customer.id,
            )
            result = SignedIn(customer.id, address, name, token)
    except IntegrityError:  # the same address signed up a moment ago
        raise taken from None
    return result


def sign_in(
    *,
    email: str,
    password: str,
    ip: str | None = None,
    user_agent: str | None = None,
    code: str | None = None,
) -> SignedIn:
    """Sign in with e-mail and password. InvalidCredentials for an unknown e-mail or a
    wrong password (the same message, about the same time); RateLimited after too many
    attempts for the address or from the client address."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        raise InvalidInput("enter the e-mail address of your account", field="email") from None
    if not isinstance(password, str) or not password:
        raise InvalidInput("enter your password", field="password")
    if ip:
        _rate(SIGN_IN_LIMITS["ip"], ip)
    pair = f"{address} {ip or '-'}"
    pair_scope, pair_limit, pair_window = SIGN_IN_LIMITS["pair"]
    refuse_if_reached(scope=pair_scope, subject=pair, limit=pair_limit, window_seconds=pair_window)
    email_scope, email_limit, email_window = SIGN_IN_LIMITS["email"]
    excess = hits(scope=email_scope, subject=address, window_seconds=email_window) - email_limit
    if excess >= 0:
        slow_down(min(SLOW_DOWN_MAX, SLOW_DOWN_BASE * 2.0**excess))

    def failed() -> InvalidCredentials:
        record_hit(scope=pair_scope, subject=pair, window_seconds=pair_window)
        record_hit(scope=email_scope, subject=address, window_seconds=email_window)
        return InvalidCredentials()

    with session_scope(write=False) as session:
        customer = session.exec(select(Customer).where(Customer.email == address)).first()
    hasher = password_hasher()
    profile = get_settings().password_hashing
    if customer is None or not customer.password_hash or len(password) > PASSWORD_MAX:
        _spend_like_a_check(hasher, profile, password)
        if customer is not None:
            _record_failed_sign_in(customer, ip, user_agent)
        raise failed()
    stored = customer.password_hash
    try:
        hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        _record_failed_sign_in(customer, ip, user_agent)
        raise failed() from None
    assert customer.id is not None
    if customer.totp_enabled_at is not None:  # two-factor sign-in: the code, after the password
        from core.services.twofactor import verify_second_factor

        verify_second_factor(customer_id=customer.id, code=code)
    new_hash = hash_password(password) if hasher.check_needs_rehash(stored) else None
    with session_scope() as session:
        if new_hash is not None:  # only if nobody changed the password meanwhile
            session.execute(
                update(Customer)
                .where(col(Customer.id) == customer.id, col(Customer.password_hash) == stored)
                .values(password_hash=new_hash)
            )
        current = session.get(Customer, customer.id)
        if current is None:  # deleted a moment ago
            raise InvalidCredentials()
        if current.verified_at is not None:
            _attach_guest_orders(session, current)
        token = _start_session(session, customer.id, ip, user_agent)
        record_audit(
            session=session,
            actor=Actor.customer(customer.id, ip=ip, user_agent=user_agent),
            action="customer.signed_in",
            object_type="customer",
            object_id=customer.id,
            data={"rehashed": True} if new_hash else None,
        )
        return SignedIn(customer.id, current.email, current.display_name, token)


def _spend_like_a_check(hasher: PasswordHasher, profile: str, password: str) -> None:
    with contextlib.suppress(VerificationError):
        hasher.verify(_dummy_hash(profile), password[:PASSWORD_MAX])


def _record_failed_sign_in(customer: Customer, ip: str | None, user_agent: str | None) -> None:
    assert customer.id is not None
    with session_scope() as session:
        record_audit(
            session=session,
            actor=Actor.customer(customer.id, ip=ip, user_agent=user_agent),
            action="customer.sign_in_failed",
            object_type="customer",
            object_id=customer.id,
        )


def _well_formed(token: object) -> bool:
    return isinstance(token, str) and bool(_TOKEN_CHARS.match(token))


def sign_out(*, token: str) -> None:
    """End the session of ``token``. Unknown, malformed or already ended: nothing to do."""
    if not _well_formed(token):
        return
    with session_scope() as session:
        row = session.exec(
            select(CustomerSession).where(CustomerSession.token_hash == token_hash(token))
        ).first()
        if row is None or row.revoked_at is not None:
            return
        row.revoked_at = utcnow()
        session.add(row)
        record_audit(
            session=session,
            actor=Actor.customer(row.customer_id),
            action="customer.signed_out",
            object_type="customer",
            object_id=row.customer_id,
        )


def customer_for_token(*, token: str) -> CustomerInfo | None:
    """The customer signed in with ``token``; None for unknown, expired, revoked or
    malformed tokens. Slides the session's expiry forward (at most once a minute)."""
    if not _well_formed(token):
        return None
    digest = token_hash(token)
    now = utcnow()
    with session_scope(write=False) as session:
        found = session.exec(
            select(CustomerSession, Customer)
            .join(Customer, col(Customer.id) == CustomerSession.customer_id)
            .where(CustomerSession.token_hash == digest)
        ).first()
    if found is None:
        return None
    row, customer = found
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= SEEN_EVERY:
        with session_scope() as session:
            session.execute(
                update(CustomerSession)
                .where(
                    col(CustomerSession.id) == row.id,
                    col(CustomerSession.revoked_at).is_(None),
                    col(CustomerSession.last_seen_at) < now - SEEN_EVERY,
                )
                .values(
                    last_seen_at=now,
                    expires_at=now + timedelta(days=get_settings().session_days),
                )
            )
    assert customer.id is not None
    return CustomerInfo(
        id=customer.id,
        email=customer.email,
        display_name=customer.display_name,
        verified=customer.verified_at is not None,
    )


# -- password reset ----------------------------------------------------------------------


def _password_binding(password_hash: str | None) -> str:
    """A short HMAC of the current password hash: the reset token carries it, so the
    token dies with the password it was made for. (The hash itself never leaves the
    database; the token's payload is readable.)"""
    mac = hmac.new(
        secret_key(), b"password-reset\x00" + (password_hash or "").encode(), hashlib.sha256
    )
    return mac.hexdigest()[:32]


def reset_link(customer_id: int, password_hash: str | None, *, now: float | None = None) -> str:
    token = make_token(
        RESET_PURPOSE,
        f"{customer_id}.{_password_binding(password_hash)}",
        ttl_seconds=get_settings().password_reset_minutes * 60,
        now=now,
    )
    from core.i18n import localised_path

    return f"{get_settings().public_url}{localised_path('/reset-password')}?token={token}"


def request_password_reset(*, email: str, ip: str | None = None) -> None:
    """Queue the reset e-mail for ``email``; the same outcome, and the same work, whether
    or not an account uses it (the request never looks the address up: the queued job
    does, :func:`send_password_reset`). InvalidInput only for something that is not an
    e-mail address; RateLimited after too many requests for the address or from the
    client address."""
    from core.i18n import current_language
    from core.jobs import Job, dispatch

    address = normalise_email(email)
    if ip:
        _rate(RESET_LIMITS["ip"], ip)
    _rate(RESET_LIMITS["email"], address)
    dispatch(
        Job.SEND_ACCOUNT_EMAIL,
        kind="password-reset",
        email=address,
        ip=ip,
        language=current_language(),
    )


def send_password_reset(*, email: str, ip: str | None = None) -> bool:
    """The queued half of :func:`request_password_reset`: e-mail a reset link if an
    account uses ``email`` (True), else nothing (False). A mail failure raises MailError
    so the queue retries it."""
    with session_scope(write=False) as session:
        customer = session.exec(select(Customer).where(Customer.email == email)).first()
    if customer is None:
        return False
    assert customer.id is not None
    settings = get_settings()
    link = reset_link(customer.id, customer.password_hash)
    minutes = settings.password_reset_minutes
    message = password_reset_notice(
        to=customer.email, link=link, minutes=minutes, mail_from=settings.mail_from
    )
    get_mailer().send(message)
    with session_scope() as session:
        record_audit(
            session=session,
            actor=Actor.customer(customer.id, ip=ip),
            action="customer.password_reset_requested",
            object_type="customer",
            object_id=customer.id,
            data={"sent": True},
        )
    return True


def reset_password(
    *, token: str, new_password: str, ip: str | None = None, user_agent: str | None = None
) -> SignedIn:
    """Set a new password with a reset link's token, revoke every other session, mark the
    e-mail verified, attach its guest orders, and sign in. InvalidResetLink for a
    tampered, expired or used link; InvalidInput for a password the policy refuses."""
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise InvalidResetLink("This password reset link is not valid.")
    try:
        payload = check_token(RESET_PURPOSE, token)
    except InvalidToken as exc:
        if "expired" in exc.message:
            raise InvalidResetLink(
                "This password reset link has expired. Ask for a new one."
            ) from None
        raise InvalidResetLink("This password reset link is not valid.") from None
    id_text, _, binding = payload.partition(".")
    if not id_text.isdigit() or not binding:
        raise InvalidResetLink("This password reset link is not valid.")
    customer_id = int(id_text)
    used = InvalidResetLink(
        "This password reset link was already used. Ask for a new one if you need it."
    )
    with session_scope(write=False) as session:
        customer = session.get(Customer, customer_id)
    if customer is None:
        raise InvalidResetLink("This password reset link is not valid.")
    old_hash = customer.password_hash
    if not hmac.compare_digest(binding, _password_binding(old_hash)):
        raise used
    check_password_policy(new_password, customer.email)
    new_hash = hash_password(new_password)
    now = utcnow()
    with session_scope() as session:
        changed = session.execute(
            update(Customer)
            .where(
                col(Customer.id) == customer_id,
                col(Customer.password_hash).is_(None)
                if old_hash is None
                else col(Customer.password_hash) == old_hash,
            )
            .values(password_hash=new_hash, verified_at=func.coalesce(Customer.verified_at, now))
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise used  # another request used the link first
        revoked = session.execute(
            update(CustomerSession)
            .where(
                col(CustomerSession.customer_id) == customer_id,
                col(CustomerSession.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )
        current = session.get(Customer, customer_id, populate_existing=True)
        assert current is not None
        attached = _attach_guest_orders(session, current)
        new_token = _start_session(session, customer_id, ip, user_agent)
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip, user_agent=user_agent),
            action="customer.password_reset",
            object_type="customer",
            object_id=customer_id,
            data={
                "sessions_revoked": int(revoked.rowcount or 0),  # type: ignore[attr-defined]
                "guest_orders_attached": attached,
            },
        )
        return SignedIn(customer_id, current.email, current.display_name, new_token)


# -- order history --------------------------------------------------------------------------


def status_label(order: Order) -> str:
    """The customer-facing label of an order's status, the one the order page shows."""
    from core.services import portal  # imported late: portal may come to import accounts

    label, _ = portal._STATUS.get(order.status, (order.status.replace("_", " ").capitalize(), 0))
    if order.status == OrderStatus.PAID and (
        order.fulfilment_attempts > 0 or order.fulfilment_lease_until is not None
    ):
        label, _ = portal.DELIVERING
    return gettext(label)  # in the language in force (core.i18n)


def order_history(*, customer_id: int, limit: int = 50) -> list[OrderSummary]:
    """The orders of the account, newest first (see the module docstring for which
    orders belong to an account)."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise InvalidInput("unknown customer", field="customer_id")
    limit = max(1, min(int(limit), HISTORY_MAX))
    items = (
        select(OrderLine.order_id, func.sum(OrderLine.quantity).label("items"))
        .group_by(col(OrderLine.order_id))
        .subquery()
    )
    with session_scope(write=False) as session:
        rows = session.exec(
            select(Order, func.coalesce(items.c["items"], 0))
            .outerjoin(items, items.c.order_id == col(Order.id))
            .where(Order.customer_id == customer_id)
            .order_by(col(Order.created_at).desc(), col(Order.id).desc())
            .limit(limit)
        ).all()
    return [
        OrderSummary(
            number=order.number,
            status=order.status,
            status_label=status_label(order),
            created_at=order.created_at,
            total_minor=order.total_minor,
            currency=order.currency,
            item_count=int(count),
        )
        for order, count in rows
    ]
