"""The HTTP API over a real server: webhooks (Stripe, Kinguin, CodesWholesale) and health."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlmodel import select

from core import jobs
from core.models import Order, OrderEvent, ProviderOffer, ProviderPurchase, WebhookEvent
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_ID,
    SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
    SIMULATOR_KINGUIN_WEBHOOK_SECRET,
)
from core.services.payments import webhook_secret
from core.services.test_payments import sign_stripe_payload
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_order, make_product, order_lines
from tests.support.api import serve_api


@pytest.fixture(scope="module")
def api_server():
    with serve_api() as url:
        yield url


@pytest.fixture
def api(api_server, engine, queued_jobs):
    with httpx.Client(base_url=api_server, timeout=10) as client:
        yield client


def process_all(queued):
    return [
        process_webhook(webhook_id=args[0])
        for name, args, _ in list(queued)
        if name == "process_webhook"
    ]


def stripe_event(order):
    return json.dumps(
        {
            "id": f"evt_{order.number}",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_1",
                    "client_reference_id": order.number,
                    "payment_status": "paid",
                    "payment_intent": "pi_1",
                    "amount_total": order.total_minor,
                    "currency": order.currency.lower(),
                }
            },
        }
    ).encode()


@pytest.fixture
def heartbeat():
    """Writes the workers' heartbeat into the (in-memory) queue the API reads; forgets it after."""
    import tasks
    from tasks.consumer import HEARTBEAT_KEY, write_heartbeat

    yield lambda seconds_ago: write_heartbeat(tasks.huey, at=time.time() - seconds_ago)
    tasks.huey.storage.pop_data(HEARTBEAT_KEY)


def test_health_reports_database_queue_and_worker(api, heartbeat):
    heartbeat(2)
    answer = api.get("/api/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body.pop("worker_last_seen_seconds") in (2, 3)
    assert body == {"status": "ok", "database": "ok", "queue": "ok", "worker": "ok"}


def test_health_says_when_no_worker_was_seen_but_the_web_stays_healthy(
    api, heartbeat, test_settings
):
    answer = api.get("/api/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "worker": "absent",
        "worker_last_seen_seconds": None,
    }
    heartbeat(test_settings.worker_stale_seconds + 15)
    answer = api.get("/api/health")
    assert (
        answer.status_code == 200
    )  # the web container's own check: a missing worker is not the web's fault
    body = answer.json()
    assert body["status"] == "ok" and body["worker"] == "stale"
    assert body["worker_last_seen_seconds"] >= test_settings.worker_stale_seconds + 15


def test_a_webhook_that_cannot_be_stored_is_503_so_the_sender_retries(api, session, test_settings):
    from core import config

    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = stripe_event(order)
    headers = {
        "Stripe-Signature": sign_stripe_payload(body, webhook_secret()),
        "Content-Type": "application/json",
    }
    config.use_settings(
        test_settings.model_copy(
            update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/keyshop"}
        )
    )
    try:
        answer = api.post("/api/webhooks/stripe", content=body, headers=headers)
    finally:
        config.use_settings(test_settings)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"


def test_stripe_webhook_pays_the_order_once_even_when_delivered_50_times(api, session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = stripe_event(order)
    headers = {
        "Stripe-Signature": sign_stripe_payload(body, webhook_secret()),
        "Content-Type": "application/json",
    }
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(
                lambda _: api.post("/api/webhooks/stripe", content=body, headers=headers), range(50)
            )
        )
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["duplicate"] for a in answers) == [False] + [True] * 49
    process_all(queued_jobs)
    process_all(queued_jobs)
    fresh(session)
    assert session.get(Order, order.id).status == "paid"
    assert len(session.exec(select(OrderEvent).where(OrderEvent.to_status == "paid")).all()) == 1


