"""Inbound webhooks: authenticate, store raw, de-duplicate, act at most once.

:func:`receive_webhook` is what every HTTP endpoint calls (and what the built-in test
payments call, so both take the same path):

1. size and shape checks: an oversized or malformed body is refused (400) and not stored;
2. authentication by the source's own rule; a failure answers 401 and changes nothing
   in the shop (the attempt is logged under a synthetic id that can never occupy a real
   event id, so a forger cannot squat one);
3. the raw body is stored as a :class:`WebhookEvent`, unique per (source, event id): a
   redelivery finds the row already there and is answered 200 without acting again —
   unless the first copy was never acted on, in which case it is queued again;
4. processing is queued (``process_webhook``) after the commit.

The stored, authenticated row is the source of truth (an outbox): if handing it to the
queue fails, or the worker dies while acting on it, ``processed_at`` stays NULL and
:func:`requeue_unprocessed` (run by reconciliation) queues it again after
``KEYSHOP_WEBHOOK_RETRY_SECONDS``, backing off, with an alert once it keeps failing.

:func:`process_webhook` claims the event with a compare-and-set on ``processed_at`` in
the same transaction as its effect, so however often it runs, the effect happens once
(invariant 4).

A delivery that fails authentication keeps only the first KiB of its body with the
whole body's size and SHA-256 (forgers cannot fill the database), is counted per source
(:func:`rejection_counts`) and purged after ``KEYSHOP_REJECTED_WEBHOOK_DAYS``
(:func:`purge_rejected_webhooks`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from core import jobs, metrics, tracing
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, InvalidInput, NotFound
from core.jobs import Job
from core.models import AlertKind, WebhookAttempt, WebhookEvent, row_id, utcnow
from core.services import locking
from core.services.alerts import raise_alert, resolve_alerts
from core.services.audit import Actor, record_audit
from core.services.webhook_sources import SOURCES
from core.services.webhook_types import (
    Receipt,
    Verified,
    WebhookRejected,
    parse_json_object,
)

log = logging.getLogger(__name__)

__all__ = [
    "Receipt",
    "Verified",
    "WebhookRejected",
    "parse_json_object",
    "process_webhook",
    "purge_rejected_webhooks",
    "receive_webhook",
    "rejection_counts",
    "replay_webhook",
    "requeue_unprocessed",
    "webhook_attempts",
]

#: How much of a rejected delivery's body is kept (with its size and digest).
REJECTED_PREFIX_BYTES = 1024
#: Redeliveries by reconciliation after which an operator is alerted (it goes on trying).
ALERT_AFTER_REDELIVERIES = 5
#: The longest wait between two redeliveries of the same row.
MAX_REDELIVERY_BACKOFF = timedelta(hours=1)


def _insert_ignoring_duplicate(session: Session, values: dict[str, Any]) -> int | None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(WebhookEvent.__table__)  # type: ignore[attr-defined]
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(WebhookEvent.__table__.c.id)  # type: ignore[attr-defined]
    )
    return session.execute(stmt).scalar_one_or_none()


@tracing.traced("webhook receive", "source")
def receive_webhook(
    *, source: str, headers: Mapping[str, str], body: bytes, remote_addr: str | None = None
) -> Receipt:
    """Authenticate, store and queue one inbound webhook. Raises WebhookRejected."""
    if source not in SOURCES:
        raise WebhookRejected(f"unknown webhook source {source!r}", 404)
    if len(body) > get_settings().webhook_max_bytes:
        raise WebhookRejected("body too large", 400)
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        verified = SOURCES[source].authenticate(lowered, body)
    except WebhookRejected as exc:
        metrics.WEBHOOKS.labels(source, "rejected").inc()
        if exc.http_status == 401:
            _log_forgery(source, lowered, body, remote_addr, exc.message)
        raise
    event_id = verified.event_id[:255]
    with session_scope() as session:
        new_id = _insert_ignoring_duplicate(
            session,
            {
                "source": source,
                "event_id": event_id,
                "event_type": verified.event_type[:80],
                "raw_body": body,
                "authenticated": True,
                "remote_addr": remote_addr,
                "received_at": utcnow(),
                "subject": verified.subject[:64] if verified.subject else None,
                "body_size": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
        )
        if new_id is not None:
            tracing.annotate(webhook_id=new_id)
            jobs.enqueue_after_commit(session, Job.PROCESS_WEBHOOK, new_id)
            metrics.after_commit(session, metrics.WEBHOOKS.labels(source, "accepted").inc)
            return Receipt(status=200, webhook_id=new_id, duplicate=False)
        # Delivered again. If the first copy was never acted on (its hand-over to the
        # queue was lost, or its worker died), this delivery queues it again.
        stored = session.execute(
            select(WebhookEvent.id, WebhookEvent.processed_at).where(
                WebhookEvent.source == source, WebhookEvent.event_id == event_id
            )
        ).first()
        metrics.after_commit(session, metrics.WEBHOOKS.labels(source, "duplicate").inc)
        if stored is not None and stored[1] is None:
            jobs.enqueue_after_commit(session, Job.PROCESS_WEBHOOK, stored[0])
            log.info(
                "webhook %s %s delivered again before it was acted on: queued", source, event_id
            )
            return Receipt(status=200, webhook_id=stored[0], duplicate=True)
    log.info("webhook %s %s delivered again; already acted on", source, event_id)
    return Receipt(status=200, webhook_id=None, duplicate=True)


def _log_forgery(
    source: str, headers: Mapping[str, str], body: bytes, remote_addr: str | None, reason: str
) -> None:
    """Keep a record of a failed authentication for operators. It never occupies a real
    event id and is never processed."""
    log.warning("webhook from %s failed authentication (%s) from %s", source, reason, remote_addr)
    with session_scope() as session:
        session.add(
            WebhookEvent(
                source=source,
                event_id=f"unauthenticated:{uuid.uuid4()}",
                event_type=str(headers.get("x-event-name", ""))[:80],
                raw_body=body[:REJECTED_PREFIX_BYTES],
                body_size=len(body),
                body_sha256=hashlib.sha256(body).hexdigest(),
                authenticated=False,
                remote_addr=remote_addr,
                processed_at=utcnow(),
                outcome=f"rejected: {reason}",
            )
        )


_EVENTS = WebhookEvent.__table__  # type: ignore[attr-defined]
# Built once: every payment passes here, so its bookkeeping statements are Core
# statements on the session's connection (the webhook path's CPU: bench/NOTES.md).
_CLAIM = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("b_id"), _EVENTS.c.processed_at.is_(None))
    .values(processed_at=bindparam("b_at"))
)
_OUTCOME = (
    update(_EVENTS).where(_EVENTS.c.id == bindparam("b_id")).values(outcome=bindparam("b_outcome"))
)
_ATTEMPT = insert(WebhookAttempt.__table__)  # type: ignore[attr-defined]


@tracing.traced("webhook process", "webhook_id")
def process_webhook(*, webhook_id: int) -> str:
    """Act on a stored webhook once. Safe to call any number of times, concurrently."""
    with session_scope() as session:
        event = session.get(WebhookEvent, webhook_id)
        if event is None:
            raise NotFound(f"webhook event {webhook_id} does not exist")
        if not event.authenticated:
            return "not authenticated; never processed"
        claimed = (
            session.connection().execute(_CLAIM, {"b_id": webhook_id, "b_at": utcnow()}).rowcount
        )
        if claimed != 1:
            session.refresh(event)
            return f"already processed: {event.outcome}"
        payload = json.loads(event.raw_body)
        try:
            with session.begin_nested():
                outcome = SOURCES[event.source].handle(session, event, payload)
        except DomainError as exc:
            # The event was genuine but cannot be applied (unknown order, forbidden
            # transition…): record why, for the operator; do not retry forever.
            outcome = f"refused: {exc.message}"
        session.flush()
        conn = session.connection()
        conn.execute(_OUTCOME, {"b_id": webhook_id, "b_outcome": outcome[:2000]})
        conn.execute(
            _ATTEMPT,
            {"webhook_id": webhook_id, "outcome": outcome[:2000], "processed_at": utcnow()},
        )
        resolve_alerts(
            session=session, subject=f"webhook:{webhook_id}", resolution=f"processed: {outcome}"
        )
        return outcome


def replay_webhook(*, webhook_id: int, actor: Actor) -> None:
    """Operator action: process a stored, authenticated event again (its effects are
    idempotent by design; the order status machine refuses repeats). A delivery that
    failed authentication is never processed, so it cannot be replayed
    (InvalidInput; its rejection stays as it was). Earlier outcomes stay in
    ``webhook_attempts``; the replay is audited as ``webhook.replay``. Owns its
    transaction; processing is queued after the commit."""
    with session_scope() as session:
        event = session.get(WebhookEvent, webhook_id)
        if event is None:
            raise NotFound(f"webhook event {webhook_id} does not exist")
        if not event.authenticated:
            raise InvalidInput(
                f"webhook #{webhook_id} from {event.source} failed authentication "
                f"({event.outcome or 'rejected'}); it is never processed, so it cannot be "
                "replayed"
            )
        record_audit(
            session=session,
            actor=actor,
            action="webhook.replay",
            object_type="webhook",
            object_id=webhook_id,
            data={
                "source": event.source,
                "event_type": event.event_type,
                "previous_outcome": event.outcome,
            },
        )
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id) == webhook_id)
            .values(processed_at=None)
            .execution_options(synchronize_session=False)
        )
        jobs.enqueue_after_commit(session, Job.PROCESS_WEBHOOK, webhook_id)


def webhook_attempts(*, session: Session, webhook_id: int) -> list[WebhookAttempt]:
    """Every processing of a webhook, oldest first."""
    return list(
        session.exec(
            select(WebhookAttempt)
            .where(WebhookAttempt.webhook_id == webhook_id)
            .order_by(col(WebhookAttempt.id))
        )
    )


def requeue_unprocessed(*, session: Session, now: datetime) -> list[int]:
    """Queue again (after the caller's commit) every authenticated webhook left
    unprocessed for longer than ``KEYSHOP_WEBHOOK_RETRY_SECONDS``, doubling the wait after
    each redelivery (at most an hour); raise an alert once a row was redelivered
    ``ALERT_AFTER_REDELIVERIES`` times. Rows a worker is acting on right now are locked
    and passed over. Returns the ids queued. Runs in the caller's transaction."""
    retry = timedelta(seconds=get_settings().webhook_retry_seconds)
    queued = []
    for event in locking.lock_unprocessed_webhooks(session, received_before=now - retry):
        wait = min(retry * 2**event.redeliveries, MAX_REDELIVERY_BACKOFF)
        if event.received_at > now - wait:
            continue
        event.redeliveries += 1
        session.add(event)
        jobs.enqueue_after_commit(session, Job.PROCESS_WEBHOOK, event.id)
        queued.append(row_id(event.id))
        if event.redeliveries >= ALERT_AFTER_REDELIVERIES:
            raise_alert(
                session=session,
                kind=AlertKind.NEEDS_ATTENTION,
                subject=f"webhook:{event.id}",
                severity="error",
                message=(
                    f"webhook {event.id} from {event.source} ({event.event_type or 'no type'}) "
                    f"received {event.received_at:%Y-%m-%d %H:%M} UTC is still not processed "
                    f"after {event.redeliveries} attempts; check the worker log and replay it"
                ),
            )
    session.flush()
    return queued


def unprocessed_payment_subjects(*, session: Session) -> set[str]:
    """Order numbers named by authenticated webhooks not yet acted on: a payment may be
    waiting there, so such an order must not be expired."""
    rows = session.execute(
        select(WebhookEvent.subject).where(
            col(WebhookEvent.processed_at).is_(None),
            col(WebhookEvent.authenticated).is_(True),
            col(WebhookEvent.subject).is_not(None),
        )
    ).all()
    return {str(r[0]) for r in rows}


def rejection_counts(*, session: Session, since: datetime) -> dict[str, int]:
    """Deliveries that failed authentication since ``since``, by source."""
    rows = session.execute(
        select(WebhookEvent.source, func.count())
        .where(col(WebhookEvent.authenticated).is_(False), col(WebhookEvent.received_at) >= since)
        .group_by(WebhookEvent.source)
    ).all()
    return {str(source): int(count) for source, count in rows}


def purge_rejected_webhooks(*, now: datetime | None = None) -> int:
    """Delete rejected deliveries older than ``KEYSHOP_REJECTED_WEBHOOK_DAYS``. Returns
    how many. Owns its transaction."""
    cutoff = (now or utcnow()) - timedelta(days=get_settings().rejected_webhook_days)
    with session_scope() as session:
        result = session.execute(
            delete(WebhookEvent)
            .where(
                col(WebhookEvent.authenticated).is_(False), col(WebhookEvent.received_at) < cutoff
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
