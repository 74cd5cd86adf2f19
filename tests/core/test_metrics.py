"""core.metrics: events counted where they happen (once committed), state read at scrape
time, several processes merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from core import metrics
from core.models import OrderStatus
from core.providers.base import ProviderTransientError
from core.providers.http import send
from core.services.audit import Actor
from core.services.orders import transition_order
from core.services.payments import webhook_secret
from core.services.test_payments import sign_stripe_payload
from core.services.webhooks import WebhookRejected, receive_webhook
from tests.factories import fresh, make_keys, make_order, make_product

ROOT = Path(__file__).resolve().parents[2]


def samples(text: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(name: str, **labels: str) -> float:
    return samples(metrics.exposition()).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v2/orders/123", "GET /v2/orders/{id}"),
        ("/v2/orders/0b7d2c7e-8a4f-4d8e-9c3a-1f2e3d4c5b6a?x=1", "GET /v2/orders/{id}"),
        ("/v1/offers", "GET /v1/offers"),
        ("/v1/order/KS-AB12-CD34/keys", "GET /v1/order/{id}/keys"),
    ],
)
def test_operations_are_paths_with_ids_replaced(path: str, operation: str) -> None:
    assert metrics.operation_of("get", path) == operation


def test_provider_calls_are_counted_with_their_outcome() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/down"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503 if "busy" in request.url.path else 200, json={})

    client = httpx.Client(base_url="http://provider.test", transport=httpx.MockTransport(answer))
    ok = value(
        "keyshop_provider_requests_total", provider="p1", operation="GET /v1/x/{id}", outcome="2xx"
    )
    send(client, "p1", "GET", "/v1/x/42")
    send(client, "p1", "GET", "/v1/busy")
    with pytest.raises(ProviderTransientError):
        send(client, "p1", "GET", "/v1/down")
    assert (
        value(
            "keyshop_provider_requests_total",
            provider="p1",
            operation="GET /v1/x/{id}",
            outcome="2xx",
        )
        == ok + 1
    )
    assert (
        value(
            "keyshop_provider_requests_total",
            provider="p1",
            operation="GET /v1/busy",
            outcome="5xx",
        )
        >= 1
    )
    assert (
        value(
            "keyshop_provider_requests_total",
            provider="p1",
            operation="GET /v1/down",
            outcome="ConnectError",
        )
        >= 1
    )
    assert (
        value("keyshop_provider_request_seconds_count", provider="p1", operation="GET /v1/x/{id}")
        >= 1
    )


def test_transitions_count_only_once_committed(session: Session) -> None:
    product = make_product(session)
    order = make_order(session, [(product, 1)], status=OrderStatus.PENDING_PAYMENT)
    paid = value("keyshop_order_transitions_total", status="paid")
    transition_order(
        session=session,
        order_id=order.id,
        to_status=OrderStatus.PAID,
        actor=Actor.system(),
        reason="test",
    )
    session.rollback()
    assert value("keyshop_order_transitions_total", status="paid") == paid
    transition_order(
        session=session,
        order_id=order.id,
        to_status=OrderStatus.PAID,
        actor=Actor.system(),
        reason="test",
    )
    session.commit()
    assert value("keyshop_order_transitions_total", status="paid") == paid + 1
    before = value("keyshop_order_paid_to_fulfilled_seconds_count")
    transition_order(
        session=session,
        order_id=order.id,
        to_status=OrderStatus.FULFILLED,
        actor=Actor.system(),
        reason="test",
    )
    session.commit()
    assert value("keyshop_order_paid_to_fulfilled_seconds_count") == before + 1


def test_webhooks_are_counted_by_result(session: Session, queued_jobs: list) -> None:
    rejected = value("keyshop_webhooks_total", source="stripe", result="rejected")
    with pytest.raises(WebhookRejected):
        receive_webhook(source="stripe", headers={}, body=b"{}")
    assert value("keyshop_webhooks_total", source="stripe", result="rejected") == rejected + 1
    accepted = value("keyshop_webhooks_total", source="stripe", result="accepted")
    duplicate = value("keyshop_webhooks_total", source="stripe", result="duplicate")
    product = make_product(session)
    order = make_order(session, [(product, 1)], status=OrderStatus.PENDING_PAYMENT)
    body = json.dumps(
        {
            "id": "evt_metrics_1",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_1",
                    "client_reference_id": order.number,
                    "payment_status": "paid",
                    "amount_total": order.total_minor,
                    "currency": order.currency.lower(),
                }
            },
        }
    ).encode()
    headers = {"Stripe-Signature": sign_stripe_payload(body, webhook_secret())}
    receive_webhook(source="stripe", headers=headers, body=body)
    receive_webhook(source="stripe", headers=headers, body=body)
    assert value("keyshop_webhooks_total", source="stripe", result="accepted") == accepted + 1
    assert value("keyshop_webhooks_total", source="stripe", result="duplicate") == duplicate + 1


def test_the_state_is_read_at_scrape_time(session: Session) -> None:
    product = make_product(session, slug="metrics-game")
    make_keys(session, product, 3)
    make_order(session, [(product, 1)], status=OrderStatus.PAID)
    collector = metrics.ShopCollector(queue_depth=lambda: 7, worker_heartbeat=lambda: 1234.5)
    got = samples(metrics.exposition(collector))
    assert got[("keyshop_orders", (("status", "paid"),))] == 1
    assert got[("keyshop_orders", (("status", "refunded"),))] == 0
    assert got[("keyshop_stock_available_keys", (("product", "metrics-game"),))] == 3
    assert got[("keyshop_paid_orders_oldest_age_seconds", ())] >= 0
    assert got[("keyshop_queue_depth", ())] == 7
    assert got[("keyshop_worker_last_heartbeat_timestamp_seconds", ())] == 1234.5
    assert got[("keyshop_database_up", ())] == 1
    fresh(session)


def test_a_queue_that_is_down_leaves_its_gauges_out() -> None:
    def down() -> int:
        raise ConnectionError("no queue")

    got = samples(metrics.exposition(metrics.ShopCollector(queue_depth=down)))
    assert ("keyshop_queue_depth", ()) not in got
    assert got[("keyshop_database_up", ())] == 1


COUNT_IN_A_CHILD = """
import sys
from core import metrics
metrics.KEYS_IMPORTED.inc(int(sys.argv[1]))
"""


def test_several_processes_share_their_counters(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for n in ("5", "7"):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_CHILD, n], env=env, check=True)
    merged = subprocess.run(
        [sys.executable, "-c", "from core import metrics; print(metrics.exposition().decode())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert samples(merged)[("keyshop_keys_imported_total", ())] == 12