def test_a_forged_stripe_webhook_is_401_and_changes_nothing(api, session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    body = stripe_event(order)
    answer = api.post(
        "/api/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign_stripe_payload(body, "whsec_forged")},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert queued_jobs == []
    assert fresh(session).get(Order, order.id).status == "pending_payment"


@pytest.mark.parametrize(
    "body, status", [(b"{not json", 400), (b"[]", 400), (b"x" * 1_100_000, 400)]
)
def test_malformed_and_oversized_bodies_are_400(api, session, body, status):
    answer = api.post(
        "/api/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign_stripe_payload(body, webhook_secret())},
    )
    assert answer.status_code == status
    assert "error" in answer.json()
    assert fresh(session).exec(select(WebhookEvent)).all() == []


@pytest.mark.parametrize("source", ["stripe", "kinguin", "codeswholesale"])
def test_deeply_nested_json_is_400_on_every_webhook(api, session, source):
    body = b"[" * 100_000 + b"]" * 100_000
    answer = api.post(
        f"/api/webhooks/{source}",
        content=body,
        headers={
            "Stripe-Signature": sign_stripe_payload(body, webhook_secret()),
            "X-Event-Secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET,
            "X-Event-Name": "order.status",
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == "body is nested too deeply"
    assert fresh(session).exec(select(WebhookEvent)).all() == []


def test_unknown_source_is_404(api):
    assert api.post("/api/webhooks/paypal", content=b"{}").status_code == 404


def kinguin_update(product_id, qty, updated_at):
    return json.dumps(
        {
            "kinguinId": 1,
            "productId": product_id,
            "qty": qty,
            "textQty": qty,
            "cheapestOfferId": ["o1"],
            "updatedAt": updated_at,
        }
    ).encode()


def test_kinguin_product_updates_out_of_order_keep_the_newest(api, session, queued_jobs):
    product = make_product(session)
    session.add(
        ProviderOffer(
            provider="kinguin",
            external_id="kg-1",
            product_id=product.id,
            name=product.title,
            cost_minor=500,
            currency="EUR",
            stock=10,
        )
    )
    session.commit()
    headers = {"X-Event-Name": "product.update", "X-Event-Secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET}
    newer = api.post(
        "/api/webhooks/kinguin",
        content=kinguin_update("kg-1", 3, "2026-11-22T10:05:00+00:00"),
        headers=headers,
    )
    older = api.post(
        "/api/webhooks/kinguin",
        content=kinguin_update("kg-1", 40, "2026-11-22T10:00:00+00:00"),
        headers=headers,
    )
    assert (newer.status_code, older.status_code) == (204, 204) and newer.content == b""
    outcomes = process_all(queued_jobs)
    assert "ignored, older" in outcomes[1]
    assert fresh(session).exec(select(ProviderOffer)).one().stock == 3


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_kinguin_webhook_without_the_secret_is_401(api, session, queued_jobs, secret):
    headers = {"X-Event-Name": "product.update"}
    if secret is not None:
        headers["X-Event-Secret"] = secret
    answer = api.post(
        "/api/webhooks/kinguin",
        content=kinguin_update("kg-1", 3, "2026-11-22T10:05:00+00:00"),
        headers=headers,
    )
    assert answer.status_code == 401
    assert queued_jobs == []


def test_kinguin_order_status_queues_fulfilment_of_our_order(api, session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    session.add(
        ProviderPurchase(
            order_line_id=line.id,
            provider="kinguin",
            reference="ks-ref-9",
            quantity=1,
            status="pending",
        )
    )
    session.commit()
    body = json.dumps(
        {
            "orderId": "PHS84FJAG5U",
            "orderExternalId": "ks-ref-9",
            "status": "completed",
            "updatedAt": "2026-11-22T10:00:00+00:00",
        }
    ).encode()
    answer = api.post(
        "/api/webhooks/kinguin",
        content=body,
        headers={
            "X-Event-Name": "order.status",
            "X-Event-Secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET,
        },
    )
    assert answer.status_code == 204
    process_all(queued_jobs)
    assert ("fulfil_order", (order.id,), {}) in queued_jobs


def test_codeswholesale_postback_needs_the_auth_hash(api, session, queued_jobs):
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id="cw-1",
            name="x",
            cost_minor=900,
            currency="EUR",
            stock=1,
        )
    )
    session.commit()
    good = hashlib.sha256(
        (SIMULATOR_CODESWHOLESALE_CLIENT_ID + SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE).encode()
    ).hexdigest()
    body = {
        "type": "STOCK",
        "products": [
            {
                "productId": "cw-1",
                "quantity": 7,
                "prices": [{"priceRangeLabel": "1-9", "price": 4.25}],
            }
        ],
    }
    forged = api.post("/api/webhooks/codeswholesale", json={**body, "authHash": "0" * 64})
    assert forged.status_code == 401
    assert (
        api.post("/api/webhooks/codeswholesale", json={**body, "authHash": good}).status_code == 200
    )
    process_all(queued_jobs)
    offer = fresh(session).exec(select(ProviderOffer)).one()
    assert (offer.stock, offer.cost_minor) == (7, 425)
    jobs.pending.clear()


def test_codeswholesale_stock_prices_are_read_by_range(api, session, queued_jobs):
    """STOCK price labels are ranges (CWFW stock handler expects labels such as "100+";
    providers.md, Corrections): the unit cost is the tier that holds one unit, wherever
    it is listed, not the first label starting with "1"."""
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id="cw-2",
            name="x",
            cost_minor=900,
            currency="EUR",
            stock=1,
        )
    )
    session.commit()
    good = hashlib.sha256(
        (SIMULATOR_CODESWHOLESALE_CLIENT_ID + SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE).encode()
    ).hexdigest()
    prices = [
        {"priceRangeLabel": "100+", "price": 3.10},
        {"priceRangeLabel": "10 - 99", "price": 4.00},
        {"priceRangeLabel": "1-9", "price": 4.75},
    ]
    body = {
        "type": "STOCK",
        "authHash": good,
        "products": [{"productId": "cw-2", "quantity": 12, "prices": prices}],
    }
    assert api.post("/api/webhooks/codeswholesale", json=body).status_code == 200
    process_all(queued_jobs)
    offer = (
        fresh(session).exec(select(ProviderOffer).where(ProviderOffer.external_id == "cw-2")).one()
    )
    assert (offer.stock, offer.cost_minor) == (12, 475)
    jobs.pending.clear()


def test_an_unknown_kinguin_event_is_stored_and_answered_2xx(api, session, queued_jobs):
    """Kinguin may disable an endpoint that keeps failing; reply 2xx to every delivery,
    including events we do not handle (KG features/Webhooks.md; providers.md,
    Corrections)."""
    headers = {"X-Event-Name": "order.complete", "X-Event-Secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET}
    answer = api.post(
        "/api/webhooks/kinguin",
        content=b'{"orderId": "PHS1", "status": "completed"}',
        headers=headers,
    )
    assert answer.status_code in (200, 202, 204)
    process_all(queued_jobs)
    [event] = (
        fresh(session).exec(select(WebhookEvent).where(WebhookEvent.source == "kinguin")).all()
    )
    assert event.event_type == "order.complete" and event.processed_at is not None
    assert "ignored" in (event.outcome or "")


def test_kinguin_product_update_counts_text_keys(api, session, queued_jobs):
    """We order keyType text, so the stock that counts is textQty, not qty
    (KG features/KeyType.md; providers.md, Corrections)."""
    session.add(
        ProviderOffer(
            provider="kinguin",
            external_id="kg-text",
            name="x",
            cost_minor=500,
            currency="EUR",
            stock=10,
        )
    )
    session.commit()
    headers = {"X-Event-Name": "product.update", "X-Event-Secret": SIMULATOR_KINGUIN_WEBHOOK_SECRET}
    body = json.dumps(
        {
            "kinguinId": 1,
            "productId": "kg-text",
            "qty": 8,
            "textQty": 2,
            "cheapestOfferId": ["o1"],
            "updatedAt": "2026-11-22T10:05:00+00:00",
        }
    ).encode()
    assert api.post("/api/webhooks/kinguin", content=body, headers=headers).status_code == 204
    process_all(queued_jobs)
    assert (
        fresh(session)
        .exec(select(ProviderOffer).where(ProviderOffer.external_id == "kg-text"))
        .one()
        .stock
        == 2
    )
