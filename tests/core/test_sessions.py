"""A customer's sessions: listed, ended one by one, or all at once (core.services.sessions)."""

from __future__ import annotations

import uuid

import pytest

from core.services.accounts import create_account, customer_for_token, sign_in
from core.services.sessions import (
    UnknownSession,
    end_session,
    list_sessions,
    sign_out_everywhere,
)

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")


def account():
    email = f"s-{uuid.uuid4().hex[:8]}@example.com"
    first = create_account(email=email, password=PASSWORD, ip="203.0.113.1", user_agent="Firefox")
    second = sign_in(email=email, password=PASSWORD, ip="198.51.100.2", user_agent="Phone")
    return first, second


def test_sessions_are_listed_with_the_current_one_marked(session):
    first, second = account()
    listed = list_sessions(customer_id=first.customer_id, current_token=second.token)
    assert {(s.ip, s.user_agent, s.current) for s in listed} == {
        ("203.0.113.1", "Firefox", False),
        ("198.51.100.2", "Phone", True),
    }
    assert first.token not in repr(listed) and second.token not in repr(listed)


def test_ending_one_session_signs_that_browser_out_only(session):
    first, second = account()
    phone = next(s for s in list_sessions(customer_id=first.customer_id) if s.user_agent == "Phone")
    end_session(customer_id=first.customer_id, session_id=phone.id)
    assert customer_for_token(token=second.token) is None
    assert customer_for_token(token=first.token) is not None
    with pytest.raises(UnknownSession):
        end_session(customer_id=first.customer_id, session_id=phone.id)


def test_nobody_ends_another_customers_session(session):
    alice, _ = account()
    bob, _ = account()
    [bobs, *_] = list_sessions(customer_id=bob.customer_id)
    with pytest.raises(UnknownSession):
        end_session(customer_id=alice.customer_id, session_id=bobs.id)
    assert customer_for_token(token=bob.token) is not None


def test_sign_out_everywhere(session):
    first, second = account()
    other, _ = account()
    assert sign_out_everywhere(customer_id=first.customer_id) == 2
    assert customer_for_token(token=first.token) is None
    assert customer_for_token(token=second.token) is None
    assert list_sessions(customer_id=first.customer_id) == []
    assert customer_for_token(token=other.token) is not None  # someone else's untouched
