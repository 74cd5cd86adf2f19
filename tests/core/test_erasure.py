"""Account deletion erases what identifies the customer and keeps orders and the audit
trail (core.services.erasure)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.models import AuditEvent, Customer, CustomerSession, Order
from core.services.accounts import (
    InvalidCredentials,
    create_account,
    customer_for_token,
    sign_in,
)
from core.services.erasure import delete_account, erased_email
from core.services.ratelimit import RateLimited
from tests.factories import fresh, make_order, make_product

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")


def test_deletion_erases_the_person_and_keeps_orders_and_audit(session):
    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    signed = create_account(
        email=email, password=PASSWORD, display_name="Greta Gone", ip="203.0.113.9",
        user_agent="Firefox",
    )  # fmt: skip
    product = make_product(session)
    order = make_order(session, [(product, 1)], email=email, customer_id=signed.customer_id)
    assert delete_account(customer_id=signed.customer_id, password=PASSWORD) == 1

    s = fresh(session)
    row = s.get(Customer, signed.customer_id)
    assert row.email == erased_email(signed.customer_id)
    assert (row.password_hash, row.display_name, row.verified_at) == (None, "", None)
    assert s.exec(select(CustomerSession)).all() == []  # with their addresses and browsers
    assert customer_for_token(token=signed.token) is None
    with pytest.raises(InvalidCredentials):
        sign_in(email=email, password=PASSWORD)
    # kept: the order with its e-mail (sales records), the audit trail
    kept = s.get(Order, order.id)
    assert kept.email == email and kept.customer_id == signed.customer_id
    actions = [e.action for e in s.exec(select(AuditEvent)).all()]
    assert "customer.signed_up" in actions and "customer.deleted" in actions
    # nothing else in the customer tables still names the person
    dump = " ".join(str(r) for r in s.execute(text("SELECT * FROM customers")).all()) + " ".join(
        str(r) for r in s.execute(text("SELECT * FROM customer_sessions")).all()
    )
    assert email not in dump and "Greta" not in dump and "203.0.113.9" not in dump
    # and the address can make a new account
    again = create_account(email=email, password=PASSWORD)
    assert again.customer_id != signed.customer_id


def test_deletion_needs_the_password_and_is_rate_limited(session):
    signed = create_account(email=f"keep-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            delete_account(customer_id=signed.customer_id, password="not my password 1")
    with pytest.raises(RateLimited):
        delete_account(customer_id=signed.customer_id, password=PASSWORD)
    assert customer_for_token(token=signed.token) is not None  # nothing was erased
