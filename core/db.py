"""Engine and sessions.

``session_scope()`` is the one way services get a transaction: it commits when the block
ends normally and rolls back on any exception, so nothing half-written stays behind.

SQLite runs in WAL mode with foreign keys on. Write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade and a claim of keys
is one immediate transaction (DESIGN §5.3); ``session_scope(write=False)`` begins a
deferred, read-only-by-convention transaction that does not block writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from core.config import Settings, get_settings

_lock = threading.Lock()
_engine: Engine | None = None


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            poolclass=NullPool if parsed.database in (None, "", ":memory:") else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # No pool_pre_ping: it costs a round trip on every transaction (a fifth of a key
    # claim). After a database restart the first use of a stale connection fails once;
    # tasks retry and requests are retried by their caller, and connections are recycled
    # every 30 minutes anyway.
    # jit=off for the shop's connections: its queries are short, and PostgreSQL's JIT
    # compiles any plan its cost estimate calls expensive (about 25 ms each on the store
    # search, which then runs in a few ms). Appended to options the URL may carry.
    options = parsed.query.get("options", "")
    if not isinstance(options, str):
        options = " ".join(options)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args={"options": f"{options} -c jit=off".strip()},
    )


def get_engine(settings: Settings | None = None) -> Engine:
    global _engine
    if settings is not None:
        return make_engine(settings.effective_database_url)
    with _lock:
        if _engine is None:
            _engine = make_engine(get_settings().effective_database_url)
        return _engine


def reset_engine() -> None:
    global _engine
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def session_scope(*, write: bool = True, engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    bind = engine or get_engine()
    if not write and bind.dialect.name == "sqlite":
        bind = bind.execution_options(sqlite_begin="DEFERRED")
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
