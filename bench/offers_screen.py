"""Benchmark: the console's offers screen over a big provider catalogue.

    .venv/bin/python bench/offers_screen.py [--offers 100000] [--runs 5]
        [--database-url URL]

Builds a database of its own (a temporary SQLite file; with ``--database-url``, that
database, which must be empty: it is migrated and filled), with ``--offers`` provider
offers over two providers (a third mapped to 1,000 products, invented titles), outside
the timing. Then, ``--runs`` times, it times the service calls the screen makes
(``list_offers``: the first page, the unmapped ones, a search matching many offers, one
matching a single external id, a page deep in the list) and the screen itself run
headless (``App.run_test()``): from the F2 key press until the first page is on screen,
and from a search's Enter until its results are (the goal: under a second each).

Prints one JSON line: the median and worst of each figure in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORDS = [
    "star",
    "fall",
    "iron",
    "tide",
    "hollow",
    "dragon",
    "ember",
    "vanguard",
    "shadow",
    "frost",
    "crown",
    "echo",
    "rift",
    "storm",
    "night",
    "sun",
    "blade",
    "forge",
    "lantern",
    "chronicles",
    "legends",
    "saga",
]
GOAL_S = 1.0


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


def fill(offers: int) -> None:
    from sqlalchemy import insert

    from core.db import session_scope
    from core.models import Product, ProviderOffer
    from core.schema import migrate

    migrate()
    rng = random.Random(16)
    titles = [" ".join(rng.sample(WORDS, 3)).title() for _ in range(1000)]
    with session_scope() as session:
        session.execute(
            insert(Product),
            [
                {
                    "slug": f"bench-{i}",
                    "title": t,
                    "platform": "Steam",
                    "region": "GLOBAL",
                    "genre": "Action",
                    "description": "",
                    "publisher": "",
                    "activation_instructions": "",
                    "price_minor": 1999,
                    "currency": "EUR",
                }
                for i, t in enumerate(titles)
            ],
        )
    batch: list[dict[str, Any]] = []
    for i in range(offers):
        title = " ".join(rng.sample(WORDS, 3)).title()
        batch.append(
            {
                "provider": "codeswholesale" if i % 2 else "kinguin",
                "external_id": f"ext-{i:07d}",
                "product_id": (i % 1000) + 1 if i % 3 == 0 else None,
                "name": f"{title} Steam CD Key",
                "title": title,
                "platform": "Steam",
                "region": "GLOBAL",
                "cost_minor": rng.randint(100, 6000),
                "currency": "EUR",
                "stock": rng.randint(0, 50),
            }
        )
        if len(batch) >= 10_000:
            with session_scope() as session:
                session.execute(insert(ProviderOffer), batch)
            batch.clear()
    if batch:
        with session_scope() as session:
            session.execute(insert(ProviderOffer), batch)


def time_services(offers: int) -> dict[str, float]:
    from core.db import session_scope
    from core.services.operator.offers import list_offers

    cases = {
        "first_page_s": {},
        "unmapped_s": {"unmapped": True},
        "search_many_s": {"query": "dragon"},
        "search_one_s": {"query": f"ext-{offers // 2:07d}"},
        "deep_page_s": {"after_id": max(0, offers - 150)},
    }
    out = {}
    for name, kwargs in cases.items():
        start = time.perf_counter()
        with session_scope(write=False) as session:
            list_offers(session=session, **kwargs)  # type: ignore[arg-type]
        out[name] = time.perf_counter() - start
    return out


async def time_screen() -> dict[str, float]:
    from textual.widgets import DataTable, Input

    from console.app import make_app
    from core.config import get_settings

    app = make_app(get_settings(), operator="bench", refresh_seconds=0, provider_clients=dict)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.workers.wait_for_complete()
        start = time.perf_counter()
        await pilot.press("f2")
        table = app.screen.query_one("#offers-table", DataTable)
        while table.row_count == 0:
            await pilot.pause()
        await app.workers.wait_for_complete()
        opened = time.perf_counter() - start
        box = app.screen.query_one("#offers-filter", Input)
        box.value = "frost"
        box.focus()
        start = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        searched = time.perf_counter() - start
    return {"screen_open_s": opened, "screen_search_s": searched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyshop-bench-offers-") as folder:
        configure(args.database_url, Path(folder))
        started = time.perf_counter()
        fill(args.offers)
        built = time.perf_counter() - started
        figures: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, value in {**time_services(args.offers), **asyncio.run(time_screen())}.items():
                figures.setdefault(name, []).append(value)
        from core.db import get_engine

        result: dict[str, Any] = {
            "bench": "offers_screen",
            "offers": args.offers,
            "runs": args.runs,
            "database": get_engine().dialect.name,
            "build_s": round(built, 2),
            "goal_s": GOAL_S,
        }
        for name, values in figures.items():
            result[name] = {
                "median": round(statistics.median(values), 4),
                "max": round(max(values), 4),
            }
        result["goal_met"] = all(
            v["max"] <= GOAL_S for k, v in result.items() if isinstance(v, dict)
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
