"""An operator's refund reaches Stripe through the configured API base (STRIPE_API_BASE),
with an idempotency key, and a refusal is a clear error."""

from __future__ import annotations

import pytest

from core.errors import DomainError
from core.services.audit import Actor
from core.services.operator import refund_order
from tests.factories import make_order, make_product
from tests.support.stripe import stripe_configured

OPERATOR = Actor.operator("alice")


@pytest.fixture
def stripe_api(test_settings, monkeypatch):
    with stripe_configured(test_settings, monkeypatch) as fake:
        yield fake


def test_a_refund_is_created_at_the_configured_stripe(session, stripe_api):
    order = make_order(
        session, [(make_product(session), 1)], status="fulfilled", payment_reference="pi_42"
    )
    outcome = refund_order(order_id=order.id, actor=OPERATOR, reason="customer asked")
    assert (
        outcome == f"Stripe refund re_test_123 created for {order.number}; its webhook completes it"
    )
    [call] = stripe_api.requests
    assert call["path"] == "/v1/refunds" and call["authorization"] == "Bearer sk_test_x"
    assert call["form"]["payment_intent"] == "pi_42"
    assert call["form"]["metadata[order_number]"] == order.number
    assert call["idempotency_key"] == f"keyshop-refund-{order.number}"


def test_a_refused_refund_is_a_clear_error(session, stripe_api):
    stripe_api.fail_with = 400
    order = make_order(
        session, [(make_product(session), 1)], status="fulfilled", payment_reference="pi_42"
    )
    with pytest.raises(DomainError, match=f"Stripe refused the refund of {order.number}"):
        refund_order(order_id=order.id, actor=OPERATOR, reason="customer asked")
