"""Alerts for operators: low stock, low provider balance, provider down, orders that
need attention. One open alert per (kind, subject): raising it again while it is open
updates nothing and returns the open one, so a periodic check never floods the list.

An alert closes itself when its cause is gone (:func:`resolve_alerts`, with the
resolution recorded): an order leaving ``needs_attention``, a product back above its
threshold, a provider that answers again, a webhook processed. An operator can also
acknowledge it. Closed alerts stay, as the history."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, bindparam, not_, update
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


_ALERTS = Alert.__table__  # type: ignore[attr-defined]
# Built once (every processed webhook resolves its own alerts): a Core UPDATE on the
# session's connection, with and without a kind filter.
_RESOLVE = (
    update(_ALERTS)
    .where(
        _ALERTS.c.subject == bindparam("b_subject"),
        _ALERTS.c.acknowledged_at.is_(None),
        _ALERTS.c.resolved_at.is_(None),
    )
    .values(resolved_at=bindparam("b_at"), resolution=bindparam("b_resolution"))
)
_RESOLVE_KINDS = _RESOLVE.where(_ALERTS.c.kind.in_(bindparam("b_kinds", expanding=True)))


def resolve_alerts(
    *, session: Session, subject: str, resolution: str, kinds: tuple[str, ...] | None = None
) -> int:
    """Close the open alerts about ``subject`` (of ``kinds`` if given): their cause is
    gone. Records when and why. Returns how many. Runs in the caller's transaction
    (flushes its pending changes first); alerts it loaded are not refreshed."""
    session.flush()
    params: dict[str, object] = {
        "b_subject": subject[:120],
        "b_at": utcnow(),
        "b_resolution": resolution[:2000],
    }
    if kinds is not None:
        params["b_kinds"] = list(kinds)
    result = session.connection().execute(_RESOLVE if kinds is None else _RESOLVE_KINDS, params)
    return int(result.rowcount or 0)


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
