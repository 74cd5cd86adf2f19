"""Prometheus metrics: what the processes count, and what the database says at scrape time.

Two kinds, each from its one place:

- **Events** (counters and histograms) are counted where they happen: provider calls in
  :mod:`core.providers.http`, webhooks in :mod:`core.services.webhooks`, order transitions
  in :func:`core.services.orders.transition_order` (paid → fulfilled latency), key claims
  and imports. Transitions are counted only once their transaction commits
  (:func:`after_commit`), so a rolled-back fulfilment is never counted.
- **State** (gauges: orders by status, the oldest paid order still waiting, stock per
  product, provider balances) is read from the database by :class:`ShopCollector` at
  scrape time, so it is right whichever process serves the scrape and costs nothing
  between scrapes. Queue depth and the workers' heartbeat come from the task layer as
  callables (``core`` never imports Huey). Huey's messages carry no enqueue time, so the
  age of waiting work is measured where the work comes from: the oldest paid order not
  yet fulfilled and the oldest stored webhook not yet acted on.

Several processes (web workers, Huey consumers) share one set of counters through
prometheus-client's multiprocess mode: ``keyshop run`` points ``PROMETHEUS_MULTIPROC_DIR``
at ``var/metrics`` (emptied at start) for every process it starts; :func:`exposition`
merges the files. Without it each process exposes its own counters.

Label values are bounded: providers, sources and outcomes are fixed sets; operations are
paths with ids replaced; stock per product is limited to the products on sale (at most
:data:`STOCK_SERIES_MAX`, fewest in stock first).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event, func, select
from sqlmodel import Session, col


def _share_between_hosts() -> None:
    """In multiprocess mode, name each process's files by host and pid: containers that
    share the folder (docker-compose.yml's var volume) each have their own pid 1."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    from prometheus_client import values

    os.makedirs(folder, mode=0o700, exist_ok=True)
    host = socket.gethostname().replace("_", "-")
    values.ValueClass = values.MultiProcessValue(lambda: f"{host}-{os.getpid()}")


_share_between_hosts()  # before the first metric below is made

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STOCK_SERIES_MAX = 500

PROVIDER_REQUESTS = Counter(
    "keyshop_provider_requests_total",
    "Calls to wholesale providers, by provider, operation and outcome "
    "(the HTTP status class, or the transport error).",
    ["provider", "operation", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "keyshop_provider_request_seconds",
    "Latency of calls to wholesale providers.",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0),
)
WEBHOOKS = Counter(
    "keyshop_webhooks_total",
    "Inbound webhooks by source and result: accepted, duplicate, rejected.",
    ["source", "result"],
)
ORDER_TRANSITIONS = Counter(
    "keyshop_order_transitions_total",
    "Committed order status changes, by the status reached.",
    ["status"],
)
PAID_TO_FULFILLED = Histogram(
    "keyshop_order_paid_to_fulfilled_seconds",
    "From payment to the last key delivered, per fulfilled order.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
PROVIDER_BALANCE = Gauge(
    "keyshop_provider_balance_minor",
    "A provider account's balance at the last balance check, in minor units.",
    ["provider", "currency"],
    multiprocess_mode="mostrecent",
)
PROVIDER_HOURS_LEFT = Gauge(
    "keyshop_provider_balance_hours_left",
    "Hours the balance lasts at the last day's spend (absent while nothing was spent).",
    ["provider"],
    multiprocess_mode="mostrecent",
)
KEYS_CLAIMED = Counter("keyshop_keys_claimed_total", "Keys claimed from own stock for orders.")
KEYS_IMPORTED = Counter("keyshop_keys_imported_total", "Keys imported into own stock.")
SEARCH_CACHE = Counter(
    "keyshop_search_cache_requests_total",
    "Store searches by what the search cache did: hit (served from it), miss (searched and "
    "stored), bypass (not usable: the generation could not be read, or the search ran in "
    "a transaction that wrote to the catalogue). Hit rate: hit / (hit + miss + bypass).",
    ["result"],
)

_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F-]{16,}|[A-Z0-9]{2,}-[A-Z0-9-]+)$")


def operation_of(method: str, path: str) -> str:
    """``GET /v2/orders/{id}`` for ``GET /v2/orders/123?x=1``: bounded label values."""
    parts = path.split("?", 1)[0].split("/")
    return f"{method.upper()} " + "/".join(
        "{id}" if _ID_SEGMENT.match(part) else part for part in parts
    )


def observe_provider_call(
    provider: str, method: str, path: str, seconds: float, outcome: str
) -> None:
    operation = operation_of(method, path)
    PROVIDER_REQUESTS.labels(provider, operation, outcome).inc()
    PROVIDER_LATENCY.labels(provider, operation).observe(seconds)


# -- counted when the transaction commits ------------------------------------------------


def after_commit(session: Session, observe: Callable[[], None]) -> None:
    """Run ``observe`` once this session's transaction commits (never on rollback)."""
    session.info.setdefault("keyshop_metrics", []).append(observe)


def _committed(session: Session) -> None:
    for observe in session.info.pop("keyshop_metrics", None) or []:
        observe()


def _rolled_back(session: Session, previous_transaction: Any) -> None:
    # every rollback of the outermost transaction (a savepoint's keeps them)
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop("keyshop_metrics", None)


