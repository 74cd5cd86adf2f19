"""Inbound webhooks: authenticate, store raw, de-duplicate, act at most once.

:func:`receive_webhook` is what every HTTP endpoint calls (and what the built-in test
payments call, so both take the same path):

1. size and shape checks: an oversized or malformed body is refused (400) and not stored;
2. authentication by the source's own rule; a failure answers 401 and changes nothing
   in the shop (the attempt is logged under a synthetic id that can never occupy a real
   event id, so a forger cannot squat one);
3. the raw body is stored as a :class:`WebhookEvent`, unique per (source, event id): a
   redelivery finds the row already there and is answered 200 without acting again;
4. processing is queued (``process_webhook``) after the commit.

:func:`process_webhook` claims the event with a compare-and-set on ``processed_at`` in
the same transaction as its effect, so however often it runs, the effect happens once
(invariant 4).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from core import jobs
from core.config import get_settings
from core.db import session_scope
from core.errors import DomainError, NotFound
from core.models import WebhookEvent, utcnow

log = logging.getLogger(__name__)


class WebhookRejected(DomainError):
    """The request is refused; ``http_status`` says how (400 malformed or too large,
    401 forged, 404 unknown source)."""

    code = "webhook_rejected"

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class Verified:
    """What a source's authenticator extracts from a genuine request."""

    event_id: str
    event_type: str
    payload: dict[str, Any]


#: source → authenticate(headers, raw body) → Verified; raises WebhookRejected.
Authenticator = Callable[[Mapping[str, str], bytes], Verified]
#: source → handle(session, event row, payload) → outcome text (runs in the claim's transaction).
Handler = Callable[[Session, WebhookEvent, dict[str, Any]], str]

_authenticators: dict[str, Authenticator] = {}
_handlers: dict[str, Handler] = {}


def register_source(source: str, *, authenticate: Authenticator, handle: Handler) -> None:
    _authenticators[source] = authenticate
    _handlers[source] = handle


def _ensure_sources() -> None:
    # The handlers live with their domain (payments, provider events); importing them
    # registers them (a no-op after the first time).
    import core.services.payments
    import core.services.provider_events  # noqa: F401


@dataclass(frozen=True)
class Receipt:
    status: int  # the HTTP status to answer with
    webhook_id: int | None
    duplicate: bool


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("body is not JSON", 400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("body is not a JSON object", 400)
    return payload


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


def receive_webhook(
    *, source: str, headers: Mapping[str, str], body: bytes, remote_addr: str | None = None
) -> Receipt:
    """Authenticate, store and queue one inbound webhook. Raises WebhookRejected."""
    _ensure_sources()
    if source not in _authenticators:
        raise WebhookRejected(f"unknown webhook source {source!r}", 404)
    if len(body) > get_settings().webhook_max_bytes:
        raise WebhookRejected("body too large", 400)
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        verified = _authenticators[source](lowered, body)
    except WebhookRejected as exc:
        if exc.http_status == 401:
            _log_forgery(source, lowered, body, remote_addr, exc.message)
        raise
    with session_scope() as session:
        new_id = _insert_ignoring_duplicate(
            session,
            {
                "source": source,
                "event_id": verified.event_id[:255],
                "event_type": verified.event_type[:80],
                "raw_body": body,
                "authenticated": True,
                "remote_addr": remote_addr,
                "received_at": utcnow(),
            },
        )
        if new_id is not None:
            jobs.enqueue_after_commit(session, "process_webhook", new_id)
    if new_id is None:
        log.info("webhook %s %s delivered again; already stored", source, verified.event_id)
        return Receipt(status=200, webhook_id=None, duplicate=True)
    return Receipt(status=200, webhook_id=new_id, duplicate=False)


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
                raw_body=body[:65536],
                authenticated=False,
                remote_addr=remote_addr,
                processed_at=utcnow(),
                outcome=f"rejected: {reason}",
            )
        )


def process_webhook(*, webhook_id: int) -> str:
    """Act on a stored webhook once. Safe to call any number of times, concurrently."""
    _ensure_sources()
    with session_scope() as session:
        event = session.get(WebhookEvent, webhook_id)
        if event is None:
            raise NotFound(f"webhook event {webhook_id} does not exist")
        if not event.authenticated:
            return "not authenticated; never processed"
        claimed = session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id) == webhook_id, col(WebhookEvent.processed_at).is_(None))
            .values(processed_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            session.refresh(event)
            return f"already processed: {event.outcome}"
        payload = json.loads(event.raw_body)
        try:
            with session.begin_nested():
                outcome = _handlers[event.source](session, event, payload)
        except DomainError as exc:
            # The event was genuine but cannot be applied (unknown order, forbidden
            # transition…): record why, for the operator; do not retry forever.
            outcome = f"refused: {exc.message}"
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id) == webhook_id)
            .values(outcome=outcome[:2000])
            .execution_options(synchronize_session=False)
        )
        return outcome


def replay_webhook(*, webhook_id: int) -> None:
    """Operator action: process a stored, authenticated event again (its effects are
    idempotent by design; the order status machine refuses repeats)."""
    with session_scope() as session:
        event = session.get(WebhookEvent, webhook_id)
        if event is None:
            raise NotFound(f"webhook event {webhook_id} does not exist")
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id) == webhook_id)
            .values(processed_at=None, outcome=None)
            .execution_options(synchronize_session=False)
        )
        jobs.enqueue_after_commit(session, "process_webhook", webhook_id)


def recent_webhooks(
    *, session: Session, source: str | None = None, limit: int = 100
) -> list[WebhookEvent]:
    query = select(WebhookEvent)
    if source:
        query = query.where(WebhookEvent.source == source)
    return list(session.exec(query.order_by(col(WebhookEvent.id).desc()).limit(limit)))
