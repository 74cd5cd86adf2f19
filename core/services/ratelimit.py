"""Rate limits: fixed-window counters in the database.

Every web worker (and every machine) shares the ``rate_limit_counters`` table, the one
store every deployment has, so a limit holds however many processes serve the shop.

A limit is a ``scope`` (what is limited: ``sign-in-email``, ``reveal``), a ``subject``
(who is counted: an e-mail, an address, an order) and ``limit`` hits per
``window_seconds``. Windows are fixed and aligned to the epoch (a 900 s window starts at
a multiple of 900 s), so one row per scope, subject and window holds the count. A hit is
counted by one atomic ``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING
count`` in a short transaction of its own: on PostgreSQL the row lock taken by the
upsert serialises concurrent hits on the same counter, on SQLite the write transaction
(``BEGIN IMMEDIATE``) does. Hits over the limit are counted too, and are refused with
:class:`RateLimited` (HTTP 429) carrying ``retry_after`` seconds until the window ends.

The hit is committed whether or not the caller's own work then succeeds: a failed
sign-in must count.

Counters of windows older than :data:`MAX_WINDOW_SECONDS` are deleted by
:func:`purge_old_counters` (the maintenance code may call it) and opportunistically by
:func:`check_rate` at most once every ten minutes per process.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import is_postgres, session_scope
from core.errors import DomainError
from core.models import RateLimitCounter

MAX_WINDOW_SECONDS = 86_400
"""The longest window a limit may use; older counters are purged."""

SCOPE_MAX = 40
SUBJECT_MAX = 320
PURGE_EVERY_SECONDS = 600.0

_table = RateLimitCounter.__table__  # type: ignore[attr-defined]
_purge_lock = threading.Lock()
_last_purge: float | None = None


class RateLimited(DomainError):
    """Too many hits in the current window. ``retry_after`` is the number of seconds
    until the window ends (at least 1)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, *, scope: str, retry_after: int) -> None:
        super().__init__(
            f"Too many attempts; try again in {describe_wait(retry_after)}",
            scope=scope,
            retry_after=retry_after,
        )
        self.scope = scope
        self.retry_after = retry_after


def describe_wait(seconds: int) -> str:
    """``"45 seconds"``, ``"1 minute"``, ``"3 minutes"``, ``"2 hours"`` (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 3600:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(seconds / 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def subject_key(subject: str) -> str:
    """The stored subject: the subject itself, or ``sha256:<hex>`` when it is longer than
    the column."""
    if len(subject) <= SUBJECT_MAX:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def window_start_for(now: float, window_seconds: int) -> int:
    return int(now // window_seconds) * window_seconds


def check_rate(
    *, scope: str, subject: str, limit: int, window_seconds: int, now: float | None = None
) -> None:
    """Count one hit of ``subject`` in ``scope``; raise :class:`RateLimited` when it is
    more than ``limit`` in the current window of ``window_seconds``.

    Runs its own short transaction; call it outside any other open write transaction
    (on SQLite a second writer would wait for the first)."""
    if not scope or len(scope) > SCOPE_MAX:
        raise ValueError(f"rate-limit scope must be 1..{SCOPE_MAX} characters")
    if limit < 1:
        raise ValueError("rate limit must be at least 1")
    if not 1 <= window_seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(f"rate-limit window must be 1..{MAX_WINDOW_SECONDS} seconds")
    t = time.time() if now is None else now
    start = window_start_for(t, window_seconds)
    key = subject_key(subject)
    with session_scope() as session:
        insert = pg_insert if is_postgres(session) else sqlite_insert
        stmt = (
            insert(_table)
            .values(scope=scope, subject=key, window_start=start, count=1)
            .on_conflict_do_update(
                index_elements=[_table.c.scope, _table.c.subject, _table.c.window_start],
                set_={"count": _table.c.count + 1},
            )
            .returning(_table.c.count)
        )
        count = int(session.execute(stmt).scalar_one())
    _maybe_purge(t)
    if count > limit:
        retry_after = max(1, math.ceil(start + window_seconds - t))
        raise RateLimited(scope=scope, retry_after=retry_after)


def hits(*, scope: str, subject: str, window_seconds: int, now: float | None = None) -> int:
    """Hits counted so far in the current window (0 when none)."""
    t = time.time() if now is None else now
    with session_scope(write=False) as session:
        row = session.get(
            RateLimitCounter, (scope, subject_key(subject), window_start_for(t, window_seconds))
        )
        return row.count if row is not None else 0


def purge_old_counters(*, now: float | None = None) -> int:
    """Delete counters whose window began more than :data:`MAX_WINDOW_SECONDS` ago
    (no window is longer, so they can no longer refuse anything). Returns how many."""
    t = time.time() if now is None else now
    cutoff = int(t) - MAX_WINDOW_SECONDS
    with session_scope() as session:
        result = session.execute(delete(_table).where(_table.c.window_start < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _maybe_purge(now: float) -> None:
    global _last_purge
    tick = time.monotonic()
    with _purge_lock:
        if _last_purge is not None and tick - _last_purge < PURGE_EVERY_SECONDS:
            return
        _last_purge = tick
    purge_old_counters(now=now)
