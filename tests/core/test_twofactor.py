"""Two-factor sign-in with TOTP and recovery codes (core.services.twofactor), asked at
sign-in and again for every key reveal of the account's orders. The clock is the test's."""

from __future__ import annotations

import uuid

import pyotp
import pytest
from sqlalchemy import text
from sqlmodel import select

from core.models import AuditEvent, Customer, RecoveryCode, utcnow
from core.services import twofactor
from core.services.accounts import create_account, sign_in
from core.services.fulfilment import fulfil_order
from core.services.portal import reveal_order_key
from core.services.ratelimit import RateLimited
from core.services.twofactor import (
    InvalidSecondFactor,
    SecondFactorRequired,
    confirm_totp,
    disable_totp,
    start_totp,
    verify_second_factor,
)
from tests.factories import fresh, make_keys, make_order, make_product

PASSWORD = "correct horse battery"
T0 = 1_800_000_000.0  # a step boundary (divisible by 30)


@pytest.fixture(autouse=True)
def clock(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")
    now = {"t": T0}
    monkeypatch.setattr(twofactor, "now", lambda: now["t"])
    return now


def enrolled():
    email = f"tfa-{uuid.uuid4().hex[:8]}@example.com"
    account = create_account(email=email, password=PASSWORD)
    enrolment = start_totp(customer_id=account.customer_id)
    totp = pyotp.TOTP(enrolment.secret)
    codes = confirm_totp(customer_id=account.customer_id, code=totp.at(T0))
    return account, email, totp, codes


def test_enrolment_shows_a_qr_code_and_needs_a_working_code(session):
    account = create_account(email=f"tfa-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    enrolment = start_totp(customer_id=account.customer_id)
    assert enrolment.uri.startswith("otpauth://totp/keyshop:") and "<svg" in enrolment.qr_svg
    assert enrolment.secret not in repr(enrolment)
    with pytest.raises(InvalidSecondFactor):
        confirm_totp(customer_id=account.customer_id, code="000000")
    assert not fresh(session).get(Customer, account.customer_id).totp_enabled_at
    # the secret is stored encrypted, never as text
    row = fresh(session).get(Customer, account.customer_id)
    assert enrolment.secret.encode() not in row.totp_secret
    codes = confirm_totp(customer_id=account.customer_id, code=pyotp.TOTP(enrolment.secret).at(T0))
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = fresh(session).exec(select(RecoveryCode)).all()
    dump = " ".join(str(r.code_hash) for r in stored)
    assert all(c not in dump and c.replace("-", "") not in dump for c in codes)


def test_sign_in_needs_the_code_after_the_password(session, clock):
    account, email, totp, _ = enrolled()
    with pytest.raises(SecondFactorRequired):
        sign_in(email=email, password=PASSWORD)
    with pytest.raises(InvalidSecondFactor):
        sign_in(email=email, password=PASSWORD, code="123456")
    clock["t"] = T0 + 30
    assert sign_in(email=email, password=PASSWORD, code=totp.at(T0 + 30)).customer_id == (
        account.customer_id
    )
    # the same code again (a replay) is refused, and so is an older one
    with pytest.raises(InvalidSecondFactor):
        sign_in(email=email, password=PASSWORD, code=totp.at(T0 + 30))
    with pytest.raises(InvalidSecondFactor):
        sign_in(email=email, password=PASSWORD, code=totp.at(T0))
    # clock drift of one step either way is accepted
    clock["t"] = T0 + 90
    assert sign_in(email=email, password=PASSWORD, code=totp.at(T0 + 120))


def test_a_recovery_code_works_once(session):
    _account, email, _, codes = enrolled()
    assert sign_in(email=email, password=PASSWORD, code=codes[0].upper())
    with pytest.raises(InvalidSecondFactor):
        sign_in(email=email, password=PASSWORD, code=codes[0])
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.recovery_code_used")
    ).one()


def test_code_attempts_are_rate_limited(session):
    account, _email, totp, _ = enrolled()
    for n in range(twofactor.ATTEMPT_LIMIT[1] - 1):  # the enrolment's code was one attempt
        with pytest.raises(InvalidSecondFactor):
            verify_second_factor(customer_id=account.customer_id, code=f"{n:06d}")
    with pytest.raises(RateLimited):
        verify_second_factor(customer_id=account.customer_id, code=totp.at(T0 + 30))


def test_every_reveal_of_the_accounts_orders_needs_a_code(session, clock, queued_jobs):
    account, _email, totp, _ = enrolled()
    product = make_product(session)
    make_keys(session, product, 1, codes=["REVEA-LMEON-LYWIT"])
    order = make_order(
        session,
        [(product, 1)],
        status="paid",
        customer_id=account.customer_id,
        delivery_consent_at=utcnow(),
    )
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    from core.db import session_scope
    from core.services.notifications import order_access_token
    from core.services.portal import open_order, order_view

    with session_scope(write=False) as s:
        view = order_view(
            session=s,
            order=open_order(session=s, number=order.number, customer_id=account.customer_id),
        )
    key_id = str(view.lines[0].keys[0].id)
    for how in (
        {"customer_id": account.customer_id},
        {"access_token": order_access_token(order.number)},
    ):
        with pytest.raises(SecondFactorRequired):
            reveal_order_key(number=order.number, key_id=key_id, **how)
    clock["t"] = T0 + 60
    shown = reveal_order_key(
        number=order.number, key_id=key_id, customer_id=account.customer_id,
        second_factor=totp.at(T0 + 60),
    )  # fmt: skip
    assert shown.code == "REVEA-LMEON-LYWIT"


def test_turning_it_off_needs_a_code(session, clock):
    account, email, totp, _ = enrolled()
    with pytest.raises(SecondFactorRequired):
        disable_totp(customer_id=account.customer_id, code="")
    clock["t"] = T0 + 30
    disable_totp(customer_id=account.customer_id, code=totp.at(T0 + 30))
    assert sign_in(email=email, password=PASSWORD)
    assert (
        fresh(session).execute(text("SELECT COUNT(*) FROM customer_recovery_codes")).scalar() == 0
    )
