"""Benchmark: a streamed CSV export of a million rows.

    .venv/bin/python bench/export.py [--rows 1000000] [--kind audit|orders]
        [--database-url URL]

Builds a database of its own (a temporary SQLite file; with ``--database-url``, that
database, which must be empty: it is migrated and filled) with ``--rows`` audit events
(or orders), outside the timing, then runs ``keyshop export``'s code path
(:func:`core.services.exports.export_to_file`) into a temporary file and measures the
wall time, rows per second, and the process's peak resident memory before and during
the export (psutil, sampled every 10 ms in a thread): bounded memory means the peak
does not grow with ``--rows``.

Prints one JSON line.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402


def configure(database_url: str | None, folder: Path) -> None:
    key = base64.b64encode(b"b" * 32).decode()
    os.environ.update(
        {
            "KEYSHOP_VAR_DIR": str(folder),
            "DATABASE_URL": database_url or f"sqlite:///{folder / 'bench.db'}",
            "KEYSHOP_KEYRING": f"1:{key}",
            "KEYSHOP_FINGERPRINT_KEY": key,
        }
    )


def fill(kind: str, rows: int) -> None:
    from sqlalchemy import insert

    from core.db import session_scope
    from core.models import AuditEvent, Order, utcnow
    from core.schema import migrate

    migrate()
    now = utcnow()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with session_scope() as session:
            session.execute(insert(AuditEvent if kind == "audit" else Order), batch)
        batch.clear()

    for i in range(rows):
        if kind == "audit":
            batch.append(
                {
                    "actor_type": "operator",
                    "actor_id": "=bench" if i % 100 == 0 else "bench",
                    "action": "product.edit",
                    "object_type": "product",
                    "object_id": str(i),
                    "data": {"changes": {"price_minor": [1999, 2499]}},
                    "created_at": now,
                }
            )
        else:
            batch.append(
                {
                    "number": f"KS-{i:010d}",
                    "email": f"buyer{i}@example.com",
                    "status": "fulfilled",
                    "currency": "EUR",
                    "subtotal_minor": 1999,
                    "total_minor": 1999,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if len(batch) >= 20_000:
            flush()
    if batch:
        flush()


class PeakRss:
    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["audit", "orders"], default="audit")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyshop-bench-export-") as folder:
        configure(args.database_url, Path(folder))
        started = time.perf_counter()
        fill(args.kind, args.rows)
        built = time.perf_counter() - started
        from core.db import get_engine
        from core.services.exports import export_to_file

        today = datetime.now(UTC).date()
        before = psutil.Process().memory_info().rss
        target = Path(folder) / "export.csv"
        with PeakRss() as rss:
            start = time.perf_counter()
            count = export_to_file(
                args.kind, start=today - timedelta(days=1), end=today + timedelta(days=1),
                path=target,
            )  # fmt: skip
            elapsed = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "bench": "export",
                    "kind": args.kind,
                    "rows": count,
                    "database": get_engine().dialect.name,
                    "build_s": round(built, 2),
                    "export_s": round(elapsed, 3),
                    "rows_per_s": round(count / elapsed) if elapsed else None,
                    "file_mib": round(target.stat().st_size / 2**20, 1),
                    "rss_before_mib": round(before / 2**20, 1),
                    "rss_peak_mib": round(rss.peak / 2**20, 1),
                    "rss_growth_mib": round((rss.peak - before) / 2**20, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
