"""Sign-up without account enumeration, e-mail verification, and the account e-mails.

Sign-up
    :func:`sign_up` gives one answer whether or not the address already has an account,
    and does the same work for both: it checks the input (the errors depend only on what
    was typed), hashes the password (argon2id, the slow part), then runs one short
    transaction of the same statements for both, an upsert that either creates the
    unverified account or leaves the existing one as it was, an audit event and one
    queued e-mail job. Nobody is signed in by it; the e-mail says
    what happened:

    - a new address gets a verification link ``/api/account/verify?token=…``
      (:func:`verification_link`, signed, purpose ``verify-email``, valid two days,
      bound to the address and to the account being still unverified, so it works once);
    - an address that already has an account gets a notice that someone tried to sign up
      with it, with links to sign in and to reset the password (the attempt's password
      is never stored).

    An unverified account can sign in with its password; guest orders with its address
    join it only once the address is verified (:func:`verify_email`, or a password reset).

E-mails
    :func:`send_account_email` is the queued job (``tasks.jobs.send_account_email``) for
    every account e-mail: ``verify``, ``sign-up-attempt`` and ``password-reset``. It looks
    the address up itself, so the web request never does for a reset.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from core.config import get_settings
from core.db import is_postgres, session_scope
from core.errors import InvalidInput
from core.i18n import current_language
from core.jobs import Job, enqueue_after_commit
from core.mail import get_mailer, sign_up_attempt_notice, verification_notice
from core.models import Customer
from core.models.base import utcnow
from core.services import referrals
from core.services.accounts import (
    SIGN_UP_LIMIT,
    SignedIn,
    _attach_guest_orders,
    _check_display_name,
    _rate,
    _start_session,
    send_password_reset,
)
from core.services.audit import Actor, record_audit
from core.services.customers import normalise_email
from core.services.passwords import check_password_policy, hash_password
from core.signing import InvalidToken, check_token, make_token, secret_key

VERIFY_PURPOSE: Final = "verify-email"
VERIFY_SECONDS: Final = 2 * 86_400
KINDS: Final = ("verify", "sign-up-attempt", "password-reset", "order-links")


class InvalidVerificationLink(InvalidToken):
    """The verification link is tampered with, expired or already used."""

    code = "invalid_verification_link"


# -- sign-up ----------------------------------------------------------------------------


def sign_up(
    *,
    email: str,
    password: str,
    display_name: str = "",
    ip: str | None = None,
    user_agent: str | None = None,
    referral: str | None = None,
) -> None:
    """Create an unverified account for a new address, or tell the owner of a known one
    that someone tried; the same answer (None) and the same work either way. InvalidInput
    for bad input only (a forged ``referral`` code included); RateLimited after too many
    sign-ups from the client address. A new account that came through a referral link
    (``referral``: the code) is recorded as referred (:mod:`core.services.referrals`)."""
    address = normalise_email(email)
    check_password_policy(password, address)
    name = _check_display_name(display_name)
    if referral:
        referrals.referrer_of(referral)  # a forged link: refused before any work
    if ip:
        _rate(SIGN_UP_LIMIT, ip)
    password_hash = hash_password(password)  # for both: the same slow step
    _record_sign_up(address, password_hash, name, ip, user_agent, referral)


def _record_sign_up(
    address: str,
    password_hash: str,
    name: str,
    ip: str | None,
    user_agent: str | None,
    referral: str | None = None,
) -> None:
    """One upsert for both cases, so both take the same path through the database: the
    row is inserted for a new address; for a known one the conflict "updates" the email
    to itself. Our freshly salted hash comes back only if our row went in."""
    table = Customer.__table__  # type: ignore[attr-defined]
    with session_scope() as session:
        insert = pg_insert if is_postgres(session) else sqlite_insert
        stmt = insert(table).values(
            email=address, password_hash=password_hash, display_name=name, created_at=utcnow()
        )
        row = session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.email], set_={"email": stmt.excluded.email}
            ).returning(table.c.id, table.c.password_hash)
        ).one()
        created = row.password_hash == password_hash
        if created and referral:
            referrals.record_referral(session=session, code=referral, referred_id=row.id)
        action, kind = (
            ("customer.signed_up", "verify")
            if created
            else ("customer.sign_up_attempted", "sign-up-attempt")
        )
        record_audit(
            session=session,
            actor=Actor.customer(row.id, ip=ip, user_agent=user_agent),
            action=action,
            object_type="customer",
            object_id=row.id,
        )
        enqueue_after_commit(
            session,
            Job.SEND_ACCOUNT_EMAIL,
            kind=kind,
            email=address,
            ip=ip,
            language=current_language(),
        )


# -- verification -------------------------------------------------------------------------


def _address_binding(email: str) -> str:
    mac = hmac.new(secret_key(), b"verify-email\x00" + email.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def verification_link(customer_id: int, email: str, *, now: float | None = None) -> str:
    token = make_token(
        VERIFY_PURPOSE,
        f"{customer_id}.{_address_binding(email)}",
        ttl_seconds=VERIFY_SECONDS,
        now=now,
    )
    return f"{get_settings().public_url}/api/account/verify?token={token}"


def verify_email(*, token: str, ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    """Mark the address of a verification link's account verified, attach its guest
    orders and sign in. InvalidVerificationLink for a tampered, expired or used link."""
    invalid = InvalidVerificationLink("This link is not valid. Sign in, or sign up again.")
    if not isinstance(token, str) or not token or len(token) > 1024:
        raise invalid
    try:
        payload = check_token(VERIFY_PURPOSE, token)
    except InvalidToken:
        raise invalid from None
    id_text, _, binding = payload.partition(".")
    if not id_text.isdigit():
        raise invalid
    customer_id = int(id_text)
    with session_scope() as session:
        customer = session.get(Customer, customer_id)
        if customer is None or not hmac.compare_digest(binding, _address_binding(customer.email)):
            raise invalid
        changed = session.execute(
            update(Customer)
            .where(col(Customer.id) == customer_id, col(Customer.verified_at).is_(None))
            .values(verified_at=utcnow())
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise InvalidVerificationLink(
                "This address is already verified: sign in with your password."
            )
        session.refresh(customer)
        attached = _attach_guest_orders(session, customer)
        new_token = _start_session(session, customer_id, ip, user_agent)
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip, user_agent=user_agent),
            action="customer.email_verified",
            object_type="customer",
            object_id=customer_id,
            data={"guest_orders_attached": attached},
        )
        return SignedIn(customer_id, customer.email, customer.display_name, new_token)


# -- the account e-mails (queued) ---------------------------------------------------------


def send_account_email(
    *, kind: str, email: str, ip: str | None = None, language: str | None = None
) -> str:
    """The queued job behind every account e-mail, in the ``language`` of the page that
    asked for it (core.i18n); returns what it did."""
    from core.i18n import use_language

    with use_language(language):
        return _send_account_email(kind=kind, email=email, ip=ip)


def _send_account_email(*, kind: str, email: str, ip: str | None) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown account e-mail {kind!r}", field="kind")
    if kind == "password-reset":
        return "sent" if send_password_reset(email=email, ip=ip) else "no account"
    if kind == "order-links":
        from core.services.notifications import send_order_links

        return "sent" if send_order_links(email=email) else "no orders"
    with session_scope(write=False) as session:
        customer = session.exec(select(Customer).where(Customer.email == email)).first()
    if customer is None:
        return "no account"
    assert customer.id is not None
    settings = get_settings()
    if kind == "verify":
        if customer.verified_at is not None:
            return "already verified"
        message = verification_notice(
            to=customer.email,
            link=verification_link(customer.id, customer.email),
            mail_from=settings.mail_from,
        )
    else:
        message = sign_up_attempt_notice(
            to=customer.email, public_url=settings.public_url, mail_from=settings.mail_from
        )
    get_mailer().send(message)
    return "sent"
