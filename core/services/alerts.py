"""Alerts for operators: low stock, low provider balance, provider down, orders that
need attention. One open alert per (kind, subject): raising it again while it is open
updates nothing and returns the open one, so a periodic check never floods the list."""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.errors import NotFound
from core.models import Alert, AlertKind, utcnow
from core.services.audit import Actor, record_audit


def raise_alert(
    *, session: Session, kind: AlertKind, subject: str, message: str, severity: str = "warning"
) -> Alert:
    """Open an alert unless one is open for the same kind and subject. Runs in the
    caller's transaction (flushes, never commits)."""
    existing = session.exec(
        select(Alert).where(
            Alert.kind == kind, Alert.subject == subject, col(Alert.acknowledged_at).is_(None)
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
    if alert.acknowledged_at is None:
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


def open_alerts(*, session: Session, limit: int = 200) -> list[Alert]:
    return list(
        session.exec(
            select(Alert)
            .where(col(Alert.acknowledged_at).is_(None))
            .order_by(col(Alert.id).desc())
            .limit(limit)
        )
    )
