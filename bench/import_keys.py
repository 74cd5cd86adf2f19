"""Benchmark: bulk key import through ``core.services.importer.import_keys``.

    .venv/bin/python bench/import_keys.py [--keys 1000000] [--batch-size N]
        [--database-url postgresql://postgres@127.0.0.1/test | sqlite:///path.db]
        [--no-reimport]

On PostgreSQL it builds a database of its own, ``keyshop_bench_import`` (dropped and
recreated each run through the server's ``postgres`` database; the database named in
``--database-url`` only locates the server and is never touched), so tests running at
the same time are not disturbed. On SQLite it uses a fresh file in a temporary folder
(the path in the URL is ignored). Settings come from ``load_settings`` with a generated
keyring and fingerprint secret and ``KEYSHOP_VAR_DIR`` in a temporary folder; the
schema comes from the real migrations.

Outside the timing it writes a file of N random, distinct keys (``XXXXX-XXXXX-XXXXX-XXXXX``,
hex). It then times ``import_keys`` on it — reading, checking, fingerprinting,
encrypting, duplicate detection and the commits, with the server's own durability
settings — and, unless ``--no-reimport``, imports the same file a second time (every
key then a duplicate in stock). Prints one JSON line; the goal is ≥ 50,000 keys/s on
PostgreSQL for 1,000,000 keys.

Besides the wall-clock rate the line carries, per key read, the CPU time of this process
(``python_cpu_us_per_key``: parsing, fingerprints, encryption, COPY encoding, all
threads) and of the PostgreSQL server processes serving the bench database
(``db_cpu_us_per_key``, from /proc, so only for a server on this machine; background
writer, WAL writer and checkpointer are not included), and the load average at the start
and end. On a shared machine the CPU figures stay comparable between runs when the wall
time does not. The import stores batches over ``writers`` connections side by side
(``core.services.importer.PG_WRITERS`` on PostgreSQL, one on SQLite), so it cannot go
faster than ``writers * 1e6 / db_cpu_us_per_key`` keys/s, nor faster than the machine's
cores allow for the server's and this process's CPU together.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BENCH_DB = "keyshop_bench_import"
GOAL_KEYS_PER_S = 50_000
DEFAULT_URL = "postgresql://postgres@127.0.0.1/test"


def _libpq_url(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


def recreate_database(server_url: str) -> str:
    """Drop and create the bench database; returns its SQLAlchemy URL."""
    with psycopg.connect(_libpq_url(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return (
        make_url(server_url)
        .set(drivername="postgresql+psycopg", database=BENCH_DB)
        .render_as_string(hide_password=False)
    )


def write_keys(path: Path, n: int) -> None:
    """N distinct random keys, one per line, written in slices (never all in memory)."""
    with path.open("w", encoding="ascii") as fh:
        done = 0
        while done < n:
            count = min(50_000, n - done)
            raw = os.urandom(10 * count).hex().upper()
            fh.write(
                "".join(
                    f"{raw[i : i + 5]}-{raw[i + 5 : i + 10]}-{raw[i + 10 : i + 15]}-{raw[i + 15 : i + 20]}\n"
                    for i in range(0, 20 * count, 20)
                )
            )
            done += count


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def backend_cpu_seconds(engine: Any) -> dict[int, float] | None:
    """CPU seconds used so far by each server process connected to the bench database,
    read from /proc: only when the server runs on this machine (else None)."""
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        out: dict[int, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        conn.rollback()
    return out


def timed_import(
    path: Path, batch_size: int | None, engine: Any, backend: str
) -> tuple[Any, dict[str, Any]]:
    """One import_keys run: the report, and wall time, this process's CPU time and (on a
    local PostgreSQL) the database server's CPU time for it."""
    from core.services.importer import import_keys

    db_before = backend_cpu_seconds(engine) if backend == "postgresql" else None
    cpu_before = time.process_time()
    started = time.perf_counter()
    report = import_keys(
        path=path, product_slug="bench-game", operator="bench", batch_size=batch_size, engine=engine
    )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    db_after = backend_cpu_seconds(engine) if db_before is not None else None
    n = max(report.read, 1)
    timing: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "keys_per_s": round(report.read / seconds),
        "python_cpu_us_per_key": round(cpu / n * 1e6, 2),
        "db_cpu_us_per_key": None,
    }
    if db_before is not None and db_after is not None:
        db = sum(v - db_before.get(pid, 0.0) for pid, v in db_after.items())
        timing["db_cpu_us_per_key"] = round(db / n * 1e6, 2)
    return report, timing


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: KEYSHOP_IMPORT_BATCH_SIZE"
    )
    parser.add_argument(
        "--no-reimport", action="store_true", help="skip the second import of the same file"
    )
    args = parser.parse_args(argv)

    backend = make_url(args.database_url).get_backend_name()
    if backend not in ("postgresql", "postgres", "sqlite"):
        parser.error("--database-url must be PostgreSQL or SQLite")

    from core import config

    with tempfile.TemporaryDirectory(prefix="keyshop-bench-import-") as tmp:
        work = Path(tmp)
        if backend == "sqlite":
            backend, url = "sqlite", f"sqlite:///{work / 'bench.db'}"
        else:
            backend, url = "postgresql", recreate_database(args.database_url)
        settings = config.load_settings(
            KEYSHOP_VAR_DIR=str(work / "var"),
            DATABASE_URL=url,
            KEYSHOP_KEYRING="1:" + base64.b64encode(os.urandom(32)).decode(),
            KEYSHOP_FINGERPRINT_KEY=base64.b64encode(os.urandom(32)).decode(),
        )
        config.use_settings(settings)
        try:
            from core.db import get_engine, session_scope
            from core.models import Product
            from core.schema import migrate
            from core.services import importer

            migrate()
            with session_scope() as session:
                session.add(
                    Product(
                        slug="bench-game", title="Bench Game", platform="Steam", price_minor=1999
                    )
                )
            path = work / "keys.txt"
            write_keys(path, args.keys)
            engine = get_engine()

            load_start = loadavg()
            report, timing = timed_import(path, args.batch_size, engine, backend)
            result: dict[str, Any] = {
                "bench": "import_keys",
                "backend": backend,
                "keys": args.keys,
                "seconds": timing["seconds"],
                "keys_per_s": timing["keys_per_s"],
                "goal_keys_per_s": GOAL_KEYS_PER_S,
                # CPU per key of this process (all threads) and of the database server's
                # processes serving the bench database (null when not on this machine).
                "python_cpu_us_per_key": timing["python_cpu_us_per_key"],
                "db_cpu_us_per_key": timing["db_cpu_us_per_key"],
                "peak_rss_mb": peak_rss_mb(),
                "imported": report.imported,
                "batch_size": args.batch_size or settings.import_batch_size,
                "writers": importer.PG_WRITERS if backend == "postgresql" else 1,
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "cpus": os.cpu_count(),
                "loadavg_start": load_start,
            }
            if not args.no_reimport:
                again, timing = timed_import(path, args.batch_size, engine, backend)
                result["reimport_seconds"] = timing["seconds"]
                result["reimport_keys_per_s"] = timing["keys_per_s"]
                result["reimport_python_cpu_us_per_key"] = timing["python_cpu_us_per_key"]
                result["reimport_db_cpu_us_per_key"] = timing["db_cpu_us_per_key"]
                result["reimport_duplicate_in_stock"] = again.duplicate_in_stock
                result["peak_rss_mb"] = peak_rss_mb()
            result["loadavg_end"] = loadavg()
        finally:
            config.use_settings(None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
