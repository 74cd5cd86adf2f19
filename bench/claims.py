"""Benchmark: concurrent key claims through ``core.services.inventory.claim_keys``.

    .venv/bin/python bench/claims.py [--claimers 8] [--keys 20000]
        [--database-url postgresql://postgres@127.0.0.1/test]

Builds a database of its own, ``keyshop_bench_claims`` (dropped and recreated each run,
through the server's ``postgres`` database; the database named in ``--database-url``
is only used to find the server and is never touched), migrates it, adds one product,
N keys and N order lines (outside the timing), then times ``--claimers`` threads, each
claiming one key per transaction until stock runs out. For comparison it also times the
same claim statement sent by the same number of threads over plain psycopg connections
(no SQLAlchemy, no ORM): the ceiling the service is measured against.

Commit durability: by default the bench database runs with ``synchronous_commit = off``
(set on that database only), so the figure measures the claim path — locking, SQL,
SQLAlchemy, Python — rather than the disk's fsync latency, which bounds raw SQL and the
service alike (``--synchronous-commit server`` keeps the server's setting; on this
machine fsync caps both at a few hundred claims/s). The JSON line says which was used.

Both runs start with a warm connection per thread. Besides the rates, the line carries
the CPU time per claim of this process (all threads: Python, SQLAlchemy, psycopg) and
of the server processes serving the bench database (from /proc, so only for a server on
this machine), for the service and for raw SQL, and the load average at the start and
end: on a shared machine the CPU figures stay comparable between runs when the rates do
not.

Prints one JSON line; the goal (issue #20) is ``claim_keys`` at ≥ 0.9 of the raw
psycopg rate measured in the same run (``ratio_to_raw``), with ``goal_met``. A third run
sends the raw statement inside ``session_scope()`` without ``claim_keys``
(``session_floor_*``): the limit the SQLAlchemy Session around every claim sets; a
fourth inside ``engine.begin()`` (``core_floor_*``): the limit of SQLAlchemy's engine
(pool, connection, transaction) with no Session.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

BENCH_DB = "keyshop_bench_claims"
GOAL_RATIO_TO_RAW = 0.9
DEFAULT_URL = "postgresql://postgres@127.0.0.1/test"

# The claim statement of core.services.locking, as plain SQL for the raw-psycopg ceiling.
RAW_CLAIM_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT keys.id FROM keys
    WHERE keys.product_id BETWEEN %(p)s AND %(p)s AND keys.status = 'available'
      AND EXISTS (SELECT 1 FROM order_lines WHERE order_lines.id = %(l)s AND order_lines.product_id = %(p)s)
    ORDER BY keys.product_id, keys.id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
UPDATE keys SET status = 'reserved', order_line_id = %(l)s, reserved_at = now()
FROM candidates WHERE keys.id = candidates.id AND keys.status = 'available'
RETURNING keys.id
"""


