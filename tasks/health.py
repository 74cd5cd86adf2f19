"""The queue's health for the console's worker screen: jobs waiting and the age of the
oldest, each worker's last heartbeat, and the tasks that failed for good, which can be
queued again.

Kept in the queue's own storage (no database table): the workers' beats under
``WORKERS_KEY`` (one entry per host:pid, written by :func:`tasks.consumer.write_heartbeat`)
and the last ``FAILED_KEPT`` failures under ``FAILED_KEY``, written by the error signal a
worker raises when a task has no retries left. A job's age comes from the ``queued_at``
the dispatcher adds (epoch seconds).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from huey import Huey
from huey.constants import EmptyData
from huey.signals import SIGNAL_ERROR

from core.jobs import FailedTask, Job, QueueHealth, WorkerSeen

log = logging.getLogger(__name__)

WORKERS_KEY = "keyshop.workers"
FAILED_KEY = "keyshop.failed-tasks"
FAILED_KEPT = 100
WORKERS_FORGOTTEN_AFTER = 24 * 3600.0  # a worker silent this long leaves the list
PENDING_READ = 1000  # jobs read to find the oldest (the queue's head)


def _read(huey: Huey, key: str) -> Any:
    raw = huey.storage.peek_data(key)
    if raw is EmptyData or raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def note_worker_beat(huey: Huey, beat: dict[str, Any]) -> None:
    """Keep ``beat`` (at, host, pid, periodic) as its worker's latest; forget workers
    silent for a day. Two workers writing at once may lose one beat: the next fixes it."""
    workers = _read(huey, WORKERS_KEY) or {}
    workers[f"{beat['host']}:{beat['pid']}"] = beat
    cutoff = float(beat["at"]) - WORKERS_FORGOTTEN_AFTER
    kept = {k: v for k, v in workers.items() if float(v.get("at", 0)) >= cutoff}
    huey.storage.put_data(WORKERS_KEY, json.dumps(kept).encode())


def record_failure(huey: Huey, task: Any, error: BaseException) -> None:
    """Keep a task that failed with no retries left (newest first, the last 100)."""
    failed = _read(huey, FAILED_KEY) or []
    failed.insert(
        0,
        {
            "id": task.id,
            "job": task.name,
            "args": list(task.args or ()),
            "error": f"{type(error).__name__}: {error}"[:500],
            "at": time.time(),
        },
    )
    huey.storage.put_data(FAILED_KEY, json.dumps(failed[:FAILED_KEPT], default=str).encode())


def watch_failures(huey: Huey) -> None:
    """Record, from the worker, every task that fails with no retries left."""

    @huey.signal(SIGNAL_ERROR)
    def _failed(signal: str, task: Any, exc: BaseException | None = None) -> None:
        if exc is not None and not task.retries:
            try:
                record_failure(huey, task, exc)
            except Exception:  # the queue is down: the log has it
                log.exception("could not record the failure of task %s", task.id)


def queue_health(huey: Huey, *, now: float | None = None) -> QueueHealth:
    """The queue at ``now`` (epoch seconds)."""
    now = time.time() if now is None else now
    pending = huey.pending(limit=PENDING_READ)
    ages = [
        now - float(t.kwargs["queued_at"])
        for t in pending
        if isinstance(t.kwargs, dict) and t.kwargs.get("queued_at")
    ]
    workers = [
        WorkerSeen(
            name=name,
            seconds_since=max(0, int(now - float(beat.get("at", 0)))),
            periodic=bool(beat.get("periodic")),
        )
        for name, beat in (_read(huey, WORKERS_KEY) or {}).items()
    ]
    failed = [
        FailedTask(
            id=str(f["id"]),
            job=str(f["job"]),
            args=tuple(f.get("args") or ()),
            error=str(f.get("error", "")),
            failed_at=float(f.get("at", 0)),
        )
        for f in _read(huey, FAILED_KEY) or []
    ]
    return QueueHealth(
        depth=int(huey.pending_count()),
        oldest_seconds=max(0, int(max(ages))) if ages else None,
        workers=sorted(workers, key=lambda w: w.seconds_since),
        failed=failed,
    )


def retry_failed(huey: Huey, task_id: str, tasks: dict[Job, Any]) -> str:
    """Queue failed task ``task_id`` again (with the same arguments) and take it off the
    list; a task that is not a job core names, or is no longer listed, is refused."""
    failed = _read(huey, FAILED_KEY) or []
    entry = next((f for f in failed if str(f["id"]) == task_id), None)
    if entry is None:
        raise LookupError("that failed task is no longer listed")
    name = str(entry["job"]).rsplit(".", 1)[-1]
    job = next((j for j in tasks if j.value == name), None)
    if job is None:
        raise LookupError(f"{name} is not a task that can be queued again")
    tasks[job](*entry.get("args", ()), queued_at=time.time())
    huey.storage.put_data(
        FAILED_KEY, json.dumps([f for f in failed if str(f["id"]) != task_id]).encode()
    )
    return f"{name}{tuple(entry.get('args', ()))} queued again"
