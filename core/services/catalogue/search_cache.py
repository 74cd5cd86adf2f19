"""A cache of what a search found (issue #20): the ids on the page and the total, per
set of search parameters, in each process. The hits' stock and prices are never cached:
a cached search reads them fresh for the ids of its page (one short statement by
primary key), so stock is always as fresh as an uncached search's.

**Exact invalidation.** Which products match a search, in which order, and how many,
depends only on the ``products`` and ``product_prices`` tables (text, facets, prices,
``active``, and the stock summary ``products.in_stock``, whose flag a key claim or an
offer's stock flips in the same transaction, :mod:`.stock_flags`). Any statement that
writes to either table marks its database connection; when that connection goes back
to the pool or begins its next transaction -- after the one that wrote committed or
rolled back -- the *catalogue generation* moves on, and every entry stored under an older generation is a miss. An
entry is stored under the generation read *before* its search ran, so a change that
commits during a search leaves that entry stale-marked, never fresh-looking. A search in
a transaction that has itself written to the catalogue is neither served nor stored.

The generation is shared by every process of the shop: a Redis counter when
``QUEUE_URL`` is Redis (the production layout), otherwise a file in ``var/`` (the
embedded default, one machine). If Redis cannot be read, searches go uncached; an entry
is never kept longer than :data:`ENTRY_TTL_SECONDS` whatever happens.

Lookups count into ``keyshop_search_cache_requests_total{result="hit"|"miss"|"bypass"}``
(core/metrics.py): the hit rate the benchmark reports.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

from core import metrics
from core.config import get_settings, on_settings_change

log = logging.getLogger(__name__)

#: Entries kept per process, and the longest any entry is trusted.
MAX_ENTRIES: Final = 4096
ENTRY_TTL_SECONDS: Final = 300.0
#: The tables a search's matches, order and total are read from.
WATCHED_TABLES: Final = frozenset({"products", "product_prices"})
_WRITTEN: Final = "keyshop.catalogue_written"
_DML_WORDS: Final = ("insert", "update", "delete", "truncate", "copy", "merge")


@dataclass(frozen=True, slots=True)
class Found:
    """What a cached search keeps: the ids of its page in order, and its total."""

    ids: tuple[int, ...]
    total: int
    total_is_exact: bool


class _Generation(Protocol):
    def current(self) -> str | None: ...

    def bump(self) -> None: ...


class _RedisGeneration:
    def __init__(self, url: str, key: str) -> None:
        import redis

        self.key = key
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def current(self) -> str | None:
        try:
            value = self.client.get(self.key)
        except Exception:  # noqa: BLE001 (Redis unreachable: go uncached)
            return None
        return value.decode() if isinstance(value, bytes) else "0"

    def bump(self) -> None:
        try:
            self.client.incr(self.key)
        except Exception as exc:  # noqa: BLE001 (entries then expire by ENTRY_TTL_SECONDS)
            log.warning("search cache: could not move the catalogue generation on: %s", exc)


class _FileGeneration:
    """The generation as a file's identity: each bump replaces the file (a new inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def current(self) -> str | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "0"
        except OSError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def bump(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(secrets.token_hex(8))
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("search cache: could not move the catalogue generation on: %s", exc)


class SearchCache:
    """Per-process LRU of :class:`Found` by search parameters, under a shared generation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[str, float, Found]] = OrderedDict()
        self._generation: _Generation | None = None

    def generation(self) -> _Generation:
        if self._generation is None:
            settings = get_settings()
            url = settings.effective_queue_url
            if url.startswith(("redis://", "rediss://")):
                self._generation = _RedisGeneration(
                    url, f"{settings.queue_name}:catalogue-generation"
                )
            else:
                self._generation = _FileGeneration(settings.var_dir / "catalogue.generation")
        return self._generation

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation = None

    def lookup(self, key: Hashable) -> tuple[str | None, Found | None]:
        """(the generation now, the entry if it is of that generation)."""
        generation = self.generation().current()
        if generation is None:
            metrics.SEARCH_CACHE.labels("bypass").inc()
            return None, None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                stored_generation, stored_at, found = entry
                if (
                    stored_generation == generation
                    and time.monotonic() - stored_at < ENTRY_TTL_SECONDS
                ):
                    self._entries.move_to_end(key)
                    metrics.SEARCH_CACHE.labels("hit").inc()
                    return generation, found
                del self._entries[key]
        metrics.SEARCH_CACHE.labels("miss").inc()
        return generation, None

    def store(self, key: Hashable, generation: str, found: Found) -> None:
        with self._lock:
            self._entries[key] = (generation, time.monotonic(), found)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def catalogue_changed(self) -> None:
        """Move the generation on: every entry stored before is a miss from now on."""
        self.generation().bump()
        with self._lock:
            self._entries.clear()


CACHE = SearchCache()
on_settings_change(CACHE.reset)


def wrote_catalogue(conn: Connection) -> bool:
    """True while ``conn``'s current work has written to the catalogue tables (a search
    there must neither use nor fill the cache)."""
    return bool(conn.info.get(_WRITTEN))


def _writes_catalogue(statement: str, context: Any) -> bool:
    compiled = getattr(context, "compiled", None)
    dml = getattr(compiled, "statement", None)
    table = getattr(dml, "table", None)
    if table is not None and (
        getattr(context, "isinsert", False)
        or getattr(context, "isupdate", False)
        or getattr(context, "isdelete", False)
    ):
        return getattr(table, "name", None) in WATCHED_TABLES
    # text SQL (maintenance, tests): any data-changing statement naming a product table
    head = statement.lstrip()[:8].lower()
    return head.startswith(_DML_WORDS) and "product" in statement.lower()


def _note_write(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if conn.info.get(_WRITTEN) or not _writes_catalogue(statement, context):
        return
    if not executemany and getattr(cursor, "rowcount", -1) == 0:
        return  # an UPDATE or DELETE that changed nothing (the stock flags' usual case)
    conn.info[_WRITTEN] = True


def _after_release(dbapi_connection: Any, record: Any) -> None:
    # The connection's transaction is over (committed or rolled back): searches that
    # start from now on must not use an entry from before it.
    info = getattr(record, "info", None)
    if info is not None and info.pop(_WRITTEN, False):
        CACHE.catalogue_changed()


def _next_transaction(conn: Connection) -> None:
    # A connection held across transactions (the key importer's): its last one is over.
    if conn.info.pop(_WRITTEN, False):
        CACHE.catalogue_changed()


def install_listeners(engine: Engine) -> None:
    """Watch ``engine``'s statements for writes to the catalogue tables. ``core.db``
    calls it for every engine it builds; installing twice is a no-op."""
    if not event.contains(engine, "after_cursor_execute", _note_write):
        event.listen(engine, "after_cursor_execute", _note_write)
    if not event.contains(engine, "begin", _next_transaction):
        event.listen(engine, "begin", _next_transaction)
    pool: Pool = engine.pool
    if not event.contains(pool, "checkin", _after_release):
        event.listen(pool, "checkin", _after_release)
