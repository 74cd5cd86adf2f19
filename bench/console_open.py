"""Benchmark: the operator console opening on a big shop.

    .venv/bin/python bench/console_open.py [--keys 1000000] [--orders 100000]
        [--products 1000] [--runs 3] [--database-url postgresql://postgres@127.0.0.1/test]

Builds a database of its own, ``keyshop_bench_console`` (dropped and recreated each run
through the server's ``postgres`` database, dropped again at the end; the database named
in ``--database-url`` only locates the server), migrates it, and fills it in SQL with
``generate_series`` (outside the timing): ``--products`` products, ``--keys`` keys
spread over them (90% available, the rest delivered to order lines), ``--orders``
orders of one line each (mostly fulfilled, some paid, 40 needing attention), as many
audit events and webhooks as orders, 30 open faulty-key reports and 500 provider
offers. Key rows hold random bytes where the ciphertext goes: nothing here decrypts.

Then, ``--runs`` times, it times ``console.app.make_app(...)`` run headless
(``App.run_test()``): from building the app until the dashboard shows its figures
(``open_s``, the goal: at most 1 s), and then each list screen (attention, inventory,
orders, audit, webhooks, providers) from its key press until its first page is on
screen and every worker has finished. Provider balances and the queue depth are
injected (no network), so the figures measure the database and the console.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

BENCH_DB = "keyshop_bench_console"
DEFAULT_URL = "postgresql://postgres@127.0.0.1/test"
GOAL_OPEN_S = 1.0
SCREENS = [
    ("2", "attention", "#attention-table"),
    ("3", "inventory", "#stock-table"),
    ("4", "orders", "#order-results"),
    ("5", "audit", "#audit-table"),
    ("7", "webhooks", "#webhooks-table"),
    ("9", "providers", "#providers-table"),
]


def libpq_url(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def admin(server_url: str, *statements: str) -> None:
    last: Exception | None = None
    for maintenance_db in ("postgres", make_url(server_url).database or "postgres"):
        try:
            with psycopg.connect(libpq_url(server_url, maintenance_db), autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)  # type: ignore[arg-type]
                return
        except psycopg.OperationalError as exc:
            last = exc
    raise SystemExit(f"bench: cannot reach PostgreSQL for {BENCH_DB}: {last}")


FILL_SQL = """
INSERT INTO keys (id, product_id, status, kind, ciphertext, key_version, fingerprint,
                  created_at)
SELECT gen_random_uuid(), 1 + (g %% %(products)s),
       CASE WHEN g %% 10 = 0 THEN 'delivered' ELSE 'available' END,
       'text', '\\x00'::bytea, 1, decode(md5(g::text), 'hex'), now() - g * interval '1 second'
FROM generate_series(1, %(keys)s) AS g;

INSERT INTO orders (number, email, status, currency, subtotal_minor, total_minor,
                    created_at, updated_at, paid_at, fulfilment_attempts)
SELECT 'KS-B' || lpad(g::text, 8, '0'), 'buyer' || (g %% 20000) || '@example.com',
       CASE WHEN g <= 40 THEN 'needs_attention' WHEN g <= 60 THEN 'paid' ELSE 'fulfilled' END,
       'EUR', 1999, 1999, now() - g * interval '10 seconds', now() - g * interval '10 seconds',
       now() - g * interval '10 seconds', 1
FROM generate_series(1, %(orders)s) AS g;

INSERT INTO order_lines (order_id, product_id, title, platform, region, unit_price_minor,
                         currency, quantity)
SELECT o.id, 1 + (o.id %% %(products)s), 'Bench Game', 'Steam', 'GLOBAL', 1999, 'EUR', 1
FROM orders o;

UPDATE orders SET attention_reason = 'no stock and every provider refused'
WHERE status = 'needs_attention';

INSERT INTO audit_events (actor_type, actor_id, action, object_type, object_id, data,
                          created_at)
SELECT 'system', 'keyshop', 'order.transition', 'order', g::text, '{}'::json,
       now() - g * interval '10 seconds'
FROM generate_series(1, %(orders)s) AS g;

INSERT INTO webhook_events (source, event_id, event_type, raw_body, authenticated,
                            received_at, processed_at, outcome)
SELECT 'stripe', 'evt_' || g, 'checkout.session.completed', '{"id": 1}'::bytea, true,
       now() - g * interval '10 seconds', now() - g * interval '10 seconds', 'paid'
FROM generate_series(1, %(orders)s) AS g;

INSERT INTO provider_offers (provider, external_id, product_id, name, cost_minor, currency,
                             stock, is_preorder, last_synced_at)
