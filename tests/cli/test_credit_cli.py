"""``keyshop giftcard`` and ``keyshop credit``: an operator issues, adjusts, voids and
looks up gift cards, adjusts a customer's credit and reads what is outstanding."""

from __future__ import annotations

from sqlmodel import select

from core.models import AuditEvent, Customer
from tests.factories import fresh
from tests.support.cli import invoke, keyshop


def test_gift_card_and_credit_commands(test_settings, session, tmp_path, monkeypatch) -> None:
    def run(*args: str):
        return invoke(monkeypatch, test_settings, *args)

    # the one real subprocess: the commands are wired into `keyshop`
    issued = keyshop(
        test_settings, tmp_path, "giftcard", "issue", "25", "--note", "launch", "--operator", "olga"
    )
    assert issued.returncode == 0, issued.stderr
    code = issued.stdout.strip()
    assert code.startswith("GC-") and "25.00 EUR" in issued.stderr
    assert code not in issued.stderr
    balance = run("giftcard", "balance", code.lower())
    assert balance.exit_code == 0 and "25.00 EUR\tof 25.00 EUR\tactive" in balance.stdout
    adjusted = run("giftcard", "adjust", "1", "-5", "--note", "used in store", "--key", "a1")
    assert "balance 20.00 EUR" in adjusted.stdout
    again = run("giftcard", "adjust", "1", "-5", "--note", "used in store", "--key", "a1")
    assert "nothing moved" in again.stdout and "balance 20.00 EUR" in again.stdout
    too_much = run("giftcard", "adjust", "1", "-21", "--note", "oops")
    assert too_much.exit_code != 0 and "less than" in too_much.stderr
    assert "20.00 EUR" in run("giftcard", "list").stdout
    voided = run("giftcard", "void", "1", "--note", "fraud")
    assert voided.exit_code == 0 and "20.00 EUR taken off" in voided.stdout
    history = run("giftcard", "history", "1").stdout.splitlines()
    assert [h.split("\t")[1] for h in history] == [
        "Gift card issued",
        "Gift card adjusted by the shop",
        "Gift card voided",
    ]
    assert run("giftcard", "balance", "GC-nonsense").exit_code != 0

    session.add(Customer(email="ana@example.com"))
    session.commit()
    gave = run("credit", "adjust", "ana@example.com", "12.50", "--note", "sorry for the wait")
    assert gave.exit_code == 0 and "credit 12.50 EUR" in gave.stdout
    assert run("credit", "adjust", "ana@example.com", "1", "--note", "").exit_code != 0
    shown = run("credit", "show", "ana@example.com").stdout
    assert "balance\t12.50 EUR" in shown and "sorry for the wait" in shown
    report = run("credit", "outstanding").stdout.splitlines()
    assert report[1] == "EUR\t12.50 EUR\t0.00 EUR\t12.50 EUR"
    from tests.factories import make_product

    make_product(session, slug="gift-card-25", title="Gift card €25", price_minor=2500)
    stocked = run("giftcard", "stock", "gift-card-25", "--count", "3")
    assert stocked.exit_code == 0 and "3 gift card(s) added" in stocked.stdout
    assert run("giftcard", "stock", "no-such-product", "--count", "3").exit_code != 0
    actions = fresh(session).exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == [
        "giftcard.issue",
        "giftcard.adjust",
        "giftcard.void",
        "credit.adjust",
        "giftcard.stock",
    ]


def test_referral_link_and_pay_commands(test_settings, session, monkeypatch) -> None:
    from core.db import session_scope
    from core.services import referrals

    def run(*args: str):
        return invoke(monkeypatch, test_settings, *args)

    for email in ("ana@gmail.com", "bob@gmail.com"):
        session.add(Customer(email=email))
    session.commit()
    with session_scope() as s:
        referrals.record_referral(session=s, code=referrals.referral_code(1), referred_id=2)
    shown = run("referrals", "link", "ana@gmail.com").stdout.splitlines()
    assert shown[0].endswith(f"/signup?ref={referrals.referral_code(1)}")
    assert shown[1].endswith("bo…@gmail.com\twaiting for their first order to be kept")
    paid = run("referrals", "pay")
    assert paid.exit_code == 0
    assert paid.stdout == "0 referral(s) rewarded, 0 voided, 0 order(s) given cashback\n"
    made = run(
        "referrals",
        "cashback",
        "winter",
        "--percent",
        "5",
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-01",
    )
    assert made.exit_code == 0 and "winter: 5% created" in made.stdout
    again = run(
        "referrals",
        "cashback",
        "winter",
        "--percent",
        "5",
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-01",
    )
    assert again.exit_code != 0 and "already a campaign" in again.stderr
    assert run("referrals", "link", "nobody@example.com").exit_code != 0