def install_listeners() -> None:
    """Called where engines are built (core.db), never as an import side effect."""
    if not event.contains(Session, "after_commit", _committed):
        event.listen(Session, "after_commit", _committed)
        event.listen(Session, "after_soft_rollback", _rolled_back)


def order_transition(
    session: Session, *, to_status: str, paid_at: datetime | None, now: datetime
) -> None:
    """Count a transition (and the paid → fulfilled latency) when it commits."""

    def observe() -> None:
        ORDER_TRANSITIONS.labels(to_status).inc()
        if to_status == "fulfilled" and paid_at is not None:
            PAID_TO_FULFILLED.observe(max(0.0, (now - paid_at).total_seconds()))

    after_commit(session, observe)


# -- state, read at scrape time ----------------------------------------------------------


class ShopCollector(Collector):
    """Gauges read from the database (and the queue, through the callables) per scrape."""

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int] | None = None,
        worker_heartbeat: Callable[[], float | None] | None = None,
    ) -> None:
        self.queue_depth = queue_depth
        self.worker_heartbeat = worker_heartbeat

    def collect(self) -> Iterator[Metric]:
        from core.db import session_scope
        from core.models import Key, Order, Product, WebhookEvent
        from core.models.base import utcnow
        from core.models.inventory import KeyStatus

        up = GaugeMetricFamily("keyshop_database_up", "1 if the database answered this scrape.")
        try:
            with session_scope(write=False) as session:
                statuses = session.execute(
                    select(col(Order.status), func.count()).group_by(col(Order.status))
                ).all()
                oldest_paid = session.execute(
                    select(func.min(col(Order.paid_at))).where(col(Order.status) == "paid")
                ).scalar_one()
                oldest_webhook = session.execute(
                    select(func.min(col(WebhookEvent.received_at))).where(
                        col(WebhookEvent.processed_at).is_(None)
                    )
                ).scalar_one()
                stock = session.execute(
                    select(col(Product.slug), func.count(col(Key.id)))
                    .select_from(Product)
                    .outerjoin(
                        Key,
                        (col(Key.product_id) == col(Product.id))
                        & (col(Key.status) == KeyStatus.AVAILABLE),
                    )
                    .where(col(Product.active).is_(True))
                    .group_by(col(Product.slug))
                    .order_by(func.count(col(Key.id)), col(Product.slug))
                    .limit(STOCK_SERIES_MAX)
                ).all()
                now = utcnow()
        except Exception:  # noqa: BLE001 (a scrape reports the database down, never fails)
            up.add_metric([], 0)
            yield up
            yield from self._queue()
            return
        up.add_metric([], 1)
        yield up
        orders = GaugeMetricFamily("keyshop_orders", "Orders by status.", labels=["status"])
        from core.models import OrderStatus

        counts = {str(s): 0 for s in OrderStatus}
        counts.update({str(status): int(n) for status, n in statuses})
        for status, n in sorted(counts.items()):
            orders.add_metric([status], n)
        yield orders
        waiting = GaugeMetricFamily(
            "keyshop_paid_orders_oldest_age_seconds",
            "Age of the oldest order paid and not yet fulfilled (0: none waiting).",
        )
        waiting.add_metric(
            [], max(0.0, (now - oldest_paid).total_seconds()) if oldest_paid else 0.0
        )
        yield waiting
        unprocessed = GaugeMetricFamily(
            "keyshop_webhooks_unprocessed_oldest_age_seconds",
            "Age of the oldest stored webhook not yet acted on (0: none).",
        )
        unprocessed.add_metric(
            [], max(0.0, (now - oldest_webhook).total_seconds()) if oldest_webhook else 0.0
        )
        yield unprocessed
        keys = GaugeMetricFamily(
            "keyshop_stock_available_keys",
            f"Keys available in own stock per product on sale (at most {STOCK_SERIES_MAX}, "
            "fewest first).",
            labels=["product"],
        )
        for slug, n in stock:
            keys.add_metric([slug], int(n))
        yield keys
        yield from self._queue()

    def _queue(self) -> Iterator[Metric]:
        if self.queue_depth is not None:
            depth = GaugeMetricFamily("keyshop_queue_depth", "Jobs waiting in the task queue.")
            try:
                depth.add_metric([], self.queue_depth())
            except Exception:  # noqa: BLE001, S110 (the queue is down: no sample; the heartbeat alert says so)
                pass
            else:
                yield depth
        if self.worker_heartbeat is not None:
            beat = GaugeMetricFamily(
                "keyshop_worker_last_heartbeat_timestamp_seconds",
                "When a worker last wrote its heartbeat (epoch seconds; 0: never).",
            )
            try:
                beat.add_metric([], self.worker_heartbeat() or 0.0)
            except Exception:  # noqa: BLE001, S110 (as above)
                pass
            else:
                yield beat


def exposition(collector: ShopCollector | None = None) -> bytes:
    """The text a scrape gets: every process's counters and, with ``collector``, the
    shop's state now."""
    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    body: bytes = generate_latest(registry)
    if collector is not None:
        state = CollectorRegistry()
        state.register(collector)
        body += generate_latest(state)
    return body