SELECT CASE WHEN g %% 2 = 0 THEN 'kinguin' ELSE 'codeswholesale' END, 'ext-' || g,
       CASE WHEN g %% 3 = 0 THEN NULL ELSE 1 + (g %% %(products)s) END,
       'Offer ' || g, 900, 'EUR', g %% 7, false, now()
FROM generate_series(1, 500) AS g;
"""

REPORTS_SQL = """
INSERT INTO key_reports (key_id, order_id, email, message, status, created_at)
SELECT k.id, 1 + (row_number() OVER ()) , 'buyer@example.com', 'does not work', 'open', now()
FROM (SELECT id FROM keys WHERE status = 'delivered' LIMIT 30) AS k;
"""


def fill(engine: Any, args: argparse.Namespace) -> dict[str, float]:
    from core.models import Product, utcnow

    now = utcnow()
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            insert(Product.__table__),  # type: ignore[attr-defined]
            [
                {
                    "slug": f"bench-game-{n}",
                    "title": f"Bench Game {n:05d}",
                    "platform": "Steam",
                    "region": "GLOBAL",
                    "genre": "Action",
                    "description": "",
                    "publisher": "",
                    "price_minor": 1999,
                    "currency": "EUR",
                    "is_preorder": False,
                    "activation_instructions": "",
                    "low_stock_threshold": 5 if n % 50 else 10_000,
                    "featured": False,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(1, args.products + 1)
            ],
        )
    url = libpq_url(args.database_url, BENCH_DB)
    params = {"products": args.products, "keys": args.keys, "orders": args.orders}
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in FILL_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement % params)  # type: ignore[arg-type]
        conn.execute(REPORTS_SQL)  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")
    return {"fill_s": round(time.perf_counter() - started, 1)}


async def time_console(settings: Any) -> dict[str, float]:
    from textual.widgets import DataTable
    from textual.worker import WorkerState

    from console.app import make_app

    async def settled(pilot: Any) -> None:
        while True:
            await pilot.pause(0.002)
            if not any(
                w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers
            ):
                await pilot.pause()
                return

    figures: dict[str, float] = {}
    started = time.perf_counter()
    app = make_app(
        settings,
        operator="bench",
        refresh_seconds=0,
        queue_depth=lambda: 0,
        provider_clients=dict,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.get_screen("dashboard")
        while dashboard.figures is None:  # type: ignore[attr-defined]
            await pilot.pause(0.002)
        figures["open_s"] = time.perf_counter() - started
        await settled(pilot)
        for key, name, table_id in SCREENS:
            started = time.perf_counter()
            await pilot.press(key)
            await settled(pilot)
            table = app.screen.query_one(table_id, DataTable)
            assert app.screen.name == name and table.row_count > 0, (name, table.row_count)
            figures[f"{name}_s"] = time.perf_counter() - started
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args(argv)

    admin(
        args.database_url,
        f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)",
        f"CREATE DATABASE {BENCH_DB}",
        f"ALTER DATABASE {BENCH_DB} SET synchronous_commit = off",
    )
    try:
        from core import config
        from core.config import load_settings
        from core.db import get_engine
        from core.schema import migrate

        var_dir = tempfile.mkdtemp(prefix="keyshop-bench-console-")
        settings = load_settings(
            KEYSHOP_VAR_DIR=var_dir,
            DATABASE_URL=libpq_url(args.database_url, BENCH_DB),
            KEYSHOP_KEYRING="1:" + base64.b64encode(os.urandom(32)).decode(),
            KEYSHOP_FINGERPRINT_KEY=base64.b64encode(os.urandom(32)).decode(),
            KEYSHOP_LOG_LEVEL="WARNING",
        )
        config.use_settings(settings)
        migrate()
        setup = fill(get_engine(), args)
        runs = [asyncio.run(time_console(settings)) for _ in range(args.runs)]
        get_engine().dispose()
    finally:
        admin(args.database_url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")

    def summary(name: str) -> dict[str, float]:
        values = [r[name] for r in runs]
        return {
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
        }

    opened = summary("open_s")
    print(
        json.dumps(
            {
                "bench": "console_open",
                "keys": args.keys,
                "orders": args.orders,
                "products": args.products,
                "runs": args.runs,
                **setup,
                "open_s": opened,
                "screens_s": {name: summary(f"{name}_s") for _, name, _ in SCREENS},
                "goal_open_s": GOAL_OPEN_S,
                "met": opened["max"] <= GOAL_OPEN_S,
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
