"""Alerts for operators: low stock, low provider balance, provider down, orders that
need attention. One open alert per (kind, subject): raising it again while it is open
updates nothing and returns the open one, so a periodic check never floods the list.

An alert closes itself when its cause is gone (:func:`resolve_alerts`, with the
resolution recorded): an order leaving ``needs_attention``, a product back above its
threshold, a provider that answers again, a webhook processed. An operator can also
acknowledge it. Closed alerts stay, as the history."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, not_, update
from sqlmodel import Session, col, select

from core.errors import NotFound
from core.models import Alert, AlertKind, utcnow
from core.services.audit import Actor, record_audit


def is_open() -> ColumnElement[bool]:
    """The one rule for an open alert: neither acknowledged nor resolved."""
    return and_(col(Alert.acknowledged_at).is_(None), col(Alert.resolved_at).is_(None))


def raise_alert(
    *, session: Session, kind: AlertKind, subject: str, message: str, severity: str = "warning"
) -> Alert:
    """Open an alert unless one is open for the same kind and subject. Runs in the
    caller's transaction (flushes, never commits)."""
    existing = session.exec(
        select(Alert).where(
            Alert.kind == kind,
            Alert.subject == subject,
            is_open(),
        )
    ).first()
    if existing is not None:
        return existing
    alert = Alert(kind=kind, subject=subject[:120], message=message, severity=severity)
    session.add(alert)
    session.flush()
    return alert


def acknowledge_alert(*, session: Session, alert_id: int, actor: Actor) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    if alert.acknowledged_at is None and alert.resolved_at is None:
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = actor.id
        session.add(alert)
        record_audit(
            session=session,
            actor=actor,
            action="alert.acknowledge",
            object_type="alert",
            object_id=alert_id,
            data={"kind": alert.kind, "subject": alert.subject},
        )
        session.flush()
    return alert


def resolve_alerts(
    *, session: Session, subject: str, resolution: str, kinds: tuple[str, ...] | None = None
) -> int:
    """Close the open alerts about ``subject`` (of ``kinds`` if given): their cause is
    gone. Records when and why. Returns how many. Runs in the caller's transaction."""
    query = (
        update(Alert)
        .where(
            col(Alert.subject) == subject[:120],
            is_open(),
        )
        .values(resolved_at=utcnow(), resolution=resolution[:2000])
        .execution_options(synchronize_session=False)
    )
    if kinds is not None:
        query = query.where(col(Alert.kind).in_(kinds))
    return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def open_alerts(*, session: Session, limit: int = 200) -> list[Alert]:
    return list(
        session.exec(select(Alert).where(is_open()).order_by(col(Alert.id).desc()).limit(limit))
    )


def closed_alerts(*, session: Session, limit: int = 200) -> list[Alert]:
    """The history: alerts acknowledged or resolved, most recently created first."""
    return list(
        session.exec(
            select(Alert).where(not_(is_open())).order_by(col(Alert.id).desc()).limit(limit)
        )
    )
