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
sign-in must count. :func:`record_hit` counts without refusing and
:func:`refuse_if_reached` refuses without counting, for limits that count only
failures (sign-in, per e-mail and address).

Addresses are the client's, as :mod:`core.proxies` finds it behind trusted proxies: the
web edge rewrites every request's client to it (``web.api.security``). The checkout and
the JSON store API have limits of their own here (:func:`check_checkout`,
:func:`check_store_api`).

Counters of windows older than :data:`MAX_WINDOW_SECONDS` are deleted by
:func:`purge_old_counters` (the maintenance code may call it) and opportunistically by
:func:`check_rate` at most once every ten minutes per process.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from typing import Final

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
    if limit < 1:
        raise ValueError("rate limit must be at least 1")
    t = time.time() if now is None else now
    count = record_hit(scope=scope, subject=subject, window_seconds=window_seconds, now=t)
    if count > limit:
        raise RateLimited(scope=scope, retry_after=_retry_after(t, window_seconds))


def record_hit(*, scope: str, subject: str, window_seconds: int, now: float | None = None) -> int:
    """Count one hit of ``subject`` in ``scope`` (never refused); return the count in the
    current window, this hit included. Its own short transaction, like :func:`check_rate`."""
    if not scope or len(scope) > SCOPE_MAX:
        raise ValueError(f"rate-limit scope must be 1..{SCOPE_MAX} characters")
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
    return count


def refuse_if_reached(
    *, scope: str, subject: str, limit: int, window_seconds: int, now: float | None = None
) -> None:
    """Raise :class:`RateLimited` when ``subject`` already has ``limit`` hits in the
    current window; count nothing (the caller records the hits that matter, such as
    failures, with :func:`record_hit`)."""
    t = time.time() if now is None else now
    if hits(scope=scope, subject=subject, window_seconds=window_seconds, now=t) >= limit:
        raise RateLimited(scope=scope, retry_after=_retry_after(t, window_seconds))


def _retry_after(now: float, window_seconds: int) -> int:
    start = window_start_for(now, window_seconds)
    return max(1, math.ceil(start + window_seconds - now))


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


# -- limits of the shop's edges ----------------------------------------------------------

#: (scope, limit, window seconds), counted per client address (core.proxies).
CHECKOUT_LIMIT: Final = ("checkout:ip", 20, 600)
STORE_API_LIMIT: Final = ("store-api:ip", 300, 60)


def check_checkout(*, ip: str | None) -> None:
    """One checkout (storefront or store API) from ``ip``: at most 20 in 10 minutes, each
    of which may open a payment session. Without an address nothing is counted."""
    if ip:
        scope, limit, window = CHECKOUT_LIMIT
        check_rate(scope=scope, subject=ip, limit=limit, window_seconds=window)


def check_store_api(*, ip: str | None) -> None:
    """One JSON store API request from ``ip``: at most 300 a minute."""
    if ip:
        scope, limit, window = STORE_API_LIMIT
        check_rate(scope=scope, subject=ip, limit=limit, window_seconds=window)
