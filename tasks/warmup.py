"""Warm a worker process up before its first order needs it.

Measured (bench/fulfilment.py, provider scenario, simulator at 200 ms): the first orders
a fresh worker process takes are 3 to 5 times slower than the rest, because they pay for
what the process has not done yet: importing the provider clients (about 0.3 s), building
them (an SSL context each), CodesWholesale's OAuth token (one provider round trip, under a
lock every thread waits on), and a new database connection per thread. The consumer calls
:func:`start_warm_up` from every worker thread's start; the first call starts
:func:`warm_up` once per process, in the background, so consuming starts at once and an
order that arrives meanwhile simply finds part of the work already done (the token lock
makes it wait for the token being fetched rather than fetch a second one).

Warming never fails a worker: a provider that cannot be reached is logged and the first
order meets the error as it would have anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.providers.base import ProviderClient
from tasks.queue import huey

log = logging.getLogger("keyshop.tasks")

_lock = threading.Lock()
_started = False
_threads = 0  # consumer threads started in this process
warmed = threading.Event()


def warm_up() -> dict[str, str]:
    """Import, connect and authenticate what fulfilment will need. Returns what happened,
    per part. Safe to call more than once."""
    from core import crypto
    from core.db import get_engine
    from core.services import fulfilment

    started = time.perf_counter()
    report: dict[str, str] = {}
    try:
        import core.blobs  # noqa: F401  (image keys go through it)

        crypto.get_vault()
        clients = fulfilment.provider_clients()  # imports and builds them (no request yet)
        # By now every consumer thread has started and counted itself. The connections
        # and the providers' first requests go in parallel.
        with ThreadPoolExecutor(max_workers=len(clients) + 1) as pool:
            database = pool.submit(_open_connections, get_engine(), max(1, _threads))
            touched = {name: pool.submit(_touch, client) for name, client in clients.items()}
            report["database"] = database.result()
            report.update({name: future.result() for name, future in touched.items()})
    except Exception as exc:  # noqa: BLE001 (a worker must start whatever happens here)
        report["error"] = type(exc).__name__
        log.warning("worker warm-up stopped early: %s", type(exc).__name__)
    finally:
        warmed.set()
    log.info(
        "worker warmed up in %.0f ms: %s",
        (time.perf_counter() - started) * 1000,
        ", ".join(f"{k} {v}" for k, v in report.items()),
    )
    return report


def _open_connections(engine: object, wanted: int) -> str:
    """Open ``wanted`` pooled connections now (PostgreSQL, at most the pool's size): each
    costs a backend start that the first task of every thread would otherwise wait for."""
    from sqlalchemy.engine import Engine

    assert isinstance(engine, Engine)
    if engine.dialect.name != "postgresql":
        return "not pooled"
    size = min(wanted, int(getattr(engine.pool, "size", lambda: 0)()))
    conns = []
    try:
        for _ in range(size):
            conns.append(engine.connect())
    finally:
        for conn in conns:
            conn.close()  # back to the pool, open
    return f"{len(conns)} connections"


def _touch(client: ProviderClient) -> str:
    """One cheap, read-only call (the balance): authenticates (CodesWholesale's token)
    and leaves a kept-alive connection in the client's pool."""
    try:
        client.balance()
    except Exception as exc:  # noqa: BLE001 (reported as "not reachable", never raised)
        return f"not reachable ({getattr(exc, 'code', type(exc).__name__)})"
    return "ready"


@huey.on_startup()
def start_warm_up() -> None:
    """Called by each consumer thread as it starts; warms the process once."""
    global _started, _threads
    with _lock:
        _threads += 1
        if _started:
            return
        _started = True
    threading.Thread(target=warm_up, name="keyshop-warm-up", daemon=True).start()
