"""Account deletion: erase what identifies the customer, keep what the law and the audit
trail require.

Erased at once, in one transaction:
    the e-mail address (replaced by ``deleted-<id>@deleted.invalid``, so the real address
    is free for a new account), the password hash, the display name, the verification
    time, and every session row (with its address and browser).

Kept:
    orders, their lines and the e-mail address on each order (tax and consumer law ask a
    shop to keep its sales records; the delivery e-mails and refunds need them), key
    reports about those orders, and the audit trail (append-only: who did what), which
    refers to the customer only by id. The customer row stays as that id's anchor, with
    nothing personal in it. Rate-limit counters that name the address expire within a
    day (core.services.ratelimit).

Deleting needs the account's password (a stolen session alone cannot do it), and is
rate limited like sign-in failures.
"""

from __future__ import annotations

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from core.db import session_scope
from core.errors import InvalidInput
from core.models import Customer, CustomerSession, Order
from core.services.accounts import InvalidCredentials
from core.services.audit import Actor, record_audit
from core.services.passwords import password_hasher
from core.services.ratelimit import check_rate

DELETE_LIMIT = ("delete-account", 5, 900)
ERASED_DOMAIN = "deleted.invalid"


def erased_email(customer_id: int) -> str:
    return f"deleted-{customer_id}@{ERASED_DOMAIN}"


def delete_account(
    *, customer_id: int, password: str, ip: str | None = None, user_agent: str | None = None
) -> int:
    """Erase the account (see the module docstring) after checking its password.
    InvalidCredentials for a wrong password; RateLimited after 5 tries in 15 minutes.
    Returns how many orders were kept."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if not isinstance(password, str) or not password:
        raise InvalidInput("enter your password to delete the account", field="password")
    scope, limit, window = DELETE_LIMIT
    check_rate(scope=scope, subject=str(customer_id), limit=limit, window_seconds=window)
    with session_scope(write=False) as session:
        customer = session.get(Customer, customer_id)
    if customer is None or not customer.password_hash:
        raise InvalidCredentials()
    try:
        password_hasher().verify(customer.password_hash, password[:256])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise InvalidCredentials() from None
    with session_scope() as session:
        erased = session.execute(
            update(Customer)
            .where(
                col(Customer.id) == customer_id,
                col(Customer.password_hash) == customer.password_hash,
            )
            .values(
                email=erased_email(customer_id), password_hash=None, display_name="",
                verified_at=None,
            )
        )  # fmt: skip
        if not erased.rowcount:  # type: ignore[attr-defined]
            raise InvalidCredentials()  # the password changed meanwhile: ask again
        kept = session.exec(
            select(func.count()).select_from(Order).where(Order.customer_id == customer_id)
        ).one()
        session.execute(
            delete(CustomerSession).where(col(CustomerSession.customer_id) == customer_id)
        )
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip, user_agent=user_agent),
            action="customer.deleted",
            object_type="customer",
            object_id=customer_id,
            data={"orders_kept": int(kept)},
        )
    return int(kept)
