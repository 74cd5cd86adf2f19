"""Referrals (issue #18 part 4): a customer referred through a link; after the first
paid order has stayed paid for the hold, both get store credit, once; self-referrals,
shared company domains and loops are refused with a reason; a refunded first order
voids the referral."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.db import session_scope
from core.errors import InvalidInput
from core.models import Customer, Order, Referral, utcnow
from core.services import credit, referrals
from tests.factories import make_order, make_product


@pytest.fixture
def rewards(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "referral_reward", "EUR:5,USD:6")
    monkeypatch.setattr(test_settings, "referral_hold_days", 14)
    return test_settings


def customer(session, email: str) -> int:
    row = Customer(email=email)
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id


def refer(referrer: int, referred: int, code: str | None = None) -> Referral:
    with session_scope() as s:
        return referrals.record_referral(
            session=s,
            code=referrals.referral_code(referrer) if code is None else code,
            referred_id=referred,
        )


def pay_due() -> referrals.Payout:
    return referrals.pay_due()


def decided() -> tuple[int, int]:
    """(referrals rewarded, voided) by one run of the hourly payout."""
    payout = pay_due()
    return payout.rewarded, payout.voided


def balance(customer_id: int) -> int:
    return credit.balance_in(customer_id=customer_id, currency="EUR")


def paid_order(session, customer_id: int, *, days_ago: float, status: str = "fulfilled") -> Order:
    order = make_order(session, [(make_product(session, price_minor=3000), 1)], status=status)
    order.customer_id = customer_id
    order.paid_at = utcnow() - timedelta(days=days_ago)
    session.add(order)
    session.commit()
    return order


def test_both_get_credit_once_after_the_hold(session, rewards):
    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    assert refer(ana, bob).status == "pending"
    assert decided() == (0, 0)  # no order yet
    order = paid_order(session, bob, days_ago=3)
    assert decided() == (0, 0)  # still in the hold
    order.paid_at = utcnow() - timedelta(days=15)
    session.add(order)
    session.commit()
    assert decided() == (1, 0)
    assert (balance(ana), balance(bob)) == (500, 500)
    assert decided() == (0, 0)  # decided: nothing moves twice
    assert (balance(ana), balance(bob)) == (500, 500)
    with session_scope(write=False) as s:
        [line] = credit.customer_history(s, customer_id=ana)
    assert line.reason == "referral_reward" and order.number in line.note


def test_a_percent_reward_is_of_the_first_order(session, rewards, monkeypatch):
    monkeypatch.setattr(rewards, "referral_reward", "10%")
    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    refer(ana, bob)
    paid_order(session, bob, days_ago=20)
    pay_due()
    assert (balance(ana), balance(bob)) == (300, 300)


def test_a_refunded_first_order_voids_the_referral(session, rewards):
    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    refer(ana, bob)
    paid_order(session, bob, days_ago=20, status="refunded")
    assert decided() == (0, 1)
    assert (balance(ana), balance(bob)) == (0, 0)
    with session_scope(write=False) as s:
        assert s.exec(select(Referral.status)).one() == "void"


@pytest.mark.parametrize(
    ("referrer_email", "referred_email", "why"),
    [
        ("ana@acme.com", "bob@acme.com", "same e-mail domain"),
        ("ana@gmail.com", "a.na+promo@googlemail.com", "same mailbox"),
    ],
)
def test_shared_domains_and_mailboxes_are_refused_with_a_reason(
    session, rewards, referrer_email, referred_email, why
):
    ana, bob = customer(session, referrer_email), customer(session, referred_email)
    referral = refer(ana, bob)
    assert referral.status == "refused" and why in referral.reason
    paid_order(session, bob, days_ago=20)
    assert decided() == (0, 0) and balance(ana) == 0


def test_self_referral_forged_links_and_second_links_are_refused(session, rewards):
    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    assert "its own account" in refer(ana, ana).reason
    refer(ana, bob)
    carl = customer(session, "carl@gmail.com")
    with pytest.raises(InvalidInput, match="already referred"):
        refer(carl, bob)
    for forged in ("1-0000000000", "abc", "", f"{ana}-{'f' * 10}"):
        with pytest.raises(InvalidInput, match="not valid"):
            refer(ana, carl, code=forged)


def test_a_loop_is_refused(session, rewards):
    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    refer(ana, bob)
    # bob's link used by the customer who referred him closes a loop
    with session_scope() as s:
        referred_by = s.exec(select(Referral.referrer_id).where(Referral.referred_id == bob)).one()
        assert referred_by == ana
        ana_row, bob_row = s.get(Customer, ana), s.get(Customer, bob)
        assert "loop" in referrals.refusal(bob_row, ana_row, referrer_referred_by=ana)


# -- cashback ----------------------------------------------------------------------------------


def test_cashback_credits_kept_orders_in_the_campaign_once(session, rewards):
    from core.services.audit import Actor

    ana = customer(session, "ana@gmail.com")
    now = utcnow()
    with session_scope() as s:
        referrals.create_campaign(
            session=s,
            name="autumn",
            percent="5",
            starts_at=now - timedelta(days=60),
            ends_at=now - timedelta(days=20),
            actor=Actor.operator("olga"),
        )
    kept = paid_order(session, ana, days_ago=30)  # 3000 → 150
    paid_order(session, ana, days_ago=25, status="refunded")  # not kept
    paid_order(session, ana, days_ago=10)  # after the campaign
    guest = paid_order(session, ana, days_ago=40)
    guest.customer_id = None
    session.add(guest)
    session.commit()
    assert pay_due().cashback == 1
    assert pay_due().cashback == 0
    with session_scope(write=False) as s:
        [line] = credit.customer_history(s, customer_id=ana)
    assert (line.reason, line.amount_minor) == ("cashback", 150) and kept.number in line.note


@pytest.mark.parametrize(
    ("name", "percent", "days", "message"),
    [
        ("", "5", 10, "name"),
        ("x", "0", 10, "0.01 to 50"),
        ("x", "51", 10, "0.01 to 50"),
        ("x", "1.234", 10, "0.01 to 50"),
        ("x", "five", 10, "not a percent"),
        ("x", "5", -1, "ends after"),
    ],
)
def test_bad_campaigns_are_refused(session, name, percent, days, message):
    from core.models import CashbackCampaign
    from core.services.audit import Actor

    now = utcnow()
    with pytest.raises(InvalidInput, match=message), session_scope() as s:
        referrals.create_campaign(
            session=s,
            name=name,
            percent=percent,
            starts_at=now,
            ends_at=now + timedelta(days=days),
            actor=Actor.operator("olga"),
        )
    with session_scope(write=False) as s:
        assert s.exec(select(CashbackCampaign)).all() == []
