"""Crypto payments through NOWPayments (issue #19), end to end over real HTTP: checkout
creates an invoice on the NOWPayments simulator with the real client, the simulator
"pays" it and sends signed IPNs to the shop's webhook endpoint, the stored IPNs are
acted on once."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from core.models import Alert, CryptoPayment, Key, Order, OrderEvent, WebhookEvent, utcnow
from core.providers.nowpayments import SIGNATURE_HEADER, ipn_signature
from core.services import fulfilment, maintenance, nowpayments
from core.services.checkout import CartLine, PaymentUnavailable, place_order
from core.services.console_reads.orders import order_timeline
from core.services.nowpayments import SIMULATOR_IPN_SECRET
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_keys, make_product
from tests.support.api import serve_api
from tests.support.nowpayments import NOWPAYMENTS_READERS, crypto_settings, invoice_id

FULL = 5  # waiting, confirming, confirmed, sending, finished


@pytest.fixture(scope="module")
def api_url():
    with serve_api() as url:
        yield url


@pytest.fixture
def crypto(sim_server, api_url, test_settings, engine, queued_jobs, monkeypatch):
    """The NOWPayments simulator, reset, with the shop's NOWPayments settings pointing at
    it and its IPNs going to the API server."""
    settings = crypto_settings(test_settings, sim_url=sim_server.url, api_url=api_url)
    for module in NOWPAYMENTS_READERS:
        monkeypatch.setattr(f"{module}.get_settings", lambda: settings)
    sim_server.payments.reset()
    yield sim_server.payments
    sim_server.payments.join()
    sim_server.payments.reset()


def process_all(queued_jobs) -> list[str]:
    outcomes = [
        process_webhook(webhook_id=args[0])
        for name, args, _ in list(queued_jobs)
        if name == "process_webhook"
    ]
    queued_jobs[:] = [j for j in queued_jobs if j[0] != "process_webhook"]
    return outcomes


def fulfil_all(queued_jobs) -> None:
    for name, args, _ in list(queued_jobs):
        if name == "fulfil_order":
            fulfilment.fulfil_order(order_id=args[0], clients={})


def buy(session, *, keys: int = 1):
    product = make_product(session, title="Crypto Quest", price_minor=1999)
    make_keys(session, product, keys)
    result = place_order(
        email="satoshi@example.com", lines=[CartLine(product.slug, 1)], payment_method="crypto"
    )
    return product, result


def pay(crypto, result, deliveries: int) -> list[dict]:
    crypto.pay_invoice(invoice_id(result.payment_url))
    return crypto.wait_for_deliveries(deliveries, timeout=60)


def order_of(session, result) -> Order:
    return fresh(session).exec(select(Order).where(Order.number == result.number)).one()


def test_a_finished_crypto_payment_delivers_the_key(session, crypto, queued_jobs, api_url):
    product, result = buy(session)
    [invoice] = crypto.invoices.values()
    assert invoice["order_id"] == result.number
    assert invoice["price_currency"] == "eur" and invoice["price_amount"] == "19.99"
    assert invoice["ipn_callback_url"] == f"{api_url}/api/webhooks/nowpayments"
    assert invoice["success_url"] == result.order_url
    assert result.payment_url == invoice["invoice_url"] and result.test_payment

    deliveries = pay(crypto, result, FULL)
    assert [d["status"] for d in deliveries] == [200] * FULL
    outcomes = process_all(queued_jobs)
    assert outcomes[-1] == f"order {result.number} paid"
    assert order_of(session, result).status == "paid"
    fulfil_all(queued_jobs)
    order = order_of(session, result)
    assert order.status == "fulfilled" and order.payment_provider == "nowpayments"
    delivered = session.exec(select(Key).where(Key.status == "delivered")).all()
    assert len(delivered) == 1 and delivered[0].product_id == product.id

    [payment] = session.exec(select(CryptoPayment)).all()
    assert payment.status == "finished" and payment.pay_currency == "btc"
    assert payment.actually_paid == payment.pay_amount and payment.overpaid is None
    # the real client's status lookup agrees with the IPNs
    with nowpayments.client() as client:
        assert client.api_status()
        assert client.payment_status(payment.payment_id)["payment_status"] == "finished"


def test_a_forged_ipn_is_401_and_changes_nothing(session, crypto, queued_jobs):
    _, result = buy(session)
    crypto.set_knobs({"ipn_secret": "not-the-shops-secret"})
    deliveries = pay(crypto, result, FULL)
    assert {d["status"] for d in deliveries} == {401}
    assert [j[0] for j in queued_jobs] == ["send_order_email"]  # the confirmation only
    assert order_of(session, result).status == "pending_payment"
    assert session.exec(select(CryptoPayment)).all() == []
    stored = session.exec(select(WebhookEvent)).all()
    assert stored and not any(e.authenticated for e in stored)


@pytest.mark.parametrize(
    "tamper",
    [
        {"price_amount": 1999.0},  # the amount changed after signing
        {"payment_status": "finished", "actually_paid": 1},
    ],
)
def test_a_tampered_or_unsigned_ipn_is_401_and_changes_nothing(
    session, crypto, queued_jobs, api_url, tamper
):
    _, result = buy(session)
    genuine = {
        "payment_id": 42,
        "payment_status": "waiting",
        "order_id": result.number,
        "price_amount": 19.99,
        "price_currency": "eur",
        "pay_amount": 0.0004,
        "actually_paid": 0,
        "pay_currency": "btc",
    }
    signature = ipn_signature(genuine, SIMULATOR_IPN_SECRET)
    url = f"{api_url}/api/webhooks/nowpayments"
    for headers in ({SIGNATURE_HEADER: signature}, {}):
        answer = httpx.post(url, content=json.dumps({**genuine, **tamper}), headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthenticated"
    assert [j[0] for j in queued_jobs] == ["send_order_email"]  # the confirmation only
    assert order_of(session, result).status == "pending_payment"
    assert not any(e.authenticated for e in fresh(session).exec(select(WebhookEvent)).all())


@pytest.mark.parametrize(
    "copies",
    [pytest.param(10, id="10"), pytest.param(50, id="50", marks=pytest.mark.postgres_only)],
)
def test_the_same_ipn_50_times_concurrently_is_acted_on_once(session, crypto, queued_jobs, copies):
    _, result = buy(session)
    crypto.set_knobs({"duplicates": copies})
    crypto.pay_invoice(invoice_id(result.payment_url))
    deliveries = crypto.wait_for_deliveries(FULL * copies, timeout=120)
    assert {d["status"] for d in deliveries} == {200}
    events = session.exec(select(WebhookEvent)).all()
    assert sorted(e.event_type for e in events) == sorted(
        f"payment.{s}" for s in ("waiting", "confirming", "confirmed", "sending", "finished")
    )
    process_all(queued_jobs)
    order = order_of(session, result)
    paid = (
        fresh(session)
        .exec(
            select(OrderEvent).where(
                OrderEvent.order_id == order.id, OrderEvent.to_status == "paid"
            )
        )
        .all()
    )
    assert order.status == "paid" and len(paid) == 1
    assert [j[0] for j in queued_jobs].count("fulfil_order") == 1


def test_a_partial_payment_never_delivers(session, crypto, queued_jobs):
    _, result = buy(session)
    crypto.set_knobs({"partial": 0.4})
    assert [d["payment_status"] for d in pay(crypto, result, 3)] == [
        "waiting",
        "confirming",
        "partially_paid",
    ]
    process_all(queued_jobs)
    order = order_of(session, result)
    assert order.status == "needs_attention"
    assert "fell short" in order.attention_reason and "BTC arrived of" in order.attention_reason
    assert "fulfil_order" not in [j[0] for j in queued_jobs]
    assert session.exec(select(Key).where(Key.status == "delivered")).all() == []
    [payment] = session.exec(select(CryptoPayment)).all()
    assert payment.status == "partially_paid"
    assert float(payment.actually_paid) == pytest.approx(float(payment.pay_amount) * 0.6)


def test_an_overpayment_pays_the_order_and_is_shown_to_operators(session, crypto, queued_jobs):
    _, result = buy(session)
    crypto.set_knobs({"overpay": 0.25})
    pay(crypto, result, FULL)
    outcomes = process_all(queued_jobs)
    assert "overpaid by" in outcomes[-1]
    assert order_of(session, result).status == "paid"
    [payment] = session.exec(select(CryptoPayment)).all()
    assert payment.overpaid is not None and float(payment.overpaid) > 0
    alert = session.exec(select(Alert).where(Alert.subject == f"crypto:{payment.payment_id}")).one()
    assert "overpaid" in alert.message
    # operators see the payment with its on-chain amounts in the order's timeline
    timeline = order_timeline(session=session, order_id=order_of(session, result).id)
    [line] = [e.text for e in timeline.entries if e.text.startswith("crypto payment")]
    assert f"{payment.payment_id}: finished" in line and "BTC arrived" in line
    assert f"overpaid by {payment.overpaid} BTC" in line


@pytest.mark.parametrize(
    "override", [{"price_currency": "usd"}, {"price_amount": 1.99}, {"price_amount": "19.991"}]
)
def test_an_amount_or_currency_mismatch_never_marks_the_order_paid(
    session, crypto, queued_jobs, override
):
    _, result = buy(session)
    crypto.set_knobs({"ipn_overrides": override})
    pay(crypto, result, FULL)
    process_all(queued_jobs)
    order = order_of(session, result)
    assert order.status == "needs_attention"
    assert "fulfil_order" not in [j[0] for j in queued_jobs]


def test_an_expired_payment_cancels_the_order_and_releases_its_key(session, crypto, queued_jobs):
    product, result = buy(session)
    crypto.set_knobs({"expire": True})
    assert [d["payment_status"] for d in pay(crypto, result, 2)] == ["waiting", "expired"]
    outcomes = process_all(queued_jobs)
    assert outcomes[-1] == f"order {result.number} cancelled: crypto payment expired"
    assert order_of(session, result).status == "cancelled"
    keys = fresh(session).exec(select(Key).where(Key.product_id == product.id)).all()
    assert [k.status for k in keys] == ["available"]


def test_when_nowpayments_refuses_the_invoice_the_order_is_cancelled(session, crypto):
    crypto.set_knobs({"fail_invoices": True})
    product = make_product(session, title="Crypto Quest", price_minor=1999)
    make_keys(session, product, 1)
    with pytest.raises(PaymentUnavailable):
        place_order(
            email="satoshi@example.com", lines=[CartLine(product.slug, 1)], payment_method="crypto"
        )
    [order] = fresh(session).exec(select(Order)).all()
    assert order.status == "cancelled"


def test_the_store_api_checks_out_with_crypto_and_shows_the_payment(
    session, crypto, queued_jobs, api_url
):
    product = make_product(session, title="Crypto Quest", price_minor=1999)
    make_keys(session, product, 1)
    with httpx.Client(base_url=api_url, timeout=10) as api:
        placed = api.post(
            "/api/store/checkout",
            json={
                "email": "satoshi@example.com",
                "lines": [{"slug": product.slug, "quantity": 1}],
                "payment_method": "crypto",
            },
        )
        assert placed.status_code == 201, placed.text
        body = placed.json()
        assert "/nowpayments/payment/?iid=" in body["payment_url"]
        crypto.set_knobs({"partial": 0.5})
        crypto.pay_invoice(invoice_id(body["payment_url"]))
        crypto.wait_for_deliveries(3)
        process_all(queued_jobs)
        status = api.get(
            body["status_url"], headers={"Authorization": f"Bearer {body['access_token']}"}
        ).json()
    assert status["status"] == "needs_attention"
    assert status["payment_note"].startswith("Crypto payment: less than the amount asked")
    assert " of " in status["payment_note"] and "BTC" in status["payment_note"]


def test_paid_on_confirmed_when_configured(
    session, crypto, queued_jobs, sim_server, api_url, test_settings, monkeypatch
):
    settings = crypto_settings(
        test_settings,
        sim_url=sim_server.url,
        api_url=api_url,
        nowpayments_paid_status="confirmed",
    )
    monkeypatch.setattr("core.services.nowpayments.get_settings", lambda: settings)
    _, result = buy(session)
    pay(crypto, result, FULL)
    outcomes = process_all(queued_jobs)
    assert outcomes[2] == f"order {result.number} paid"  # waiting, confirming, confirmed
    assert outcomes[3:] == [f"order {result.number} already paid"] * 2
    assert order_of(session, result).status == "paid"
    assert [j[0] for j in queued_jobs].count("fulfil_order") == 1


def test_a_lost_ipn_is_recovered_by_looking_the_payment_up(session, crypto, queued_jobs):
    _, result = buy(session)
    crypto.set_knobs({"drop_ipns_after": 2})  # waiting and confirming arrive, then nothing
    deliveries = pay(crypto, result, FULL)
    assert [d["status"] for d in deliveries] == [200, 200, "dropped", "dropped", "dropped"]
    process_all(queued_jobs)
    assert order_of(session, result).status == "pending_payment"
    [payment] = session.exec(select(CryptoPayment)).all()
    assert payment.status == "confirming"

    # too soon: nobody asks yet
    assert maintenance.reconcile().crypto == []
    later = utcnow() + timedelta(minutes=11)
    report = maintenance.reconcile(now=later)
    assert report.crypto == [payment.payment_id]
    assert process_all(queued_jobs) == [f"order {result.number} paid"]
    assert order_of(session, result).status == "paid"
    assert [j[0] for j in queued_jobs].count("fulfil_order") == 1
    # a finished payment is not asked about again
    assert maintenance.reconcile(now=later + timedelta(minutes=11)).crypto == []
    assert process_all(queued_jobs) == []
