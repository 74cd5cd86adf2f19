"""Engine and sessions.

``session_scope()`` is the one way services get a transaction: it commits when the block
ends normally and rolls back on any exception, so nothing half-written stays behind.

SQLite runs in WAL mode with foreign keys on. Write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade and a claim of keys
is one immediate transaction (DESIGN §5.3); ``session_scope(write=False)`` begins a
deferred, read-only-by-convention transaction that does not block writers.

PostgreSQL connections that die in the pool (a restart, a failover,
``pg_terminate_backend``) are never handed out: at checkout the pool looks at the idle
connection's socket (one ``poll``, no round trip) and replaces a dead one. A read-only
session whose *first* statement still meets a dead connection runs it again, once, on a
new one (nothing was read yet, so nothing is lost). Any other statement that loses its
connection fails; SQLAlchemy then refreshes the whole pool, and
:func:`is_database_unavailable` tells the edges to answer "try again" (HTTP 503).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from core.config import Settings, get_settings, on_settings_change

log = logging.getLogger(__name__)

_lock = threading.Lock()
_engine: Engine | None = None


def _install_session_listeners() -> None:
    """What every session of the shop needs, installed where engines are built (not as a
    side effect of importing a module): the listeners that keep the listings' stock flags
    exact (``core.services.catalogue.stock_flags``)."""
    from core import metrics
    from core.services.catalogue.stock_flags import install_listeners

    install_listeners()
    metrics.install_listeners()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    _install_session_listeners()
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

        _watch_catalogue(engine)
        return engine
    # No pool_pre_ping: it costs a round trip on every transaction (bench/NOTES.md).
    # Dead pooled connections are found without one instead (see
    # _drop_dead_connections); connections are also recycled every 30 minutes.
    # jit=off for the shop's connections: its queries are short, and PostgreSQL's JIT
    # compiles any plan its cost estimate calls expensive, which costs the store search
    # more than it saves (bench/NOTES.md). Appended to options the URL may carry.
    options = parsed.query.get("options", "")
    if not isinstance(options, str):
        options = " ".join(options)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args={"options": f"{options} -c jit=off".strip()},
    )
    event.listen(engine, "checkout", _drop_dead_connections)
    _watch_catalogue(engine)
    return engine


def _watch_catalogue(engine: Engine) -> None:
    """Writes to the catalogue tables move the search cache's generation on once their
    transaction is over (``core.services.catalogue.search_cache``)."""
    from core.services.catalogue.search_cache import install_listeners

    install_listeners(engine)


def _socket_closed(dbapi_conn: Any) -> bool:
    """True if an idle PostgreSQL connection is dead. The server speaks only when asked,
    so an idle connection has nothing to read; something to read means the server said
    goodbye (the FATAL message of ``pg_terminate_backend`` or a shutdown) or closed the
    socket. One ``poll`` system call, no round trip."""
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        return True
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # noqa: BLE001 (whatever the driver raises, the connection is unusable)
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _drop_dead_connections(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook: a dead connection raises DisconnectionError, on which the pool
    discards it and hands out a new one (SQLAlchemy's documented pessimistic pattern)."""
    if _socket_closed(dbapi_conn):
        log.warning("a pooled database connection had been closed by the server; replaced")
        raise DisconnectionError("the server closed this pooled connection")


def get_engine(settings: Settings | None = None) -> Engine:
    global _engine
    if settings is not None:
        return make_engine(settings.effective_database_url)
    with _lock:
        if _engine is None:
            _engine = make_engine(get_settings().effective_database_url)
        return _engine


@on_settings_change
def reset_engine() -> None:
    global _engine
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None


# SQLSTATEs that mean "no usable connection": class 08 (connection exception),
# admin_shutdown, crash_shutdown, cannot_connect_now.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def is_database_unavailable(exc: BaseException) -> bool:
    """True for an error that says the database cannot be used right now (its connection
    died, or none could be opened), rather than that a statement was wrong: what the
    edges answer "try again" (HTTP 503) to."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if type(orig).__module__.split(".")[0] != "psycopg":
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is None:  # no answer from a server: could not connect, or the socket broke
        return isinstance(exc, OperationalError)
    return str(sqlstate).startswith(_UNAVAILABLE_STATES)


class _ReadSession(Session):
    """The session of ``session_scope(write=False)``: its first statement is run again,
    once, on a new connection if the one it got turned out dead. Nothing was loaded yet,
    so the rollback in between expires nothing. ``_execute_internal`` is the one funnel
    of ``execute``, ``exec``, ``scalar(s)`` and ``get`` in SQLAlchemy 2
    (tests/core/test_db_disconnects.py fails if that changes)."""

    _untouched = True

    def _execute_internal(self, *args: Any, **kwargs: Any) -> Any:
        if not self._untouched:
            return super()._execute_internal(*args, **kwargs)
        self._untouched = False
        try:
            return super()._execute_internal(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("a read met a dead database connection; running it again on a new one")
            self.rollback()
            return super()._execute_internal(*args, **kwargs)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def session_scope(*, write: bool = True, engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error. ``write=False``: a read
    (deferred on SQLite; its first statement survives a dead pooled connection)."""
    bind = engine or get_engine()
    if not write and bind.dialect.name == "sqlite":
        bind = bind.execution_options(sqlite_begin="DEFERRED")
    session = (Session if write else _ReadSession)(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
