"""The audit trail: who did what to which object, when, from where.

``record_audit`` runs inside the caller's transaction and never commits, so the audit
event and the action it records land together or not at all (invariant 7). Audit data
never carries key plaintext: reveal events name the key by id only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core.models import ActorType, AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who acts: a customer (id), an operator (name) or the system (component)."""

    type: ActorType
    id: str
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def operator(cls, name: str, **kw: Any) -> Actor:
        return cls(ActorType.OPERATOR, name, **kw)

    @classmethod
    def customer(cls, customer_id: int | str, **kw: Any) -> Actor:
        return cls(ActorType.CUSTOMER, str(customer_id), **kw)

    @classmethod
    def system(cls, component: str = "keyshop") -> Actor:
        return cls(ActorType.SYSTEM, component)

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def record_audit(
    *,
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the caller's transaction (flushes, never commits)."""
    event = AuditEvent(
        actor_type=actor.type,
        actor_id=actor.id[:160],
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        ip=actor.ip,
        user_agent=(actor.user_agent or None) and actor.user_agent[:400],
        data=data or {},
    )
    session.add(event)
    session.flush()
    return event


def search_audit(
    *,
    session: Session,
    action: str | None = None,
    actor_id: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    ip: str | None = None,
    since: datetime | None = None,
    prefix: bool = False,
    limit: int = 100,
    before_id: int | None = None,
) -> Sequence[AuditEvent]:
    """Newest first; page with ``before_id`` (the smallest id of the previous page).

    ``prefix``: the text criteria (action, actor, object type and id, IP) match values
    that start with them (``key.`` finds every key action) instead of equal ones."""
    query = select(AuditEvent)
    for column, value in (
        (AuditEvent.action, action),
        (AuditEvent.actor_id, actor_id),
        (AuditEvent.object_type, object_type),
        (AuditEvent.object_id, None if object_id is None else str(object_id)),
        (AuditEvent.ip, ip),
    ):
        if value is None or (value == "" and column is not AuditEvent.object_id):
            continue
        if prefix:
            query = query.where(col(column).startswith(value, autoescape=True))
        else:
            query = query.where(col(column) == value)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    if before_id:
        query = query.where(col(AuditEvent.id) < before_id)
    return session.exec(query.order_by(col(AuditEvent.id).desc()).limit(limit)).all()
