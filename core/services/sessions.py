"""A customer's signed-in browsers: list them, end one, or sign out everywhere.

Sessions are rows of ``customer_sessions`` (only the SHA-256 of each bearer token is
stored: core.services.accounts). A customer sees their own live sessions (not ended, not
expired) with when each began and was last used, from which address and browser, and
which one is the current browser; they can end any one of them, or all at once ("sign
out everywhere", which also ends the current one). Every function here opens its own
transaction and acts only on the given customer's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from core.db import session_scope
from core.errors import DomainError
from core.models import CustomerSession
from core.models.base import utcnow
from core.services.accounts import token_hash
from core.services.audit import Actor, record_audit

MAX_LISTED = 50


@dataclass(frozen=True)
class SessionInfo:
    id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class UnknownSession(DomainError):
    """No live session with that id belongs to this customer."""

    code = "unknown_session"
    http_status = 404


def list_sessions(*, customer_id: int, current_token: str | None = None) -> list[SessionInfo]:
    """The customer's live sessions, most recently used first."""
    current = token_hash(current_token) if current_token else None
    now = utcnow()
    with session_scope(write=False) as session:
        rows = session.exec(
            select(CustomerSession)
            .where(
                CustomerSession.customer_id == customer_id,
                col(CustomerSession.revoked_at).is_(None),
                CustomerSession.expires_at > now,
            )
            .order_by(col(CustomerSession.last_seen_at).desc(), col(CustomerSession.id).desc())
            .limit(MAX_LISTED)
        ).all()
    return [
        SessionInfo(
            id=row.id or 0,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            ip=row.ip,
            user_agent=row.user_agent,
            current=current is not None and row.token_hash == current,
        )
        for row in rows
    ]


def end_session(*, customer_id: int, session_id: int, ip: str | None = None) -> None:
    """End one of the customer's sessions. UnknownSession when it is not theirs or is
    already over (the same answer: another customer's ids tell nothing)."""
    with session_scope() as session:
        ended = session.execute(
            update(CustomerSession)
            .where(
                col(CustomerSession.id) == session_id,
                col(CustomerSession.customer_id) == customer_id,
                col(CustomerSession.revoked_at).is_(None),
            )
            .values(revoked_at=utcnow())
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            raise UnknownSession("That session has already ended.")
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip),
            action="customer.session_ended",
            object_type="customer",
            object_id=customer_id,
            data={"session": session_id},
        )


def sign_out_everywhere(*, customer_id: int, ip: str | None = None) -> int:
    """End every session of the customer, this browser's too. Returns how many."""
    with session_scope() as session:
        ended = session.execute(
            update(CustomerSession)
            .where(
                col(CustomerSession.customer_id) == customer_id,
                col(CustomerSession.revoked_at).is_(None),
            )
            .values(revoked_at=utcnow())
        )
        count = int(ended.rowcount or 0)  # type: ignore[attr-defined]
        record_audit(
            session=session,
            actor=Actor.customer(customer_id, ip=ip),
            action="customer.signed_out_everywhere",
            object_type="customer",
            object_id=customer_id,
            data={"sessions": count},
        )
        return count
