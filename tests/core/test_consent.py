"""Consent to immediate delivery before the first reveal, audited with time, address and
browser (issue #14 item 3)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.models import AuditEvent, Order
from core.services.consent import CONSENT_TEXT, ConsentRequired, give_consent
from core.services.fulfilment import fulfil_order
from core.services.notifications import order_access_token
from core.services.portal import OrderNotFound, reveal_order_key, view_order
from tests.factories import fresh, make_keys, make_order, make_product


def test_no_reveal_before_consent_then_consent_once_audited(session, queued_jobs):
    product = make_product(session)
    [key] = make_keys(session, product, 1, codes=["CONSE-NTFIR-STKEY"])
    order = make_order(session, [(product, 1)])
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    token = order_access_token(order.number)
    assert not view_order(number=order.number, access_token=token).consent_given
    with pytest.raises(ConsentRequired) as err:
        reveal_order_key(number=order.number, key_id=str(key.id), access_token=token)
    assert err.value.http_status == 409

    with pytest.raises(OrderNotFound):
        give_consent(number=order.number, access_token="forged")
    first = give_consent(
        number=order.number, access_token=token, ip="198.51.100.4", user_agent="Firefox/140"
    )
    again = give_consent(number=order.number, access_token=token, ip="198.51.100.9")
    assert again == first
    assert fresh(session).get(Order, order.id).delivery_consent_at == first
    [event] = (
        fresh(session)
        .exec(select(AuditEvent).where(AuditEvent.action == "order.delivery_consent"))
        .all()
    )
    assert (event.object_id, event.ip, event.user_agent) == (
        order.number, "198.51.100.4", "Firefox/140"
    )  # fmt: skip
    assert event.data["text"] == CONSENT_TEXT and event.created_at is not None
    assert view_order(number=order.number, access_token=token).consent_given
    shown = reveal_order_key(number=order.number, key_id=str(key.id), access_token=token)
    assert shown.code == "CONSE-NTFIR-STKEY"
