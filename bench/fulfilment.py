"""Benchmark: fulfilment through the production topology (bench/_stack.py) on loopback.

    .venv/bin/python bench/fulfilment.py --scenario all
    .venv/bin/python bench/fulfilment.py --scenario throughput --layouts 2x8,4x4 --seconds 60
    .venv/bin/python bench/fulfilment.py --scenario webhook_latency --workers 2x4
    .venv/bin/python bench/fulfilment.py --scenario provider_latency
    .venv/bin/python bench/fulfilment.py --scenario flash_sale

Every scenario builds a fresh stack — PostgreSQL database ``keyshop_bench_fulfil``, a
Redis queue of its own, the provider simulators, the API and W worker processes of T
threads (``--workers WxT``) — and prints ONE JSON line:

* ``throughput``: paid orders (1 line, quantity 1, stock for all) enqueued as
  ``fulfil_order`` tasks before the workers start; orders reaching ``fulfilled`` per
  second over ``--seconds`` after ``--warmup`` (the database is polled every second).
  Each layout of ``--layouts`` runs on a fresh stack; the best is reported with the rest.
  Afterwards: no key on two lines, delivered keys == fulfilled orders. Then, unless
  ``--no-ceiling``, ``sql_ceiling`` on the same layouts: the JSON carries
  ``ratio_to_ceiling`` (best throughput / best ceiling). Goal (issue #20) ≥ 0.6.
* ``webhook_latency``: orders ``pending_payment``; an open-loop client posts one signed
  ``checkout.session.completed`` per order to ``POST /api/webhooks/stripe`` at
  ``--rate`` (50/s) for ``--duration`` (30 s); latency = webhook sent → order
  ``fulfilled`` with its key delivered (polled every 10 ms). Goal p99 ≤ 150 ms at 50/s,
  ≤ 250 ms at 100/s (``--rate 100``).
* ``provider_latency``: no stock, offers at both providers, simulator latency 200 ms;
  paid orders enqueued at 10/s for 20 s; latency = enqueue → fulfilled. Goal p99 ≤ 700 ms.
* ``sql_ceiling``: the reference for ``throughput``: the SQL statements one order from
  stock costs (the fast path's transaction with its gift-card lookup and mail-outbox row,
  and a fiftieth of an e-mail batch: take, read, record, as the code issues them) replayed with bare psycopg by W processes x T threads — no ORM, no queue,
  no e-mail building, no API — against the same kind of database. Whatever this reaches
  on a machine, the whole stack cannot exceed it there.
* ``flash_sale``: two sales at once. (1) Checkouts through the store API
  (``--flash-checkouts``, 2,000, from ``--flash-checkout-threads``, 32) for a product with
  ``--flash-checkout-stock`` (500) keys and no provider offer: each answer is counted as
  accepted (201), refused (422, nothing left to reserve) or an error (anything else);
  every accepted order is paid with a signed Stripe webhook. (2) 10,000 paid orders for
  another product with 5,000 keys in stock, all enqueued at once, providers with ample
  stock. Time until no order is ``paid`` or ``pending_payment``; checks accepted
  checkouts <= keys, no checkout error, 0 paid orders left without keys, 5,000 keys
  from stock + 5,000 from providers, no key twice, simulator orders == provider
  purchases.

Before each measurement the 1-minute load average must be ≤ ``--max-load`` (waits in
steps of ``--wait-step`` seconds up to ``--max-wait``); the JSON records the load at
start and end. ``synchronous_commit`` is ``off`` on the bench database by default (as in
bench/claims.py: measure the code, not this machine's fsync); ``--synchronous-commit
server`` keeps the server's setting. Every scenario has a hard deadline, and
``--time-limit`` bounds the whole run (SIGALRM → teardown).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._stack import Stack, loadavg, wait_for_quiet_machine  # noqa: E402

#: Issue #20's goals: throughput as a ratio to the bare SQL in the same run; webhook
#: latency p99 <= 150 ms at 50 orders/s offered, <= 250 ms at 100/s.
THROUGHPUT_RATIO_GOAL = 0.6


def webhook_p99_goal_ms(rate: float) -> float:
    return 150.0 if rate <= 50 else 250.0


GOALS = {
    "throughput": (
        f"ratio_to_ceiling >= {THROUGHPUT_RATIO_GOAL} (orders_per_s / sql_ceiling's, same run)",
        lambda r: (
            r.get("ratio_to_ceiling") is not None and r["ratio_to_ceiling"] >= THROUGHPUT_RATIO_GOAL
        ),
    ),
    "webhook_latency": (
        "p99_ms <= 150 at 50 orders/s offered, <= 250 at 100/s",
        lambda r: r["p99_ms"] is not None and r["p99_ms"] <= webhook_p99_goal_ms(r["rate_per_s"]),
    ),
    "provider_latency": ("p99_ms <= 700", lambda r: r["p99_ms"] is not None and r["p99_ms"] <= 700),
    "sql_ceiling": ("orders_per_s >= 500", lambda r: r["orders_per_s"] >= 500),
    # a reference, not a goal of its own: what the queue alone hands out
    "queue_ceiling": ("a reference for throughput", lambda r: r["tasks_per_s"] > 0),
    "flash_sale": (
        "checkouts accepted <= keys, no checkout error, 0 paid orders left without keys; "
        "every order fulfilled; 5000 keys from stock + 5000 from providers; no key twice; "
        "simulator orders == provider purchases",
        lambda r: (
            r["checkouts_accepted"] <= r["checkout_stock"]
            and r["checkout_errors"] == 0
            and r["paid_orders_left_without_keys"] == 0
            and r["fulfilled"] == r["orders"] + r["checkouts_accepted"]
            and r["from_stock"] == r["stock"]
            and r["from_providers"] == r["orders"] - r["stock"]
            and r["duplicate_keys"] == 0
            and r["simulator_orders"] == r["provider_purchases"]
        ),
    ),
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def layout(text: str) -> tuple[int, int]:
    w, _, t = text.lower().partition("x")
    return int(w), int(t)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))  # nearest rank
    return s[k]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def count_status(conn: Any) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())


def verify_keys(conn: Any) -> dict[str, Any]:
    """Invariant 1 and the books: no key (id or fingerprint) on two lines, no line with
    more delivered keys than its quantity, delivered keys == units of fulfilled orders."""
    q = conn.execute
    dup_fp = q(
        "SELECT count(*) FROM (SELECT fingerprint FROM keys GROUP BY fingerprint HAVING count(*) > 1) d"
    ).fetchone()[0]
    over = q(
        "SELECT count(*) FROM (SELECT l.id FROM order_lines l JOIN keys k ON k.order_line_id = l.id "
        "WHERE k.status = 'delivered' GROUP BY l.id, l.quantity HAVING count(*) > l.quantity) x"
    ).fetchone()[0]
    delivered_fulfilled = q(
        "SELECT count(*) FROM keys k JOIN order_lines l ON l.id = k.order_line_id JOIN orders o ON o.id = l.order_id "
        "WHERE k.status = 'delivered' AND o.status = 'fulfilled'"
    ).fetchone()[0]
    units_fulfilled = q(
        "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.status = 'fulfilled'"
    ).fetchone()[0]
    delivered_elsewhere = q(
        "SELECT count(*) FROM keys k JOIN order_lines l ON l.id = k.order_line_id JOIN orders o ON o.id = l.order_id "
        "WHERE k.status = 'delivered' AND o.status <> 'fulfilled'"
    ).fetchone()[0]
    return {
        "duplicate_keys": int(dup_fp) + int(over),
        "delivered_keys": int(delivered_fulfilled),
        "units_fulfilled": int(units_fulfilled),
        "delivered_on_unfulfilled_orders": int(delivered_elsewhere),
        "books_balance": int(delivered_fulfilled) == int(units_fulfilled)
        and int(dup_fp) + int(over) == 0,
    }


class PySpy:
    """Optional: ``py-spy record`` on every worker during a window (raw collapsed stacks),
    summarised as the functions with the most samples (own and inclusive)."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []
        exe = Path(sys.executable).parent / "py-spy"
        self.exe = str(exe) if exe.exists() else shutil.which("py-spy")

    def start(self, stack: Stack, seconds: float, tag: str) -> None:
        if not self.out_dir or not self.exe:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for n, proc in enumerate(stack.worker_procs):
            path = self.out_dir / f"{tag}-worker{n}.txt"
            self.files.append(path)
            self.procs.append(
                subprocess.Popen(
                    [
                        self.exe,
                        "record",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--nonblocking",
                        "-d",
                        str(int(seconds)),
                        "-p",
                        str(proc.pid),
                        "-o",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def finish(self, top: int = 12) -> dict[str, Any] | None:
        if not self.procs:
            return None
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        own: dict[str, int] = {}
        incl: dict[str, int] = {}
        total = 0
        for path in self.files:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                stack_text, _, count_text = line.rpartition(" ")
                if not count_text.isdigit():
                    continue
                count = int(count_text)
                frames = stack_text.split(";")
                # idle worker threads wait in Redis BRPOP / the consumer loop: keep them, they say something too
                total += count
                leaf = frames[-1]
                own[leaf] = own.get(leaf, 0) + count
                for f in set(frames):
                    incl[f] = incl.get(f, 0) + count

        def pick(d: dict[str, int]) -> list[list[Any]]:
            return [
                [k[:160], round(100 * v / total, 1)]
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]
            ]

        return {
            "samples": total,
            "files": [str(f) for f in self.files],
            "top_own_pct": pick(own),
            "top_inclusive_pct": pick(incl),
        }


def base_report(
    scenario: str, stack: Stack, quiet: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "bench": "fulfilment",
        "scenario": scenario,
        "workers": f"{stack.workers} processes x {stack.threads} threads",
        "layout": stack.layout,
        "synchronous_commit": args.synchronous_commit,
        "load_at_start": quiet["load_at_start"],
        "loadavg_at_start": loadavg(),
        "waited_for_quiet_s": quiet["waited_s"],
        "machine_quiet_at_start": quiet["quiet"],
    }


def finish_report(report: dict[str, Any], scenario: str) -> dict[str, Any]:
    goal, check = GOALS[scenario]
    report["loadavg_at_end"] = loadavg()
    report["goal"] = goal
    try:
        report["goal_met"] = bool(check(report))
    except (KeyError, TypeError):
        report["goal_met"] = False
    return report


def quiet_machine(args: argparse.Namespace) -> dict[str, Any]:
    return wait_for_quiet_machine(args.max_load, args.max_wait, args.wait_step, log)


def make_stack(args: argparse.Namespace, w: int, t: int, **kw: Any) -> Stack:
    return Stack(
        workers=w,
        threads=t,
        synchronous_commit=args.synchronous_commit,
        log_level=args.log_level,
        **kw,
    )


# -- (a) throughput ---------------------------------------------------------------------------


def workers_cpu_seconds(stack: Stack) -> float:
    """User + system CPU seconds used so far by the worker processes (from /proc)."""
    return cpu_seconds(stack.worker_procs)


def api_cpu_seconds(stack: Stack) -> float:
    """The same for the API process (the webhooks' receiving end)."""
    return cpu_seconds([proc for name, proc in stack.procs if name == "api"])


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def throughput_once(args: argparse.Namespace, w: int, t: int) -> dict[str, Any]:
    n = args.orders or int(650 * (args.seconds + args.warmup + 5))
    deadline = time.monotonic() + args.seconds + args.warmup + 240
    with make_stack(args, w, t) as stack:
        log(f"throughput {stack.layout}: preparing {n} paid orders and keys")
        product = stack.create_product()
        stack.add_stock(product, n + 100)
        ids = stack.create_paid_orders(product, n)
        stack.enqueue_fulfilment(ids)
        with stack.connect() as conn:
            conn.execute("VACUUM ANALYZE")
        quiet = quiet_machine(args)
        report = base_report("throughput", stack, quiet, args)
        spy = PySpy(args.py_spy)
        stack.start_workers()
        started = time.monotonic()
        series: list[int] = []
        with stack.connect() as conn:

            def fulfilled() -> int:
                return int(
                    conn.execute(
                        "SELECT count(*) FROM orders WHERE status = 'fulfilled'"
                    ).fetchone()[0]
                )

            time.sleep(args.warmup)
            cpu0 = workers_cpu_seconds(stack)
            c0, t0 = fulfilled(), time.monotonic()
            spy.start(stack, min(args.seconds, 30), f"throughput-{stack.layout}")
            last, exhausted = c0, False
            next_tick = t0 + 1
            while time.monotonic() - t0 < args.seconds and time.monotonic() < deadline:
                time.sleep(max(0.0, next_tick - time.monotonic()))
                next_tick += 1
                now_count = fulfilled()
                series.append(now_count - last)
                last = now_count
                if now_count >= n:
                    exhausted = True
                    break
            c1, t1 = fulfilled(), time.monotonic()
            cpu1 = workers_cpu_seconds(stack)
            # the e-mails go in batches behind the fulfilment: how far they kept up
            mails_sent, mails_owed = conn.execute(
                "SELECT (SELECT count(*) FROM order_events WHERE reason = "
                "'e-mail sent: delivered'), (SELECT count(*) FROM mail_outbox)"
            ).fetchone()
            stack.stop_workers()
            counts = count_status(conn)
            checks = verify_keys(conn)
        report.update(
            {
                "orders_prepared": n,
                "warmup_s": args.warmup,
                "window_s": round(t1 - t0, 2),
                "fulfilled_in_window": c1 - c0,
                "orders_per_s": round((c1 - c0) / (t1 - t0), 1) if t1 > t0 else 0.0,
                # CPU the worker processes spent per order fulfilled in the window (their
                # e-mail batches included): with the database's share, what bounds the
                # rate on this machine's cores
                "worker_cpu_ms_per_order": (
                    round(1000 * (cpu1 - cpu0) / (c1 - c0), 3) if c1 > c0 else None
                ),
                "per_second_min": min(series) if series else None,
                "per_second_max": max(series) if series else None,
                "backlog_exhausted": exhausted,
                "delivery_emails_sent_at_window_end": int(mails_sent),
                "delivery_emails_owed_at_window_end": int(mails_owed),
                "seconds_since_workers_started": round(time.monotonic() - started, 1),
                "status_counts": counts,
                **checks,
            }
        )
        profile = spy.finish()
        if profile:
            report["py_spy"] = profile
        return finish_report(report, "throughput")


def ratio(value: float, limit: float) -> float | None:
    return round(value / limit, 2) if limit else None


def scenario_throughput(args: argparse.Namespace) -> dict[str, Any]:
    runs = [throughput_once(args, *layout(x)) for x in args.layouts.split(",")]
    best = max(runs, key=lambda r: r["orders_per_s"])
    report = dict(best)
    report["layouts_tried"] = {
        r["layout"]: {
            "orders_per_s": r["orders_per_s"],
            "load_at_start": r["load_at_start"],
            "loadavg_at_end": r["loadavg_at_end"],
            "books_balance": r["books_balance"],
        }
        for r in runs
    }
    report["books_balance"] = all(r["books_balance"] for r in runs)
    if not args.no_ceiling:  # the goal is a ratio to the bare SQL, measured in this run
        ceiling = scenario_sql_ceiling(args)
        report["sql_ceiling_orders_per_s"] = ceiling["orders_per_s"]
        report["sql_ceiling_layouts"] = ceiling["layouts_tried"]
        report["sql_ceiling_load_at_start"] = ceiling["load_at_start"]
        report["ratio_to_ceiling"] = ratio(report["orders_per_s"], ceiling["orders_per_s"])
        # the queue alone, same layouts, same run: a second limit under the first
        queue = scenario_queue_ceiling(args)
        report["queue_ceiling_tasks_per_s"] = queue["tasks_per_s"]
        report["queue_ceiling_layouts"] = queue["layouts_tried"]
        report["queue_ceiling_ratio_to_sql_ceiling"] = ratio(
            queue["tasks_per_s"], ceiling["orders_per_s"]
        )
    return finish_report(report, "throughput")


# -- latency helpers -------------------------------------------------------------------------


DONE_SQL = (
    "SELECT o.id, o.status FROM orders o WHERE o.id = ANY(%s) AND (o.status = 'needs_attention' OR "
    "(o.status = 'fulfilled' AND EXISTS (SELECT 1 FROM order_lines l JOIN keys k ON k.order_line_id = l.id "
    "WHERE l.order_id = o.id AND k.status = 'delivered')))"
)


class Watcher(threading.Thread):
    """Polls the orders table every ``interval`` s (one query for every outstanding order)
    and records when each was first seen fulfilled (with its key) or needs_attention."""

    def __init__(self, stack: Stack, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.interval = interval
        self.sent: dict[int, float] = {}
        self.done: dict[int, tuple[float, str]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.polls = 0

    def sent_at(self, order_id: int, when: float) -> None:
        with self.lock:
            self.sent[order_id] = when

    def outstanding(self) -> int:
        with self.lock:
            return len(self.sent) - len(self.done)

    def run(self) -> None:
        with self.stack.connect() as conn:
            conn.prepare_threshold = 0
            while not self.stopping.is_set():
                with self.lock:
                    waiting = [i for i in self.sent if i not in self.done]
                if waiting:
                    rows = conn.execute(DONE_SQL, (waiting,)).fetchall()
                    now = time.perf_counter()
                    self.polls += 1
                    with self.lock:
                        for oid, status in rows:
                            self.done.setdefault(oid, (now, status))
                time.sleep(self.interval)

    def latencies(self, ids: list[int]) -> tuple[list[float], dict[str, int]]:
        lat, outcomes = [], {"fulfilled": 0, "needs_attention": 0, "unfinished": 0}
        for i in ids:
            d = self.done.get(i)
            if d is None or i not in self.sent:
                outcomes["unfinished"] += 1
                continue
            outcomes[d[1]] += 1
            if d[1] == "fulfilled":
                lat.append(d[0] - self.sent[i])
        return lat, outcomes


def latency_fields(lat: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": ms(percentile(lat, 50)),
        "p95_ms": ms(percentile(lat, 95)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(max(lat)) if lat else None,
        "mean_ms": ms(statistics.fmean(lat)) if lat else None,
    }


def paced(n: int, rate: float, action: Callable[[int], None], deadline: float) -> float:
    """Call ``action(i)`` for i in 0..n-1 at ``rate`` per second on schedule (open loop).
    Returns the worst lateness of the schedule in seconds."""
    start = time.perf_counter() + 0.05
    worst = 0.0
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            worst = max(worst, -delay)
        if time.monotonic() > deadline:
            break
        action(i)
    return worst


# -- (b) webhook latency -------------------------------------------------------------------------


def scenario_webhook_latency(args: argparse.Namespace) -> dict[str, Any]:
    w, t = layout(args.workers)
    n = int(args.rate * args.duration)
    warm_n = 20
    with make_stack(args, w, t) as stack:
        product = stack.create_product()
        stack.add_stock(product, n + warm_n + 50)
        orders = stack.create_pending_orders(product, n + warm_n)
        events = [stack.payment_event(o) for o in orders]  # signed now: well within the tolerance
        ids = [o.id for o in orders]
        stack.start_workers()
        watcher = Watcher(stack, interval=args.poll_ms / 1000)
        watcher.start()
        http_ms: list[float] = []
        errors: list[str] = []
        pool = ThreadPoolExecutor(max_workers=16)

        def send(i: int) -> None:
            body, headers = events[i]
            t0 = time.perf_counter()
            watcher.sent_at(ids[i], t0)
            try:
                r = stack.post_webhook(body, headers)
                if r.status_code != 200 or r.json().get("duplicate"):
                    errors.append(f"{r.status_code} {r.text[:100]}")
            except Exception as exc:
                errors.append(repr(exc)[:100])
            http_ms.append(time.perf_counter() - t0)

        # warm-up (not measured): connections, pools, the API's first requests
        for i in range(warm_n):
            pool.submit(send, i)
            time.sleep(0.1)
        wait_until(lambda: watcher.outstanding() == 0, 20)
        http_ms.clear()
        quiet = quiet_machine(args)
        report = base_report("webhook_latency", stack, quiet, args)
        spy = PySpy(args.py_spy)
        spy.start(stack, min(args.duration, 30), "webhook")
        deadline = time.monotonic() + args.duration + 60
        cpu0 = workers_cpu_seconds(stack), api_cpu_seconds(stack)
        lateness = paced(n, args.rate, lambda i: pool.submit(send, warm_n + i), deadline)
        sent_done = time.monotonic()
        wait_until(
            lambda: len(watcher.sent) == n + warm_n and watcher.outstanding() == 0,
            max(1.0, deadline - time.monotonic()),
        )
        cpu1 = workers_cpu_seconds(stack), api_cpu_seconds(stack)
        watcher.stopping.set()
        watcher.join(5)
        pool.shutdown(wait=True)
        lat, outcomes = watcher.latencies(ids[warm_n:])
        stack.stop_workers()
        with stack.connect() as conn:
            checks = verify_keys(conn)
            counts = count_status(conn)
        report.update(
            {
                "orders": n,
                "rate_per_s": args.rate,
                "duration_s": args.duration,
                "sender_worst_lateness_ms": ms(lateness),
                "drain_after_last_send_s": round(time.monotonic() - sent_done, 2),
                "poll_interval_ms": args.poll_ms,
                **latency_fields(lat),
                "http_p50_ms": ms(percentile(http_ms, 50)),
                "http_p99_ms": ms(percentile(http_ms, 99)),
                "http_errors": len(errors),
                # CPU per order from the first send until the last order was fulfilled:
                # the workers (webhook, fulfilment, e-mail) and the API (receiving it)
                "worker_cpu_ms_per_order": round(1000 * (cpu1[0] - cpu0[0]) / n, 3),
                "api_cpu_ms_per_order": round(1000 * (cpu1[1] - cpu0[1]) / n, 3),
                "first_error": errors[0] if errors else None,
                "outcomes": outcomes,
                "status_counts": counts,
                **checks,
            }
        )
        profile = spy.finish()
        if profile:
            report["py_spy"] = profile
        return finish_report(report, "webhook_latency")


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- (c) provider latency ------------------------------------------------------------------------


def scenario_provider_latency(args: argparse.Namespace) -> dict[str, Any]:
    w, t = layout(args.workers)
    n = int(args.provider_rate * args.provider_duration)
    latency = args.provider_latency_ms
    with make_stack(args, w, t, simulator_knobs=[f"latency_ms={latency}"]) as stack:
        product = stack.create_product()
        for provider in ("codeswholesale", "kinguin"):
            stack.add_provider_offer(provider, product, price="5.00", stock=100_000)
            stack.sim_control(provider, balance="100000000")
        ids = stack.create_paid_orders(product, n)
        stack.start_workers()
        quiet = quiet_machine(args)
        report = base_report("provider_latency", stack, quiet, args)
        watcher = Watcher(stack, interval=args.poll_ms / 1000)
        watcher.start()
        deadline = time.monotonic() + args.provider_duration + 90

        def enqueue(i: int) -> None:
            watcher.sent_at(ids[i], time.perf_counter())
            stack.enqueue_fulfilment([ids[i]])

        lateness = paced(n, args.provider_rate, enqueue, deadline)
        wait_until(lambda: watcher.outstanding() == 0, max(1.0, deadline - time.monotonic()))
        watcher.stopping.set()
        watcher.join(5)
        lat, outcomes = watcher.latencies(ids)
        stack.stop_workers()
        with stack.connect() as conn:
            checks = verify_keys(conn)
            counts = count_status(conn)
            purchases = dict(
                conn.execute(
                    "SELECT provider || ':' || status, count(*) FROM provider_purchases GROUP BY 1"
                ).fetchall()
            )
        sim = {p: len(stack.sim_orders(p)) for p in ("codeswholesale", "kinguin")}
        sim_requests = {
            p: stack.sim_control(p).get("stats", {}).get("requests")
            for p in ("codeswholesale", "kinguin")
        }
        first = sorted(lat)[-3:] if lat else []
        report.update(
            {
                "orders": n,
                "rate_per_s": args.provider_rate,
                "simulator_latency_ms": latency,
                "enqueue_worst_lateness_ms": ms(lateness),
                **latency_fields(lat),
                "slowest_3_ms": [ms(x) for x in first],
                # cold start (first provider call of each worker process: client, token, pools)
                "first_10_in_enqueue_order_ms": [
                    ms(watcher.done[i][0] - watcher.sent[i]) if i in watcher.done else None
                    for i in ids[:10]
                ],
                "p99_ms_after_first_2s": ms(
                    percentile(watcher.latencies(ids[int(2 * args.provider_rate) :])[0], 99)
                ),
                "outcomes": outcomes,
                "status_counts": counts,
                "provider_purchases": purchases,
                "simulator_orders": sim,
                "simulator_requests": sim_requests,
                **checks,
            }
        )
        return finish_report(report, "provider_latency")


# -- (d) flash sale --------------------------------------------------------------------------------


def flash_checkouts(stack: Stack, slug: str, n: int, threads: int) -> dict[str, Any]:
    """``n`` checkouts of one key through ``POST /api/store/checkout`` from ``threads``
    threads; every accepted order is then paid with a signed webhook. Returns the counts
    (accepted 201, refused 422, errors anything else, with up to three samples)."""
    from core.db import session_scope
    from core.services.orders import get_order_by_number

    todo = iter(range(n))
    lock = threading.Lock()
    accepted: list[str] = []
    refused = 0
    errors: list[str] = []

    def buyer() -> None:
        nonlocal refused
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            body = {"email": f"flash{i}@example.com", "lines": [{"slug": slug, "quantity": 1}]}
            try:
                # one customer each, from an address of the benchmarking range (RFC 2544,
                # a header value only: nothing is ever sent there)
                answer = stack.post_checkout(body, client_ip=f"198.18.{i // 250}.{i % 250 + 1}")
            except Exception as exc:  # counted as an error
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                if answer.status_code == 201:
                    accepted.append(answer.json()["number"])
                elif answer.status_code == 422:
                    refused += 1
                else:
                    errors.append(f"{answer.status_code} {answer.text[:200]}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(buyer)
    seconds = time.monotonic() - t0
    with session_scope(write=False) as session:
        orders = [get_order_by_number(session=session, number=num) for num in accepted]
    for order in orders:
        body, headers = stack.payment_event(order)
        stack.post_webhook(body, headers)
    return {
        "checkouts": n,
        "checkouts_accepted": len(accepted),
        "checkouts_refused": refused,
        "checkout_errors": len(errors),
        "checkout_error_samples": errors[:3],
        "checkouts_s": round(seconds, 2),
    }


_LEFT_WITHOUT_KEYS = """
SELECT count(*) FROM orders o
 WHERE o.paid_at IS NOT NULL AND o.status NOT IN ('refunded', 'cancelled')
   AND (SELECT count(*) FROM keys k JOIN order_lines l ON k.order_line_id = l.id
         WHERE l.order_id = o.id AND k.status = 'delivered')
       < (SELECT coalesce(sum(l.quantity), 0) FROM order_lines l WHERE l.order_id = o.id)
"""


def scenario_flash_sale(args: argparse.Namespace) -> dict[str, Any]:
    w, t = layout(args.workers)
    n, stock = args.flash_orders, args.flash_stock
    with make_stack(args, w, t) as stack:
        sale = stack.create_product(title="Flash Checkout Game")
        stack.add_stock(sale, args.flash_checkout_stock)
        with stack.connect() as conn:
            row = conn.execute("SELECT slug FROM products WHERE id = %s", (sale,)).fetchone()
            sale_slug = row[0]
        product = stack.create_product()
        stack.add_stock(product, stock)
        for provider in ("codeswholesale", "kinguin"):
            stack.add_provider_offer(provider, product, price="5.00", stock=10 * n)
            stack.sim_control(provider, balance="100000000")
        ids = stack.create_paid_orders(product, n)
        with stack.connect() as conn:
            conn.execute("VACUUM ANALYZE")
        stack.start_workers()
        quiet = quiet_machine(args)
        report = base_report("flash_sale", stack, quiet, args)
        spy = PySpy(args.py_spy)
        t0 = time.monotonic()
        checkouts = flash_checkouts(
            stack, sale_slug, args.flash_checkouts, args.flash_checkout_threads
        )
        stack.enqueue_fulfilment(ids)
        enqueued_s = time.monotonic() - t0
        spy.start(stack, 30, "flash")
        deadline = t0 + args.flash_timeout
        with stack.connect() as conn:
            stock_done_s = None
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('paid', 'pending_payment')), "
                    "(SELECT count(*) FROM keys WHERE status = 'available' AND product_id = %s) "
                    "FROM orders",
                    (product,),
                ).fetchone()
                if stock_done_s is None and row[1] == 0:
                    stock_done_s = time.monotonic() - t0
                if row[0] == 0:
                    break
                time.sleep(0.25)
            seconds = time.monotonic() - t0
            stack.stop_workers()
            counts = count_status(conn)
            checks = verify_keys(conn)
            q = conn.execute
            left_without_keys = q(_LEFT_WITHOUT_KEYS).fetchone()[0]
            from_stock = q(
                "SELECT count(*) FROM keys WHERE status = 'delivered' "
                "AND provider_purchase_id IS NULL AND product_id = %s",
                (product,),
            ).fetchone()[0]
            from_prov = q(
                "SELECT count(*) FROM keys WHERE status = 'delivered' AND provider_purchase_id IS NOT NULL"
            ).fetchone()[0]
            purchases = dict(
                q(
                    "SELECT provider || ':' || status, count(*) FROM provider_purchases GROUP BY 1"
                ).fetchall()
            )
            n_purchases = q("SELECT count(*) FROM provider_purchases").fetchone()[0]
            keys_in_stock_left = q(
                "SELECT count(*) FROM keys WHERE status = 'available' AND product_id = %s",
                (product,),
            ).fetchone()[0]
        sim = {p: len(stack.sim_orders(p)) for p in ("codeswholesale", "kinguin")}
        fulfilled = counts.get("fulfilled", 0)
        report.update(
            {
                **checkouts,
                "checkout_stock": args.flash_checkout_stock,
                "paid_orders_left_without_keys": int(left_without_keys),
                "orders": n,
                "stock": stock,
                "enqueue_s": round(enqueued_s, 2),
                "seconds": round(seconds, 2),
                "orders_per_s": round(fulfilled / seconds, 1) if seconds else None,
                "stock_exhausted_after_s": round(stock_done_s, 2)
                if stock_done_s is not None
                else None,
                "fulfilled": fulfilled,
                "needs_attention": counts.get("needs_attention", 0),
                "still_paid": counts.get("paid", 0),
                "from_stock": int(from_stock),
                "from_providers": int(from_prov),
                "stock_left": int(keys_in_stock_left),
                "provider_purchases": int(n_purchases),
                "provider_purchases_by_status": purchases,
                "simulator_orders": sum(sim.values()),
                "simulator_orders_by_provider": sim,
                "timed_out": seconds >= args.flash_timeout,
                **checks,
            }
        )
        profile = spy.finish()
        if profile:
            report["py_spy"] = profile
        return finish_report(report, "flash_sale")


# -- reference: the same SQL, bare ----------------------------------------------------------------

_CEILING_SQL = {
    # the fast path: order locked with its lines and "started" flags, claim, deliver,
    # transition_order's read, update and event
    "read": (
        "SELECT o.id, o.number, o.customer_id, o.email, o.status, o.currency, o.subtotal_minor, "
        "o.total_minor, o.payment_provider, o.payment_reference, o.attention_reason, o.created_at, "
        "o.updated_at, o.paid_at, o.fulfilled_at, o.fulfilment_lease_until, o.fulfilment_attempts, "
        "l.id, l.product_id, l.quantity, (EXISTS (SELECT 1 FROM keys WHERE keys.order_line_id = l.id)) "
        "OR (EXISTS (SELECT 1 FROM provider_purchases p WHERE p.order_line_id = l.id)) FROM orders o "
        "LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.id = %(o)s ORDER BY l.id FOR UPDATE OF o"
    ),
    "claim": (
        "WITH candidates AS MATERIALIZED (SELECT keys.id AS id FROM keys WHERE keys.product_id "
        "BETWEEN %(p)s::INTEGER AND %(p)s::INTEGER AND keys.status = 'available' AND (EXISTS "
        "(SELECT order_lines.id FROM order_lines WHERE order_lines.id = %(l)s::INTEGER AND "
        "order_lines.product_id = %(p)s::INTEGER)) ORDER BY keys.product_id, keys.id LIMIT 1 "
        "FOR UPDATE SKIP LOCKED) UPDATE keys SET status='reserved', order_line_id=%(l)s::INTEGER, "
        "reserved_at=%(now)s FROM candidates WHERE keys.id = candidates.id AND "
        "keys.status = 'available' RETURNING keys.id"
    ),
    "deliver": (
        "UPDATE keys SET status='delivered', delivered_at=%(now)s "
        "WHERE keys.order_line_id IN (%(l)s) AND keys.status = 'reserved'"
    ),
    # a delivery gives a sold gift card its balance (core.services.giftcards): the lookup
    "giftcards": (
        "SELECT g.id, l.id FROM gift_cards g JOIN keys k ON k.id = g.key_id "
        "JOIN order_lines l ON l.id = k.order_line_id WHERE k.order_line_id IN (%(l)s) "
        "AND k.status = 'delivered' AND g.status = 'unsold' ORDER BY g.id"
    ),
    "status": "SELECT number, status, paid_at FROM orders WHERE id = %(o)s",
    "fulfilled": (
        "UPDATE orders SET status='fulfilled', attention_reason=NULL, updated_at=%(now)s, "
        "fulfilled_at=%(now)s WHERE id = %(o)s AND status = 'paid'"
    ),
    "event": (
        "INSERT INTO order_events (order_id, from_status, to_status, reason, actor, data, created_at) "
        "VALUES (%(o)s, %(f)s, %(t)s, %(r)s, %(a)s, '{}', %(now)s) RETURNING id"
    ),
    # the e-mail owed, written in the same transaction (core.services.notifications)
    "outbox": (
        "INSERT INTO mail_outbox (order_id, kind, ref, attempts, due_at) "
        "VALUES (%(o)s, 'delivered', '', 0, %(now)s)"
    ),
    # a batch of e-mails (send_due_order_emails): take, read orders and sent markers,
    # then record every one and remove them from the outbox
    "take": (
        "SELECT id, order_id, kind, ref, attempts FROM mail_outbox WHERE due_at <= %(now)s "
        "ORDER BY due_at, id LIMIT 50 FOR UPDATE SKIP LOCKED"
    ),
    "lease": (
        "UPDATE mail_outbox SET due_at = %(later)s, attempts = attempts + 1 WHERE id = ANY(%(ids)s)"
    ),
    "mail": (
        "SELECT o.id, o.number, o.email, o.status, o.total_minor, o.currency, o.vat_minor, "
        "o.vat_rate_bp, o.country, l.title, l.platform, l.region, l.quantity, l.product_id "
        "FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.id = ANY(%(os)s) "
        "ORDER BY o.id, l.id"
    ),
    "sent": (
        "SELECT order_id, reason FROM order_events WHERE order_id = ANY(%(os)s) "
        "AND reason = ANY(%(ms)s)"
    ),
    "done": "DELETE FROM mail_outbox WHERE id = ANY(%(ids)s)",
}


def _ceiling_process(url: str, work: list[tuple[int, int, int]], threads: int, out: Any) -> None:
    from datetime import UTC, datetime

    import psycopg

    q = _CEILING_SQL

    def run(items: list[tuple[int, int, int]]) -> None:
        done = 0
        with psycopg.connect(url) as conn:
            for o, line, p in items:
                now = datetime.now(UTC)
                with conn.transaction():
                    conn.execute(q["read"], {"o": o}).fetchall()
                    conn.execute(q["claim"], {"p": p, "l": line, "now": now}).fetchall()
                    conn.execute(q["deliver"], {"l": line, "now": now})
                    conn.execute(q["giftcards"], {"l": line}).fetchall()
                    conn.execute(q["status"], {"o": o}).fetchone()
                    conn.execute(q["fulfilled"], {"o": o, "now": now})
                    conn.execute(
                        q["event"],
                        {
                            "o": o,
                            "f": "paid",
                            "t": "fulfilled",
                            "r": "1 keys delivered from stock",
                            "a": "system:fulfilment",
                            "now": now,
                        },
                    )
                    conn.execute(q["outbox"], {"o": o, "now": now})
                done += 1
                if done % 50 == 0:
                    mail_batch(conn)
            while mail_batch(conn) == 50:
                pass

    def mail_batch(conn: Any) -> int:
        from datetime import timedelta

        now = datetime.now(UTC)
        with conn.transaction():
            taken = conn.execute(q["take"], {"now": now}).fetchall()
            if not taken:
                return 0
            ids = [row[0] for row in taken]
            conn.execute(q["lease"], {"ids": ids, "later": now + timedelta(minutes=5)})
        orders = [row[1] for row in taken]
        with conn.transaction():
            conn.execute(q["mail"], {"os": orders}).fetchall()
            conn.execute(q["sent"], {"os": orders, "ms": ["e-mail sent: delivered"]}).fetchall()
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    q["event"].removesuffix(" RETURNING id"),
                    [
                        {
                            "o": order_id,
                            "f": "fulfilled",
                            "t": "fulfilled",
                            "r": "e-mail sent: delivered",
                            "a": "system:mail",
                            "now": now,
                        }
                        for order_id in orders
                    ],
                )
            conn.execute(q["done"], {"ids": ids})
        return len(taken)

    cpu0 = time.process_time()
    pool = [threading.Thread(target=run, args=(work[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(time.process_time() - cpu0)


def ceiling_once(args: argparse.Namespace, w: int, t: int) -> dict[str, Any]:
    import multiprocessing

    n = args.ceiling_orders
    with make_stack(args, w, t) as stack:
        product = stack.create_product()
        stack.add_stock(product, n + 10)
        ids = stack.create_paid_orders(product, n)
        with stack.connect() as conn:
            lines = dict(conn.execute("SELECT order_id, id FROM order_lines").fetchall())
            conn.execute("VACUUM ANALYZE")
        work = [(o, lines[o], product) for o in ids]
        quiet = quiet_machine(args)
        report = base_report("sql_ceiling", stack, quiet, args)
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_ceiling_process, args=(stack.db_url, work[i::w], t, out))
            for i in range(w)
        ]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        cpu = sum(out.get() for _ in procs)
        for p in procs:
            p.join()
        seconds = time.monotonic() - t0
        with stack.connect() as conn:
            checks = verify_keys(conn)
        done = checks["units_fulfilled"]
        report.update(
            {
                "orders": n,
                "seconds": round(seconds, 2),
                "orders_per_s": round(done / seconds, 1),
                "client_cpu_ms_per_order": round(1000 * cpu / n, 3),
                **checks,
            }
        )
        return finish_report(report, "sql_ceiling")


def scenario_sql_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    runs = [ceiling_once(args, *layout(x)) for x in args.layouts.split(",")]
    report = dict(max(runs, key=lambda r: r["orders_per_s"]))
    report["layouts_tried"] = {r["layout"]: r["orders_per_s"] for r in runs}
    return finish_report(report, "sql_ceiling")


def queue_ceiling_once(args: argparse.Namespace, w: int, t: int) -> dict[str, Any]:
    """W consumer processes x T threads of bench/_queue_floor.py draining tasks that do
    nothing, pre-enqueued like ``throughput``'s orders: tasks per second over the same
    window after the same warm-up."""
    import secrets

    from bench._queue_floor import make_huey
    from bench._stack import DEFAULT_REDIS_URL

    name = f"keyshop-bench-noop-{secrets.token_hex(4)}"
    huey, noop = make_huey(DEFAULT_REDIS_URL, name)
    n = args.orders or int(4000 * (args.seconds + args.warmup + 5))
    huey.flush()
    pipe_at = 0
    while pipe_at < n:  # enqueue outside the window, as throughput prepares its orders
        for i in range(pipe_at, min(n, pipe_at + 1000)):
            noop(i)
        pipe_at += 1000
    quiet = quiet_machine(args)
    code = f"import bench._queue_floor as q; q.consume({DEFAULT_REDIS_URL!r}, {name!r}, {t})"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(w)
    ]
    try:
        time.sleep(args.warmup)
        p0, t0 = huey.pending_count(), time.monotonic()
        time.sleep(args.seconds)
        p1, t1 = huey.pending_count(), time.monotonic()
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        huey.flush()
    return {
        "layout": f"{w}x{t}",
        "tasks_prepared": n,
        "backlog_exhausted": p1 == 0,
        "tasks_per_s": round((p0 - p1) / (t1 - t0), 1),
        "load_at_start": quiet.get("load_at_start"),
        "loadavg_at_end": loadavg(),
    }


def scenario_queue_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    runs = [queue_ceiling_once(args, *layout(x)) for x in args.layouts.split(",")]
    best = max(runs, key=lambda r: r["tasks_per_s"])
    report = {
        "bench": "fulfilment",
        "scenario": "queue_ceiling",
        **best,
        "layouts_tried": {r["layout"]: r["tasks_per_s"] for r in runs},
    }
    return finish_report(report, "queue_ceiling")


SCENARIOS = {
    "throughput": scenario_throughput,
    "webhook_latency": scenario_webhook_latency,
    "provider_latency": scenario_provider_latency,
    "flash_sale": scenario_flash_sale,
    "sql_ceiling": scenario_sql_ceiling,
    "queue_ceiling": scenario_queue_ceiling,
}


class TimeLimit(BaseException):
    """--time-limit reached: unwinds through every scenario's teardown."""


def _alarm(signum: int, frame: Any) -> None:
    raise TimeLimit("bench: --time-limit reached")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    p.add_argument(
        "--workers",
        default="2x4",
        help="W processes x T threads for the latency scenarios and flash_sale (default 2x4:"
        " on this 2-core machine 8 threads a process lengthened the tail, bench/NOTES.md)",
    )
    p.add_argument(
        "--layouts", default="2x8,4x4", help="layouts tried by throughput (comma-separated WxT)"
    )
    p.add_argument("--seconds", type=float, default=60.0, help="throughput window")
    p.add_argument("--warmup", type=float, default=5.0, help="throughput warm-up before the window")
    p.add_argument(
        "--orders",
        type=int,
        default=0,
        help="throughput: orders prepared (default: enough for 650/s)",
    )
    p.add_argument("--rate", type=float, default=50.0, help="webhook_latency: webhooks per second")
    p.add_argument(
        "--duration", type=float, default=30.0, help="webhook_latency: seconds of sending"
    )
    p.add_argument(
        "--poll-ms", type=float, default=10.0, help="latency scenarios: polling interval"
    )
    p.add_argument("--provider-rate", type=float, default=10.0)
    p.add_argument("--provider-duration", type=float, default=20.0)
    p.add_argument("--provider-latency-ms", type=float, default=200.0)
    p.add_argument(
        "--ceiling-orders", type=int, default=20_000, help="sql_ceiling: orders replayed"
    )
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="throughput without its sql_ceiling run (then no ratio, and the goal is not met)",
    )
    p.add_argument("--flash-orders", type=int, default=10_000)
    p.add_argument("--flash-stock", type=int, default=5_000)
    p.add_argument("--flash-timeout", type=float, default=600.0)
    p.add_argument("--flash-checkouts", type=int, default=2_000)
    p.add_argument("--flash-checkout-stock", type=int, default=500)
    p.add_argument("--flash-checkout-threads", type=int, default=32)
    p.add_argument("--synchronous-commit", choices=["off", "on", "server"], default="off")
    p.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="KEYSHOP_LOG_LEVEL of the API and workers",
    )
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--max-wait", type=float, default=600.0)
    p.add_argument("--wait-step", type=float, default=60.0)
    p.add_argument(
        "--py-spy",
        metavar="DIR",
        default=None,
        help="record the workers with py-spy into DIR and summarise",
    )
    p.add_argument(
        "--time-limit", type=float, default=3600.0, help="hard limit for the whole run, seconds"
    )
    args = p.parse_args(argv)

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(args.time_limit))
    # "all": throughput runs the SQL ceiling itself (its goal is the ratio to it)
    names = (
        [n for n in SCENARIOS if n not in ("sql_ceiling", "queue_ceiling") or args.no_ceiling]
        if args.scenario == "all"
        else [args.scenario]
    )
    ok = True
    try:
        for name in names:
            try:
                report = SCENARIOS[name](args)
            except Exception as exc:  # one scenario failing must not hide the others
                report = {
                    "bench": "fulfilment",
                    "scenario": name,
                    "error": repr(exc)[:500],
                    "goal_met": False,
                    "loadavg_at_end": loadavg(),
                }
            print(json.dumps(report), flush=True)
            ok = ok and bool(report.get("goal_met"))
    finally:
        signal.alarm(0)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
