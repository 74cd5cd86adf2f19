"""Benchmark: ``GET /api/store/products`` over a 100,000-product catalogue, 32 clients.

    .venv/bin/python bench/store_api.py [--products 100000] [--clients 32]
        [--seconds 30] [--warmup 5] [--workers 4] [--server granian|uvicorn]
        [--think-ms 0] [--no-ceiling] [--server-url postgresql://postgres@127.0.0.1:5432/postgres]

Builds its own PostgreSQL database (``keyshop_bench_store``: dropped, created and
migrated by ``bench/_stack.py``'s Stack), loads the catalogue with COPY outside the
timing: ``--products`` products with generated titles (two words from a vocabulary plus
a sequel number), ten platforms, seven regions, twelve genres, prices from 1.99 to
69.99, a few featured; own keys (placeholder ciphertext, never decrypted) for 40% of
them and a provider offer with stock for another 15%. COPY bypasses the services, so
the stock summary is then computed once (``catalogue.refresh_stock_flags``), and the
tables are vacuumed and analysed (the steady state autovacuum keeps a live shop in).

Then, in this order:

1. **service time**: the same query mix through ``catalogue.search_products`` in this
   process, one search at a time (no HTTP): what one search costs (PostgreSQL plus
   Python), p50/p95 per kind, with the search cache emptied first; and the same search
   again at once, served by the cache (``service_time.cache_hit``).
2. **ceiling**: the HTTP server the API runs under (granian, ``--workers`` processes,
   as the production web service runs 4) serving a bare Starlette route at the same
   path that returns a constant page of the same size, driven exactly like the API:
   what this machine can do at all with this client and server.
3. **API**: the store API (``web.api.app.create_api``) under the same server, with the
   search cache's hit rate over the run (the workers' ``/api/metrics`` counters).
   Before it, the API answering only the ceiling's own page (``sort=newest``), from the
   search cache after the first request (``api_cached_page``): what the route costs
   without searching, the limit under the search mix.
4. **open loop**: the API again, sent ``--open-rate`` (100) requests per second on a
   fixed schedule whatever the answers take: the latency a shop sees at that load.

The clients are ``--clients`` concurrent httpx clients (asyncio, keep-alive) in this
process, each sending requests back to back (or with an exponential pause of mean
``--think-ms``) for ``--warmup`` + ``--seconds`` seconds over a fixed mix (text search,
facet filters, price ranges, in-stock, every sort, pages 1 to 5). Only the window after
the warm-up is counted. Every answer must be 200 with a JSON page.

Prints one JSON line: for the API and the ceiling p50/p95/p99 latency (ms), throughput
(requests/s) and p95 per kind; their ratio; the search cache's hit rate; the open-loop
latencies; the service time; the goal (issue #20: API throughput ≥ 0.5 of the ceiling's
in the same run, and p95 ≤ 50 ms at 100 requests/s offered) and whether it was met; the
load average. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench._stack import (  # noqa: E402
    DEFAULT_SERVER_URL,
    Stack,
    free_port,
    loadavg,
    wait_for_quiet_machine,
)

BENCH_DB = "keyshop_bench_store"
#: Issue #20: at least half the constant route's throughput (same server, same clients,
#: same run), and p95 <= 50 ms at an offered open-loop 100 requests/s.
GOAL_RATIO = 0.5
GOAL_OPEN_P95_MS = 50.0
CEILING_BODY_ENV = "KEYSHOP_BENCH_CEILING_BODY"

PLATFORMS = ["Steam", "Xbox", "PlayStation", "Nintendo", "EA app", "Ubisoft Connect", "GOG",
             "Battle.net", "Epic Games", "Rockstar"]  # fmt: skip
REGIONS = ["GLOBAL", "GLOBAL", "GLOBAL", "EU", "US", "UK", "LATAM", "ASIA", "RU"]
GENRES = ["Action", "Adventure", "RPG", "Strategy", "Racing", "Puzzle", "Horror", "Shooter",
          "Simulation", "Platformer", "Sports", "Fighting"]  # fmt: skip
FIRST = ["Starfall", "Hollow", "Ember", "Neon", "Quiet", "Iron", "Ashen", "Copper", "Velvet",
         "Gloam", "Brine", "Paper", "Frost", "Clockwork", "Crimson", "Silent", "Shadow", "Golden",
         "Broken", "Endless", "Savage", "Lunar", "Solar", "Storm", "Witch", "Dragon", "Pixel",
         "Rogue", "Arcane", "Steel", "Wild", "Hidden", "Lost", "Dark", "Bright", "Cursed",
         "Emerald", "Obsidian", "Scarlet", "Thunder"]  # fmt: skip
SECOND = ["Vanguard", "Tide", "Chronicles", "Drift", "Meridian", "Orchard", "Lighthouse",
          "Express", "Comet", "Reach", "Saga", "Odyssey", "Legion", "Harvest", "Kingdom",
          "Frontier", "Protocol", "Empire", "Hunter", "Tactics", "Legends", "Requiem", "Rising",
          "Exodus", "Dominion", "Horizon", "Outpost", "Rebellion", "Citadel", "Gambit"]  # fmt: skip
PUBLISHERS = ["Lantern Forge", "Brine Works", "Greyhollow Studios", "Red Anvil Games",
              "Softglow Games", "Kestrel Peak", "Mothwing Publishing", "Six Kettles"]  # fmt: skip


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------------------


def _copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    def cell(v: Any) -> str:
        if v is None:
            return "\\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        if isinstance(v, bytes):
            return "\\\\x" + v.hex()
        return str(v).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")

    return "".join("\t".join(cell(v) for v in row) + "\n" for row in rows).encode()


def load_catalogue(stack: Stack, products: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    today = now.date()
    rows = []
    for i in range(products):
        title = f"{rng.choice(FIRST)} {rng.choice(SECOND)}" + (
            f" {rng.randint(2, 9)}" if rng.random() < 0.4 else ""
        )
        platform, region = rng.choice(PLATFORMS), rng.choice(REGIONS)
        price = rng.randrange(199, 7000, 100)
        listed = price + rng.randrange(500, 3000, 100) if rng.random() < 0.15 else None
        future = rng.random() < 0.03
        release = (
            today + timedelta(days=rng.randint(10, 300))
            if future
            else today - timedelta(days=rng.randint(1, 3000))
        )
        created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 900))
        rows.append((
            f"bench-{i}", f"{title}", platform, region, rng.choice(GENRES), "",
            rng.choice(PUBLISHERS), price, "EUR", listed, future, release.isoformat(), "", 5,
            rng.random() < 0.01, True, None, created.isoformat(), created.isoformat(),
        ))  # fmt: skip
    columns = ("slug, title, platform, region, genre, description, publisher, price_minor, "
               "currency, list_price_minor, is_preorder, release_date, activation_instructions, "
               "low_stock_threshold, featured, active, cover_url, created_at, updated_at")  # fmt: skip
    started = time.monotonic()
    with stack.connect() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY products ({columns}) FROM STDIN") as copy:
            copy.write(_copy_text(rows))
        ids = [r[0] for r in cur.execute("SELECT id FROM products ORDER BY id").fetchall()]
        keys, offers = [], []
        for pid in ids:
            roll = rng.random()
            if roll < 0.40:
                for _ in range(rng.randint(1, 3)):
                    keys.append((str(uuid.uuid4()), pid, "available", "text", os.urandom(40), 1,
                                 os.urandom(32), now.isoformat()))  # fmt: skip
            elif roll < 0.55:
                offers.append(("kinguin", f"k-{pid}", pid, "bench offer", 500, "EUR",
                               rng.randint(1, 50), False))  # fmt: skip
        with cur.copy(
            "COPY keys (id, product_id, status, kind, ciphertext, key_version, fingerprint, "
            "created_at) FROM STDIN"
        ) as copy:
            copy.write(_copy_text(keys))
        with cur.copy(
            "COPY provider_offers (provider, external_id, product_id, name, cost_minor, "
            "currency, stock, is_preorder) FROM STDIN"
        ) as copy:
            copy.write(_copy_text(offers))
        cur.execute("ANALYZE products")
        cur.execute("ANALYZE keys")
        cur.execute("ANALYZE provider_offers")
    return {
        "products": len(ids),
        "keys": len(keys),
        "offers": len(offers),
        "load_s": round(time.monotonic() - started, 1),
    }


def settle_catalogue(stack: Stack) -> dict[str, float]:
    """The stock summary for the COPY-loaded rows, then VACUUM ANALYZE."""
    from core.db import session_scope
    from core.services.catalogue import refresh_stock_flags

    started = time.monotonic()
    with session_scope() as session:
        flagged = refresh_stock_flags(session=session)
    refreshed = time.monotonic() - started
    with stack.connect() as conn:
        conn.autocommit = True
        for table in ("products", "keys", "provider_offers"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    return {
        "in_stock_flagged": flagged,
        "full_refresh_s": round(refreshed, 2),
        "settle_s": round(time.monotonic() - started, 1),
    }


# -- the query mix ---------------------------------------------------------------------------


def query_mix(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One request: (kind, query parameters)."""
    roll = rng.random()
    page = rng.choice([1, 1, 1, 2, 3, 5])
    if roll < 0.30:  # one word, as typed: a prefix of a title word
        word = rng.choice(FIRST + SECOND)
        return "text", {"q": word[: rng.randint(3, len(word))].lower(), "page": page}
    if roll < 0.45:  # two words
        return "text2", {"q": f"{rng.choice(FIRST)} {rng.choice(SECOND)[:4]}".lower()}
    if roll < 0.60:
        return "facets", {"platform": rng.choice(PLATFORMS), "region": rng.choice(REGIONS),
                          "sort": rng.choice(["price_asc", "newest"]), "page": page}  # fmt: skip
    if roll < 0.72:
        low = rng.randrange(0, 5000, 500)
        return "price", {"min_price": low, "max_price": low + 1500, "genre": rng.choice(GENRES),
                         "sort": "price_asc", "page": page}  # fmt: skip
    if roll < 0.82:
        return "in_stock", {"in_stock": "true", "platform": rng.choice(PLATFORMS),
                            "sort": rng.choice(["relevance", "price_desc"]), "page": page}  # fmt: skip
    if roll < 0.92:
        return "browse", {"sort": rng.choice(["relevance", "newest", "title", "price_asc"]),
                          "page": page}  # fmt: skip
    return "text+filter", {"q": rng.choice(FIRST).lower()[:5], "platform": rng.choice(PLATFORMS),
                           "in_stock": "true"}  # fmt: skip


