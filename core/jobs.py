"""Background work, as core sees it: a port the task layer plugs Huey into.

``core`` never imports Huey. A service that needs work done later calls
:func:`enqueue_after_commit`; the job is handed to the dispatcher only once the
session's transaction has committed (never for a rolled-back one), and only ids travel,
never ORM objects (STYLE.md). ``tasks`` registers the dispatcher at import time.

Jobs are named by :class:`Job`, the one list of names core enqueues and ``tasks``
registers a task for (``tasks.jobs.TASKS``). Without a dispatcher (a plain script, a
unit test) jobs are kept in :data:`pending` so a caller can see what would have run.

Whether anyone consumes the jobs is the workers' heartbeat (written by the task layer);
:func:`worker_presence` is the one rule for what its age means, for ``/api/health`` and
the console alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import event
from sqlmodel import Session

log = logging.getLogger(__name__)


class Job(StrEnum):
    """The jobs core asks for; each is a task of the same name in ``tasks.jobs``."""

    PROCESS_WEBHOOK = "process_webhook"  # (webhook_id)
    FULFIL_ORDER = "fulfil_order"  # (order_id)
    SEND_ORDER_EMAIL = "send_order_email"  # (order_id, kind, ref="")
    SEND_DUE_ORDER_EMAILS = "send_due_order_emails"  # () a batch from the mail outbox
    SEND_ACCOUNT_EMAIL = "send_account_email"  # (kind=, email=, ip=, language=)
    SEND_STOCK_ALERT_EMAIL = "send_stock_alert_email"  # (kind=, alert_id=)
    SYNC_PROVIDER = "sync_provider"  # (provider name)
    RETURN_FAULTY_KEY = "return_faulty_key"  # (key id as text)


Dispatcher = Callable[[Job, tuple[Any, ...], dict[str, Any]], None]

_dispatcher: Dispatcher | None = None
_lock = threading.Lock()
pending: list[tuple[Job, tuple[Any, ...], dict[str, Any]]] = []


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    global _dispatcher
    _dispatcher = dispatcher


def dispatch(name: Job, *args: Any, **kwargs: Any) -> None:
    if _dispatcher is not None:
        _dispatcher(name, args, kwargs)
    else:
        with _lock:
            pending.append((name, args, kwargs))


def _queue(session: Session) -> list[tuple[Job, tuple[Any, ...], dict[str, Any]]]:
    jobs = session.info.get("keyshop_after_commit")
    if jobs is None:
        jobs = session.info["keyshop_after_commit"] = []
    return jobs


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    jobs = session.info.pop("keyshop_after_commit", None) or []
    for name, args, kwargs in jobs:
        try:
            dispatch(name, *args, **kwargs)
        except Exception:  # the queue is down: reconciliation will pick the order up
            log.exception("could not enqueue %s%r; reconciliation will retry it", name, args)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: Any) -> None:
    # The outermost transaction rolled back: its jobs are dropped, so a later commit of
    # the same session never sends them (a savepoint's rollback keeps the outer ones).
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop("keyshop_after_commit", None)


def enqueue_after_commit(
    session: Session, name: Job, *args: Any, once: bool = False, **kwargs: Any
) -> None:
    """Run job ``name(*args)`` once this session's transaction commits (``once``: not
    again if the transaction already asked for exactly this job)."""
    queue = _queue(session)
    if once and (name, args, kwargs) in queue:
        return
    queue.append((name, args, kwargs))


# -- is anyone consuming? -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerPresence:
    """``ok``: a worker beat within the stale bound; ``stale``: the newest beat is older;
    ``absent``: no worker ever beat on this queue (or the queue forgot it)."""

    state: Literal["ok", "stale", "absent"]
    seconds_since: int | None  # since the newest heartbeat; None when absent

    def describe(self) -> str:
        if self.state == "ok":
            return f"seen {self.seconds_since} s ago"
        if self.state == "stale":
            return f"no worker seen for {self.seconds_since} s"
        return "no worker seen"


def worker_presence(last_beat: float | None, *, now: float, stale_after: float) -> WorkerPresence:
    """What the newest heartbeat (epoch seconds, None: none) says at ``now``. A beat from
    a clock slightly ahead counts as just now."""
    if last_beat is None:
        return WorkerPresence("absent", None)
    age = max(0, int(now - last_beat))
    return WorkerPresence("ok" if age <= stale_after else "stale", age)


# -- the queue's health, as the console shows it ---------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """One worker process by its last heartbeat: ``name`` is host:pid."""

    name: str
    seconds_since: int
    periodic: bool


@dataclass(frozen=True, slots=True)
class FailedTask:
    """A task that failed for good (its retries used up): what it was, why, when."""

    id: str
    job: str
    args: tuple[Any, ...]
    error: str
    failed_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class QueueHealth:
    """The task queue at a glance: jobs waiting and how long the oldest has waited
    (None: none waiting, or their age unknown), the workers seen, the failed tasks."""

    depth: int
    oldest_seconds: int | None
    workers: list[WorkerSeen]
    failed: list[FailedTask]
