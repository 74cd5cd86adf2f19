"""/api/metrics scraped by a real Prometheus server (Debian's prometheus package, on
loopback, with a scrape config written here): the series exist and move when an order is
placed and a webhook is refused, as Prometheus' own query API reports them."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from core.models import OrderStatus
from tests.factories import make_order, make_product
from tests.support.api import serve_api
from tests.support.shop import free_port, stop


@pytest.fixture
def prometheus(engine, queued_jobs, tmp_path: Path) -> Iterator[tuple[str, str]]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (./dev test does)"
    with serve_api() as api:
        target = api.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: keyshop\n    metrics_path: /api/metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115 (the child owns it)
            start_new_session=True,
        )
        prom = f"http://127.0.0.1:{port}"
        try:
            # /-/ready answers 200 once Prometheus serves queries (503 "Service
            # Unavailable" while it starts): wait for it, never for a fixed time
            deadline = time.monotonic() + 60
            while not _ready(prom):
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "Prometheus never became ready"
                time.sleep(0.2)
            yield prom, api
        finally:
            stop(proc)


def _ready(prom: str) -> bool:
    try:
        return httpx.get(f"{prom}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def query(prom: str, expr: str) -> list[dict]:
    reply = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def wait_for(prom: str, expr: str, want, timeout: float = 30.0) -> list[dict]:
    """Until ``want(result)`` holds for the instant query ``expr`` (Prometheus scrapes
    every second, so the condition is an event to wait for, not a time to sleep)."""
    deadline = time.monotonic() + timeout
    result: list[dict] = []
    while time.monotonic() < deadline:
        try:
            result = query(prom, expr)
        except httpx.TransportError:
            result = []  # still starting
        if want(result):
            return result
        time.sleep(0.2)
    raise AssertionError(f"{expr}: {result!r} never satisfied the condition")


def scalar(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_shop_and_sees_it_move(prometheus, session: Session) -> None:
    prom, api = prometheus
    wait_for(prom, 'up{job="keyshop"}', lambda r: scalar(r) == 1)
    for series in (
        "keyshop_database_up",
        "keyshop_orders",
        "keyshop_paid_orders_oldest_age_seconds",
        "keyshop_queue_depth",
        "keyshop_worker_last_heartbeat_timestamp_seconds",
    ):
        wait_for(prom, series, bool)
    wait_for(prom, 'keyshop_orders{status="pending_payment"}', lambda r: scalar(r) == 0)

    product = make_product(session, slug="scraped-game")
    make_order(session, [(product, 1)], status=OrderStatus.PENDING_PAYMENT)
    wait_for(prom, 'keyshop_orders{status="pending_payment"}', lambda r: scalar(r) == 1)
    wait_for(prom, 'keyshop_stock_available_keys{product="scraped-game"}', lambda r: scalar(r) == 0)

    refused = httpx.post(f"{api}/api/webhooks/stripe", content=b"{}", timeout=5)
    assert refused.status_code == 401
    wait_for(
        prom,
        'keyshop_webhooks_total{source="stripe",result="rejected"}',
        lambda r: (scalar(r) or 0) >= 1,
    )


def test_metrics_need_the_token_when_one_is_set(engine, queued_jobs, test_settings) -> None:
    from pydantic import SecretStr

    from core import config

    token = SecretStr("s3cret-metrics-token-for-tests")
    config.use_settings(test_settings.model_copy(update={"metrics_token": token}))
    try:
        with serve_api() as api:
            assert httpx.get(f"{api}/api/metrics", timeout=5).status_code == 403
            wrong = {"Authorization": "Bearer nope"}
            assert httpx.get(f"{api}/api/metrics", headers=wrong, timeout=5).status_code == 403
            right = {"Authorization": "Bearer s3cret-metrics-token-for-tests"}
            reply = httpx.get(f"{api}/api/metrics", headers=right, timeout=5)
            assert reply.status_code == 200 and "keyshop_orders" in reply.text
    finally:
        config.use_settings(test_settings)