def _libpq_url(url: str, database: str) -> str:
    """``url`` as a plain libpq URL naming ``database``."""
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def recreate_database(server_url: str, *, synchronous_commit: str) -> None:
    """Drop and create the bench database, connected through ``postgres`` (or, if that
    one is not reachable, the database the URL names — only to issue the DDL)."""
    last: Exception | None = None
    for maintenance_db in ("postgres", make_url(server_url).database or "postgres"):
        try:
            with psycopg.connect(_libpq_url(server_url, maintenance_db), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {BENCH_DB}")
                if synchronous_commit != "server":
                    conn.execute(
                        f"ALTER DATABASE {BENCH_DB} SET synchronous_commit = {synchronous_commit}"
                    )
                return
        except psycopg.OperationalError as exc:
            last = exc
    raise SystemExit(f"bench: cannot reach PostgreSQL to create {BENCH_DB}: {last}")


def prepare(engine: Engine, n_keys: int) -> tuple[int, list[int]]:
    """One product, ``n_keys`` available keys, ``n_keys`` order lines. Fast inserts
    (Core executemany), encrypted like real stock."""
    from core import crypto
    from core.models import Key, Order, OrderLine, Product, new_uuid, utcnow

    vault = crypto.get_vault()
    now = utcnow()
    with engine.begin() as conn:
        product_id = conn.execute(
            insert(Product.__table__).returning(Product.__table__.c.id),  # type: ignore[attr-defined]
            {
                "slug": "bench-game",
                "title": "Bench Game",
                "platform": "Steam",
                "region": "GLOBAL",
                "genre": "Action",
                "description": "",
                "publisher": "",
                "price_minor": 1999,
                "currency": "EUR",
                "is_preorder": False,
                "activation_instructions": "",
                "low_stock_threshold": 5,
                "featured": False,
                "active": True,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        rows = []
        for i in range(n_keys):
            row_id = new_uuid()
            code = f"BENCH-{i:08d}-{uuid.uuid4().hex[:8]}"
            version, blob = vault.encrypt(code.encode(), row_id=row_id)
            rows.append(
                {
                    "id": row_id,
                    "product_id": product_id,
                    "status": "available",
                    "kind": "text",
                    "ciphertext": blob,
                    "key_version": version,
                    "fingerprint": vault.fingerprint(code),
                    "created_at": now,
                }
            )
        conn.execute(insert(Key.__table__), rows)  # type: ignore[attr-defined]
        order_id = conn.execute(
            insert(Order.__table__).returning(Order.__table__.c.id),  # type: ignore[attr-defined]
            {
                "number": "BENCH-1",
                "email": "bench@example.com",
                "status": "paid",
                "currency": "EUR",
                "subtotal_minor": 1999 * n_keys,
                "total_minor": 1999 * n_keys,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        line_ids = list(
            conn.execute(
                insert(OrderLine.__table__).returning(  # type: ignore[attr-defined]
                    OrderLine.__table__.c.id,  # type: ignore[attr-defined]
                    sort_by_parameter_order=True,
                ),
                [
                    {
                        "order_id": order_id,
                        "product_id": product_id,
                        "title": "Bench Game",
                        "platform": "Steam",
                        "region": "GLOBAL",
                        "unit_price_minor": 1999,
                        "currency": "EUR",
                        "quantity": 1,
                    }
                    for _ in range(n_keys)
                ],
            ).scalars()
        )
    return product_id, line_ids


def backend_cpu_seconds(libpq_url: str) -> dict[int, float] | None:
    """CPU seconds used so far by each server process connected to the bench database,
    read from /proc: only when the server runs on this machine (else None)."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        me = conn.info.backend_pid
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            )
            if r[0] != me
        ]
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


class CpuMeter:
    """CPU time of this process (every thread) and of the server processes serving the
    bench database, between ``start`` and ``stop`` (server CPU: None when the server is
    not on this machine). Stable on a shared machine where wall time is not."""

    def __init__(self, libpq_url: str) -> None:
        self.url = libpq_url
        self.python = 0.0
        self.db: float | None = None

    def start(self) -> None:
        self._db = backend_cpu_seconds(self.url)
        self._cpu = time.process_time()

    def stop(self) -> None:
        """Call while the timed connections are still open."""
        self.python = time.process_time() - self._cpu
        after = backend_cpu_seconds(self.url)
        if self._db is not None and after is not None:
            # A server process started during the run counts from zero.
            self.db = sum(v - self._db.get(pid, 0.0) for pid, v in after.items())

    def per_claim_us(self, claims: int) -> tuple[float, float | None]:
        n = max(claims, 1)
        return (
            round(self.python / n * 1e6, 1),
            None if self.db is None else round(self.db / n * 1e6, 1),
        )


def reset_stock(libpq_url: str) -> None:
    """Every key back to available, then VACUUM so both runs start from the same state."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE keys SET status = 'available', order_line_id = NULL, reserved_at = NULL"
        )
        conn.execute("VACUUM ANALYZE keys")
        conn.execute("VACUUM ANALYZE order_lines")


def run_threads(
    claimers: int,
    line_ids: list[int],
    claim: Callable[[int], list[Any]],
    meter: CpuMeter | None = None,
) -> tuple[float, list[tuple[int, Any]], list[BaseException]]:
    """``claimers`` threads call ``claim(line_id)`` (one key) until it returns nothing or
    raises InsufficientStock. Returns (seconds, [(line, key id)], unexpected errors)."""
    from core.errors import InsufficientStock

    lines = iter(line_ids)
    lines_lock = threading.Lock()
    results: list[list[tuple[int, Any]]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(claimers + 1)

    def worker(n: int) -> None:
        got = results[n]
        barrier.wait()
        try:
            while True:
                with lines_lock:
                    line_id = next(lines, None)
                if line_id is None:
                    return
                try:
                    keys = claim(line_id)
                except InsufficientStock:
                    return
                if not keys:
                    return
                got.extend((line_id, k) for k in keys)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(claimers)]
    for t in threads:
        t.start()
    if meter is not None:
        meter.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if meter is not None:
        meter.stop()
    return seconds, [pair for r in results for pair in r], errors


def bench_service(
    claimers: int, product_id: int, line_ids: list[int], meter: CpuMeter | None = None
) -> tuple[float, list[Any]]:
    from core.db import get_engine, session_scope
    from core.services.inventory import claim_keys

    # Warm the pool with a connection per thread (as many as it keeps), outside the clock.
    engine = get_engine()
    held = [engine.connect() for _ in range(min(claimers, engine.pool.size()))]  # type: ignore[attr-defined]
    for c in held:
        c.close()

    def claim(line_id: int) -> list[Any]:
        with session_scope() as session:
            return [
                k.id
                for k in claim_keys(
                    session=session, product_id=product_id, quantity=1, line_id=line_id
                )
            ]

    seconds, pairs, errors = run_threads(claimers, line_ids, claim, meter)
    if errors:
        raise SystemExit(f"bench: claim_keys failed: {errors[0]!r}")
    return seconds, pairs


@contextmanager
def session_connection() -> Iterator[Any]:
    """``session_scope()``'s transaction, as its Connection."""
    from core.db import session_scope

    with session_scope() as session:
        yield session.connection()


def bench_floor(
    claimers: int,
    product_id: int,
    line_ids: list[int],
    transaction: Callable[[], Any],
    meter: CpuMeter | None = None,
) -> tuple[float, list[Any]]:
    """The raw claim statement on the psycopg connection under ``transaction()`` (a
    context manager yielding a SQLAlchemy Connection), with none of ``claim_keys``'s
    own code: the floor a caller in such a transaction cannot pass.

    - :func:`session_connection`: the ORM Session every caller of ``claim_keys`` holds
      (pool checkout, begin, commit, close); the gap from it to raw psycopg is the
      Session's.
    - ``engine.begin()``: SQLAlchemy's engine (pool, connection, transaction), no Session.
    """

    def claim(line_id: int) -> list[Any]:
        with transaction() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            rows = driver.execute(RAW_CLAIM_SQL, {"p": product_id, "l": line_id, "n": 1}).fetchall()
        return [r[0] for r in rows]

    seconds, pairs, errors = run_threads(claimers, line_ids, claim, meter)
    if errors:
        raise SystemExit(f"bench: the floor under {transaction!r} failed: {errors[0]!r}")
    return seconds, pairs


def bench_raw(
    claimers: int,
    libpq_url: str,
    product_id: int,
    line_ids: list[int],
    meter: CpuMeter | None = None,
) -> tuple[float, list[Any]]:
    local = threading.local()
    # Opened before the clock starts, as the service's pool is warm: one per thread.
    connections = [psycopg.connect(libpq_url) for _ in range(claimers)]
    idle = list(connections)
    conn_lock = threading.Lock()

    def claim(line_id: int) -> list[Any]:
        conn = getattr(local, "conn", None)
        if conn is None:
            with conn_lock:
                conn = local.conn = idle.pop()
        with conn.transaction():
            rows = conn.execute(RAW_CLAIM_SQL, {"p": product_id, "l": line_id, "n": 1}).fetchall()
        return [r[0] for r in rows]

    seconds, pairs, errors = run_threads(claimers, line_ids, claim, meter)
    for c in connections:
        c.close()
    if errors:
        raise SystemExit(f"bench: raw claim failed: {errors[0]!r}")
    return seconds, pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument(
        "--synchronous-commit",
        choices=["off", "on", "server"],
        default="off",
        help="synchronous_commit for the bench database only (default off: measure the "
        "claim path, not the disk's fsync latency; 'server' keeps the server's setting)",
    )
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        raise SystemExit("bench: --database-url must be a PostgreSQL URL")

    from core import config
    from core.db import get_engine
    from core.schema import migrate

    load_start = [round(x, 2) for x in os.getloadavg()]
    recreate_database(args.database_url, synchronous_commit=args.synchronous_commit)
    bench_url = _libpq_url(args.database_url, BENCH_DB)
    with tempfile.TemporaryDirectory(prefix="keyshop-bench-") as var_dir:
        settings = config.load_settings(
            DATABASE_URL=bench_url,
            KEYSHOP_VAR_DIR=var_dir,
            KEYSHOP_KEYRING="1:" + base64.b64encode(os.urandom(32)).decode(),
            KEYSHOP_FINGERPRINT_KEY=base64.b64encode(os.urandom(32)).decode(),
            KEYSHOP_LOG_LEVEL="WARNING",
        )
        config.use_settings(settings)
        try:
            engine = get_engine()
            migrate(engine)
            product_id, line_ids = prepare(engine, args.keys)

            # Warm the pool and the statement cache (and put the key back).
            bench_service(1, product_id, line_ids[:1])
            reset_stock(bench_url)
            raw_meter, meter = CpuMeter(bench_url), CpuMeter(bench_url)
            raw_seconds, raw_pairs = bench_raw(
                args.claimers, bench_url, product_id, line_ids, raw_meter
            )

            reset_stock(bench_url)
            core_meter = CpuMeter(bench_url)
            core_seconds, core_pairs = bench_floor(
                args.claimers, product_id, line_ids, get_engine().begin, core_meter
            )

            reset_stock(bench_url)
            floor_meter = CpuMeter(bench_url)
            floor_seconds, floor_pairs = bench_floor(
                args.claimers, product_id, line_ids, session_connection, floor_meter
            )
            reset_stock(bench_url)
            seconds, pairs = bench_service(args.claimers, product_id, line_ids, meter)

            with psycopg.connect(bench_url) as conn:
                reserved, distinct_lines = conn.execute(
                    "SELECT count(*), count(DISTINCT order_line_id) FROM keys "
                    "WHERE status = 'reserved'"
                ).fetchone() or (0, 0)
        finally:
            config.use_settings(None)

    key_ids = [k for _, k in pairs]
    distinct = len(set(key_ids))
    claims_per_s = len(pairs) / seconds if seconds else 0.0
    raw_per_s = len(raw_pairs) / raw_seconds if raw_seconds else 0.0
    floor_per_s = len(floor_pairs) / floor_seconds if floor_seconds else 0.0
    core_per_s = len(core_pairs) / core_seconds if core_seconds else 0.0
    report = {
        "bench": "claims",
        "backend": "postgresql",
        "claimers": args.claimers,
        "synchronous_commit": args.synchronous_commit,
        "claims": len(pairs),
        "seconds": round(seconds, 3),
        "claims_per_s": round(claims_per_s, 1),
        "raw_sql_claims_per_s": round(raw_per_s, 1),
        "ratio_to_raw": round(claims_per_s / raw_per_s, 3) if raw_per_s else None,
        "goal": f"ratio_to_raw >= {GOAL_RATIO_TO_RAW} (raw psycopg, same run)",
        "goal_met": bool(raw_per_s and claims_per_s / raw_per_s >= GOAL_RATIO_TO_RAW),
        # CPU per claim of this process (all threads) and of the server processes serving
        # the bench database (null when the server is not on this machine): stable on a
        # shared machine, where the rates are not.
        "python_cpu_us_per_claim": meter.per_claim_us(len(pairs))[0],
        "db_cpu_us_per_claim": meter.per_claim_us(len(pairs))[1],
        "raw_python_cpu_us_per_claim": raw_meter.per_claim_us(len(raw_pairs))[0],
        "raw_db_cpu_us_per_claim": raw_meter.per_claim_us(len(raw_pairs))[1],
        # The same statement inside session_scope() with none of claim_keys's code: the
        # limit a Session-based caller cannot pass, as a ratio to raw psycopg.
        "session_floor_claims_per_s": round(floor_per_s, 1),
        "session_floor_ratio_to_raw": round(floor_per_s / raw_per_s, 3) if raw_per_s else None,
        "ratio_to_session_floor": round(claims_per_s / floor_per_s, 3) if floor_per_s else None,
        "session_floor_python_cpu_us_per_claim": floor_meter.per_claim_us(len(floor_pairs))[0],
        # lower still: engine.begin() (Core: pool, connection, transaction) and no Session
        "core_floor_claims_per_s": round(core_per_s, 1),
        "core_floor_ratio_to_raw": round(core_per_s / raw_per_s, 3) if raw_per_s else None,
        "core_floor_python_cpu_us_per_claim": core_meter.per_claim_us(len(core_pairs))[0],
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "distinct_keys": distinct,
        "duplicates": len(key_ids) - distinct + (len(pairs) - int(distinct_lines)),
    }
    if (
        reserved != args.keys
        or len(pairs) != args.keys
        or len(floor_pairs) != args.keys
        or len(core_pairs) != args.keys
    ):
        report["error"] = f"expected {args.keys} claims, got {len(pairs)} ({reserved} reserved)"
    print(json.dumps(report))
    return 0 if report["duplicates"] == 0 and "error" not in report else 1


if __name__ == "__main__":
    raise SystemExit(main())