def cached_page(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """Always the page the ceiling route returns (the newest products): after the first
    request every answer comes from the search cache."""
    return "cached", {"sort": "newest"}


def shopper(client: int, request: int) -> dict[str, str]:
    """The made-up address a request comes from (``X-Forwarded-For``, believed from the one
    proxy hop the stack trusts): each client is many shoppers, a new one every 50
    requests, so the store API's per-address limit (300 a minute) never refuses the
    bench, and its counter is written as for real shoppers."""
    shopper_no = request // 50
    return {
        "X-Forwarded-For": f"10.{client % 256}.{(shopper_no // 250) % 256}.{shopper_no % 250 + 1}"
    }


async def drive(
    base_url: str,
    clients: int,
    warmup: float,
    seconds: float,
    think_ms: float = 0.0,
    mix: Any = query_mix,
) -> dict[str, Any]:
    latencies: list[tuple[str, float]] = []
    errors: list[str] = []
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def client(n: int) -> None:
        rng = random.Random(1000 + n)
        sent = 0
        async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
            while (now := time.monotonic()) < stop_at:
                kind, params = mix(rng)
                t0 = time.perf_counter()
                answer = await http.get(
                    "/api/store/products", params=params, headers=shopper(n, sent)
                )
                sent += 1
                elapsed = time.perf_counter() - t0
                if answer.status_code != 200 or "items" not in answer.json():
                    errors.append(f"{answer.status_code} {params} {answer.text[:200]}")
                elif now >= measure_from:
                    latencies.append((kind, elapsed))
                if think_ms > 0:  # a shopper reads the page before the next search
                    await asyncio.sleep(rng.expovariate(1000.0 / think_ms))

    await asyncio.gather(*(client(n) for n in range(clients)))
    return {"latencies": latencies, "errors": errors}


async def drive_open(
    base_url: str, rate: float, warmup: float, seconds: float, connections: int = 64
) -> dict[str, Any]:
    """Open loop: requests sent on a fixed schedule of ``rate`` per second whatever the
    answers take (each on its own task, up to ``connections`` connections)."""
    latencies: list[tuple[str, float]] = []
    errors: list[str] = []
    rng = random.Random(4242)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0, limits=limits) as http:

        async def one(kind: str, params: dict[str, Any], counted: bool, number: int) -> None:
            t0 = time.perf_counter()
            try:
                answer = await http.get(
                    "/api/store/products", params=params, headers=shopper(200, number)
                )
            except httpx.HTTPError as exc:
                errors.append(repr(exc)[:200])
                return
            elapsed = time.perf_counter() - t0
            if answer.status_code != 200:
                errors.append(f"{answer.status_code} {params} {answer.text[:200]}")
            elif counted:
                latencies.append((kind, elapsed))

        start = time.perf_counter()
        total = int(rate * (warmup + seconds))
        pending = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, params = query_mix(rng)
            pending.append(asyncio.create_task(one(kind, params, i >= rate * warmup, i)))
        await asyncio.gather(*pending)
    return {"latencies": latencies, "errors": errors}


