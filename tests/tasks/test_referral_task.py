"""The hourly referral task pays what is due, once (issue #18 part 4)."""

from __future__ import annotations

from tests.core.test_referrals import balance, customer, paid_order, refer, rewards  # noqa: F401


def test_the_hourly_task_pays_what_is_due(session, rewards):  # noqa: F811
    from tasks.jobs import pay_referrals

    ana, bob = customer(session, "ana@gmail.com"), customer(session, "bob@gmail.com")
    refer(ana, bob)
    paid_order(session, bob, days_ago=30)
    assert pay_referrals.call_local() == "1 referrals rewarded, 0 voided, 0 orders given cashback"
    assert pay_referrals.call_local() == "0 referrals rewarded, 0 voided, 0 orders given cashback"
    assert balance(bob) == 500
