"""NOWPayments pieces that need no HTTP: the IPN signature as NOWPayments computes it,
the settings, the payment-method protocol, the unpaid-order expiry, crypto refunds."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import select

from core.config import load_settings
from core.errors import ConfigError, InvalidInput
from core.models import CryptoPayment, Order, OrderEvent, utcnow
from core.providers.nowpayments import canonical_ipn, ipn_signature, verify_ipn_signature
from core.services import maintenance, payment_methods
from core.services.audit import Actor
from core.services.nowpayments import SIMULATOR_IPN_SECRET
from core.services.operator.orders import refund_order
from core.services.webhooks import process_webhook, receive_webhook
from tests.factories import fresh, make_order, make_product

IPN = {
    "payment_id": 5077125051,
    "payment_status": "finished",
    "pay_address": "tb1qexample",
    "price_amount": 19.99,
    "price_currency": "eur",
    "pay_amount": 0.00001234,
    "actually_paid": 0.0000125,
    "actually_paid_at_fiat": 5,
    "pay_currency": "btc",
    "order_id": "KS-ABCD-EFGH",
    "order_description": "Spiel für €",
    "outcome_amount": 1e-7,
    "fee": {"currency": "btc", "depositFee": 0, "withdrawalFee": 0, "serviceFee": 0},
    "invoice_id": None,
}


def _node_signature(payload: dict, secret: str, recursive: bool) -> str:
    """What NOWPayments' own JavaScript computes (their documented one-liner, or the body
    sorted at every level)."""
    script = (
        "const c=require('crypto');const p=JSON.parse(process.argv[1]);"
        "const s=o=>o&&typeof o==='object'&&!Array.isArray(o)?"
        "Object.keys(o).sort().reduce((r,k)=>(r[k]=s(o[k]),r),{}):o;"
        "const t=process.argv[3]==='1'?JSON.stringify(s(p)):JSON.stringify(p,Object.keys(p).sort());"
        "console.log(c.createHmac('sha512',process.argv[2]).update(t).digest('hex'))"
    )
    node = shutil.which("node")
    assert node, "Node.js (a documented requirement) is needed to check the signature"
    out = subprocess.run(
        [node, "-e", script, json.dumps(payload), secret, "1" if recursive else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_ipn_signature_is_what_nowpayments_javascript_computes():
    secret = "ipn-secret"
    assert ipn_signature(IPN, secret) == _node_signature(IPN, secret, recursive=True)
    # numbers as JavaScript writes them, keys sorted, no spaces, no ASCII escaping
    text = canonical_ipn(IPN).decode()
    assert '"pay_amount":0.00001234' in text and '"outcome_amount":1e-7' in text
    assert '"actually_paid_at_fiat":5,' in text and "Spiel für €" in text
    assert text.startswith('{"actually_paid":') and ", " not in text


def test_both_documented_forms_verify_and_nothing_else_does():
    secret = "ipn-secret"
    one_liner = _node_signature(IPN, secret, recursive=False)
    assert one_liner != ipn_signature(IPN, secret)
    assert verify_ipn_signature(IPN, one_liner, secret)
    assert verify_ipn_signature(IPN, ipn_signature(IPN, secret).upper(), secret)
    assert not verify_ipn_signature(IPN, ipn_signature(IPN, "other"), secret)
    assert not verify_ipn_signature({**IPN, "actually_paid": 1}, one_liner, secret)
    plain = hmac.new(secret.encode(), json.dumps(IPN).encode(), hashlib.sha512).hexdigest()
    assert not verify_ipn_signature(IPN, plain, secret)


def test_the_api_key_without_the_ipn_secret_is_refused_at_start_up(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOWPAYMENTS_API_KEY", "np-api-key-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "NOWPAYMENTS_IPN_SECRET"
    monkeypatch.setenv("NOWPAYMENTS_IPN_SECRET", "np-ipn-secret-value")
    monkeypatch.setenv("NOWPAYMENTS_BASE_URL", "ftp://nowpayments")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "NOWPAYMENTS_BASE_URL"
    monkeypatch.setenv("NOWPAYMENTS_BASE_URL", "https://api-sandbox.nowpayments.io/")
    settings = load_settings()
    rows = {name: value for name, value, _ in settings.describe()}
    assert rows["NOWPAYMENTS_API_KEY"] == rows["NOWPAYMENTS_IPN_SECRET"] == "***"
    assert rows["NOWPAYMENTS_BASE_URL"] == "https://api-sandbox.nowpayments.io"
    assert "np-api-key-value" not in repr(settings.describe()) + repr(settings)


def test_crypto_is_offered_only_when_configured(test_settings):
    stripe_only = test_settings.model_copy(update={"stripe_secret_key": "sk_test_x"})
    assert payment_methods.offered_methods(test_settings) == ["card", "crypto"]
    assert payment_methods.offered_methods(stripe_only) == ["card"]
    with pytest.raises(InvalidInput):
        payment_methods.method("crypto", stripe_only)
    with pytest.raises(InvalidInput):
        payment_methods.method("cheque", test_settings)
    both = stripe_only.model_copy(
        update={"nowpayments_api_key": "k", "nowpayments_ipn_secret": "s"}
    )
    assert payment_methods.offered_methods(both) == ["card", "crypto"]
    assert payment_methods.method_for_provider("nowpayments").key == "crypto"
    assert payment_methods.method_for_provider(None).key == "card"


def _payment(session, order, status, age):
    session.add(
        CryptoPayment(
            order_id=order.id,
            payment_id=f"p{order.id}",
            status=status,
            created_at=utcnow() - age,
            updated_at=utcnow(),
        )
    )
    session.commit()


def test_the_unpaid_order_expiry_waits_for_a_crypto_payment_under_way(session):
    product = make_product(session)
    old = utcnow() - timedelta(hours=3)
    on_the_way = make_order(session, [(product, 1)], status="pending_payment", created_at=old)
    waiting_long = make_order(session, [(product, 1)], status="pending_payment", created_at=old)
    plain = make_order(session, [(product, 1)], status="pending_payment", created_at=old)
    _payment(session, on_the_way, "confirming", timedelta(hours=2))
    _payment(session, waiting_long, "waiting", timedelta(hours=25))
    expired = maintenance.expire_unpaid_orders()
    assert sorted(expired) == sorted([waiting_long.id, plain.id])
    assert fresh(session).get(Order, on_the_way.id).status == "pending_payment"


def test_a_crypto_refund_is_recorded_and_takes_the_keys_back(session, queued_jobs):
    product = make_product(session)
    order = make_order(
        session,
        [(product, 1)],
        status="paid",
        payment_provider="nowpayments",
        payment_reference="nowpayments:1",
    )
    outcome = refund_order(order_id=order.id, actor=Actor.operator("alice"), reason="asked")
    assert "NOWPayments dashboard" in outcome
    assert fresh(session).get(Order, order.id).status == "refunded"
    events = session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
    assert [e.to_status for e in events][-1] == "refunded"
    assert "crypto refund (by hand)" in events[-1].reason


def _deliver_ipn(order, status, **fields):
    body = {
        "payment_id": 77,
        "payment_status": status,
        "order_id": order.number,
        "price_amount": order.total_minor / 100,
        "price_currency": order.currency.lower(),
        "pay_amount": 0.0004,
        "actually_paid": 0.0004 if status != "waiting" else 0,
        "pay_currency": "btc",
        **fields,
    }
    receipt = receive_webhook(
        source="nowpayments",
        headers={"x-nowpayments-sig": ipn_signature(body, SIMULATOR_IPN_SECRET)},
        body=json.dumps(body).encode(),
    )
    return process_webhook(webhook_id=receipt.webhook_id)


def test_an_ipn_processed_late_never_moves_the_payment_back(session, queued_jobs):
    product = make_product(session, price_minor=1999)
    order = make_order(session, [(product, 1)], status="pending_payment")
    assert _deliver_ipn(order, "finished") == f"order {order.number} paid"
    assert _deliver_ipn(order, "confirming", actually_paid=0.0001).endswith("confirming")
    [payment] = fresh(session).exec(select(CryptoPayment)).all()
    assert payment.status == "finished" and payment.actually_paid == "0.0004"
    assert fresh(session).get(Order, order.id).status == "paid"


def test_an_ipn_for_an_unknown_order_is_stored_and_refused(session, queued_jobs):
    ghost = SimpleNamespace(number="KS-GHOS-T000", total_minor=1999, currency="EUR")
    assert _deliver_ipn(ghost, "finished").startswith("refused: no order KS-GHOS-T000")
    assert fresh(session).exec(select(CryptoPayment)).all() == []