def cache_counts(api_url: str) -> dict[str, float]:
    """The API processes' search-cache counters (keyshop_search_cache_requests_total),
    summed over every worker (prometheus multiprocess mode, see serve())."""
    text = httpx.get(f"{api_url}/api/metrics", timeout=30.0).text
    counts = {"hit": 0.0, "miss": 0.0, "bypass": 0.0}
    for line in text.splitlines():
        if line.startswith("keyshop_search_cache_requests_total{"):
            labels, _, value = line.rpartition(" ")
            for result in counts:
                if f'result="{result}"' in labels:
                    counts[result] += float(value)
    return counts


def hit_rate(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    delta = {k: after[k] - before[k] for k in after}
    lookups = sum(delta.values())
    return {**{k: int(v) for k, v in delta.items()},
            "hit_rate": round(delta["hit"] / lookups, 3) if lookups else None}  # fmt: skip


def service_time(requests: int, seed: int = 99) -> dict[str, Any]:
    """The query mix through catalogue.search_products, one at a time, in this process:
    each search with the search cache emptied first (what a search costs), then the same
    search again (what a cache hit costs)."""
    from core.db import session_scope
    from core.services.catalogue import search_products
    from core.services.catalogue.search_cache import CACHE

    rng = random.Random(seed)
    names = {"q": "query", "min_price": "min_price_minor", "max_price": "max_price_minor"}
    timings: list[tuple[str, float]] = []
    cached: list[tuple[str, float]] = []
    for n in range(requests + 20):
        kind, params = query_mix(rng)
        kwargs = {
            names.get(k, k): (v == "true" if k == "in_stock" else v) for k, v in params.items()
        }
        for into in (timings, cached):
            if into is timings:
                CACHE.reset()
            t0 = time.perf_counter()
            with session_scope(write=False) as session:
                search_products(session=session, **kwargs)
            if n >= 20:  # after the connections and prepared statements are warm
                into.append((kind, (time.perf_counter() - t0) * 1000))
    return {**summary(timings), "cache_hit": summary(cached)}


def bench_api() -> Any:
    """The store API as ``keyshop api`` builds it (granian/uvicorn factory)."""
    import tasks
    from core import config
    from web.api.app import create_api

    tasks.configure(config.get_settings())
    return create_api()


def bench_ceiling() -> Any:
    """A bare Starlette route at the API's path returning a constant page of the same
    size: the most the server, the client and this machine can do."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(os.environ[CEILING_BODY_ENV]).read_bytes()

    async def constant(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/store/products", constant)])


def serve(stack: Stack, name: str, factory: str, server: str, workers: int) -> str:
    """Start ``bench.store_api:<factory>`` under granian or uvicorn; returns its URL."""
    assert stack.var_dir is not None
    # every worker's counters in one folder, merged by /api/metrics (the cache hit rate)
    metrics_dir = stack.var_dir / f"metrics-{name}"
    metrics_dir.mkdir(exist_ok=True)
    stack.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    port = free_port()
    target = f"bench.store_api:{factory}"
    if server == "granian":
        args = ["-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(workers), "--no-access-log",
                "--log-level", "warning", target]  # fmt: skip
    else:
        args = ["-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--no-access-log", "--log-level", "warning",
                target]  # fmt: skip
    logfile = open(stack.var_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=stack.var_dir,
        env=stack._child_env(),
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logfile.close()
    stack.procs.append((name, proc))  # Stack.stop ends it with the rest
    url = f"http://127.0.0.1:{port}"
    stack._wait_http(f"{url}/api/store/products", name, timeout=60)
    return url


def stop_server(stack: Stack, name: str) -> None:
    import signal

    for entry in [e for e in stack.procs if e[0] == name]:
        proc = entry[1]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        stack.procs.remove(entry)


def summary(timings: list[tuple[str, float]]) -> dict[str, Any]:
    all_ms = [t for _, t in timings]
    kinds = sorted({k for k, _ in timings})
    return {
        "requests": len(timings),
        "p50_ms": round(pct(all_ms, 0.50), 1),
        "p95_ms": round(pct(all_ms, 0.95), 1),
        "p99_ms": round(pct(all_ms, 0.99), 1),
        "p50_ms_by_kind": {k: round(pct([t for kk, t in timings if kk == k], 0.5), 1) for k in kinds},
        "p95_ms_by_kind": {k: round(pct([t for kk, t in timings if kk == k], 0.95), 1) for k in kinds},
    }  # fmt: skip


def run_load(url: str, args: argparse.Namespace, mix: Any = query_mix) -> dict[str, Any]:
    load_before = loadavg()
    result = asyncio.run(
        drive(url, args.clients, args.warmup, args.seconds, args.think_ms, mix=mix)
    )
    lat = [(kind, t * 1000) for kind, t in result["latencies"]]
    return {
        **summary(lat),
        "throughput_rps": round(len(lat) / args.seconds, 1),
        "errors": len(result["errors"]),
        "first_errors": result["errors"][:3],
        "load_before": load_before,
        "load_after": loadavg(),
    }


def run_open_loop(url: str, args: argparse.Namespace) -> dict[str, Any]:
    load_before = loadavg()
    result = asyncio.run(drive_open(url, args.open_rate, args.warmup, args.seconds))
    lat = [(kind, t * 1000) for kind, t in result["latencies"]]
    return {
        **summary(lat),
        "offered_rps": args.open_rate,
        "throughput_rps": round(len(lat) / args.seconds, 1),
        "errors": len(result["errors"]),
        "first_errors": result["errors"][:3],
        "load_before": load_before,
        "load_after": loadavg(),
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--products", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=4, help="server processes (production: 4)")
    p.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    p.add_argument("--service-requests", type=int, default=400)
    p.add_argument("--no-ceiling", action="store_true", help="skip the bare-route ceiling run")
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    p.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause of each client between requests (0: back to back, closed loop)",
    )
    p.add_argument(
        "--open-rate",
        type=float,
        default=100.0,
        help="the open-loop phase: requests per second offered (0: skip it)",
    )
    p.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    p.add_argument("--keep-database", action="store_true")
    args = p.parse_args()

    quiet = {} if args.no_wait else wait_for_quiet_machine(log=log)
    with Stack(workers=0, server_url=args.server_url, database=BENCH_DB,
               keep_database=args.keep_database) as stack:  # fmt: skip
        stop_server(stack, "api")  # Stack's single-process `keyshop api`; ours is below
        log(f"loading {args.products} products")
        data = load_catalogue(stack, args.products)
        data.update(settle_catalogue(stack))
        log(f"loaded {data}; service time over {args.service_requests} searches")
        service = service_time(args.service_requests)
        log(f"service time {service}")
        api_url = serve(stack, "store-api", "bench_api", args.server, args.workers)
        ceiling: dict[str, Any] = {}
        if not args.no_ceiling:
            assert stack.var_dir is not None
            body = httpx.get(f"{api_url}/api/store/products", params={"sort": "newest"})
            body_file = stack.var_dir / "ceiling-body.json"
            body_file.write_bytes(body.content)
            stack.env[CEILING_BODY_ENV] = str(body_file)
            ceiling_url = serve(stack, "ceiling", "bench_ceiling", args.server, args.workers)
            log(f"ceiling: {args.clients} clients on a constant route for "
                f"{args.warmup}+{args.seconds} s")  # fmt: skip
            ceiling = run_load(ceiling_url, args)
            ceiling["body_bytes"] = len(body.content)
            stop_server(stack, "ceiling")
            log(f"ceiling {ceiling}")
        cached: dict[str, Any] = {}
        if not args.no_ceiling:
            # the API answering the ceiling's own page from its search cache every time:
            # what the route costs without searching (HTTP, validation, rate limit, the
            # cache's read of a page of products)
            log(f"API, one cached page: {args.clients} clients for {args.warmup}+{args.seconds} s")
            counted = cache_counts(api_url)
            cached = run_load(api_url, args, mix=cached_page)
            cached["search_cache"] = hit_rate(counted, cache_counts(api_url))
            log(f"cached page {cached}")
        log(f"API: {args.clients} clients for {args.warmup}+{args.seconds} s")
        counted = cache_counts(api_url)
        api = run_load(api_url, args)
        api["search_cache"] = hit_rate(counted, counted := cache_counts(api_url))
        open_loop: dict[str, Any] = {}
        if args.open_rate > 0:
            log(f"API, open loop: {args.open_rate:g} requests/s for {args.warmup}+{args.seconds} s")
            open_loop = run_open_loop(api_url, args)
            open_loop["search_cache"] = hit_rate(counted, cache_counts(api_url))
            log(f"open loop {open_loop}")
    ratio = round(api["throughput_rps"] / ceiling["throughput_rps"], 2) if ceiling else None
    print(json.dumps({
        "bench": "store_api_search",
        "catalogue": data,
        "clients": args.clients,
        "think_ms": args.think_ms,
        "seconds": args.seconds,
        "server": f"{args.server} x{args.workers}",
        "api": api,
        "ceiling": ceiling,
        "api_to_ceiling_throughput": ratio,
        "api_cached_page": cached,
        "api_cached_page_to_ceiling_throughput": (
            round(cached["throughput_rps"] / ceiling["throughput_rps"], 2)
            if cached and ceiling else None
        ),
        "search_cache_hit_rate": api["search_cache"]["hit_rate"],
        "open_loop": open_loop,
        "service_time": service,
        "goal": f"api_to_ceiling_throughput >= {GOAL_RATIO:g} (same run) and open-loop p95 <= "
                f"{GOAL_OPEN_P95_MS:g} ms at {args.open_rate:g} requests/s offered",
        "goal_ratio_met": ratio is not None and ratio >= GOAL_RATIO,
        "goal_open_loop_met": bool(open_loop) and open_loop["p95_ms"] <= GOAL_OPEN_P95_MS
                              and not open_loop["errors"],
        "met": bool(ratio is not None and ratio >= GOAL_RATIO and open_loop
                    and open_loop["p95_ms"] <= GOAL_OPEN_P95_MS and not open_loop["errors"]
                    and not api["errors"]),
        **({"quiet": quiet} if quiet else {}),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
