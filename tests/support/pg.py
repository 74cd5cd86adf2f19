"""PostgreSQL helpers for deterministic race tests: wait for a lock wait, never sleep as proof."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session


def backend_pid(session: Session) -> int:
    """The PostgreSQL backend serving ``session``'s connection (opens it if needed)."""
    return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def wait_for_lock_wait(
    engine: Engine,
    *,
    gave_up: Callable[[], bool] = lambda: False,
    timeout: float = 30.0,
    pid: int | None = None,
    blocked_by: int | None = None,
) -> None:
    """Until some other backend of this database (``pid``: that backend; ``blocked_by``:
    one the backend ``blocked_by`` holds up) waits for a row or table lock (it has reached
    the lock the test holds), or ``gave_up()`` says the competitor finished. Name the
    backend when you can: the test passes share the database (each in its own schema),
    and another part's lock wait must not count."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    if pid is not None:
        query += f" AND pid = {int(pid)}"
    if blocked_by is not None:
        query += f" AND {int(blocked_by)} = ANY(pg_blocking_pids(pid))"
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(text(query)).scalar_one()
            watcher.rollback()
            if waiting:
                return
            if gave_up():
                raise AssertionError("the competitor finished without waiting for the lock")
            time.sleep(0.01)
    raise AssertionError("no transaction ever waited for the lock")
