"""``keyshop promo`` (issue #18 item 5): an operator creates codes, generates single-use
codes in bulk to a CSV file, pauses and resumes them, and reads their usage; ``keyshop
report discounts`` says what codes took off per currency. Every change is audited."""

from __future__ import annotations

import csv

from sqlmodel import select

from core.models import AuditEvent, Order, PromoCode, utcnow
from core.services.audit import Actor
from core.services.checkout import CartLine, place_order
from core.services.orders import transition_order
from tests.factories import fresh, make_keys, make_product
from tests.support.cli import invoke, keyshop


def test_promo_commands(test_settings, session, tmp_path, monkeypatch) -> None:
    def run(*args: str):
        return invoke(monkeypatch, test_settings, *args)

    # the one real subprocess: the group is wired into `keyshop`
    made = keyshop(test_settings, tmp_path, "promo", "create", "summer10", "--percent", "10",
                   "--max-uses", "50", "--operator", "olga")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "promo code SUMMER10 created"

    game = make_product(session, price_minor=2000)
    make_keys(session, game, 3)
    fixed = run("promo", "create", "STEAM5", "--amount", "EUR=5,USD=5.50", "--scope", "platforms",
                "--only", "Steam", "--minimum", "EUR=10", "--ends", "2099-01-01")  # fmt: skip
    assert fixed.exit_code == 0, fixed.stderr
    bad = run("promo", "create", "BAD", "--percent", "10", "--amount", "EUR=1")
    assert bad.exit_code == 1 and "a percent or fixed amounts, not both" in bad.stderr
    bad_date = run("promo", "create", "BADDATE", "--percent", "10", "--ends", "soon")
    assert bad_date.exit_code == 1 and "--ends: a date or time" in bad_date.stderr

    out = tmp_path / "influencers.csv"
    generated = run("promo", "generate", "--count", "1000", "--prefix", "anna", "--percent", "15",
                    "--csv", str(out))  # fmt: skip
    assert generated.exit_code == 0, generated.stderr
    assert f"1000 single-use codes (campaign ANNA) written to {out}" in generated.stdout
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1000 and len({r["code"] for r in rows}) == 1000
    assert rows[0]["campaign"] == "ANNA" and rows[0]["value"] == "15 %"
    assert (
        fresh(session)
        .exec(select(PromoCode).where(PromoCode.code == rows[0]["code"]))
        .one()
        .max_uses
        == 1
    )
    again = run("promo", "generate", "--count", "5", "--percent", "5", "--csv", str(out))
    assert again.exit_code == 1 and "exists" in again.stderr

    listed = run("promo", "list", "-q", "STEAM").stdout.splitlines()
    assert listed == ["STEAM5\t5.00 EUR, 5.50 USD\tplatforms\t0/-\tactive\t..2099-01-01\t"]

    assert run("promo", "pause", "--campaign", "ANNA").stdout.strip() == "1000 code(s) paused"
    assert run("promo", "pause", "steam5").stdout.strip() == "1 code(s) paused"
    assert run("promo", "resume", "STEAM5").stdout.strip() == "1 code(s) resumed"
    assert run("promo", "pause", "NOSUCH").exit_code == 1

    placed = place_order(email="a@example.com", lines=[CartLine(game.slug, 1)], promo_code="STEAM5")
    s = fresh(session)
    oid = s.exec(select(Order.id).where(Order.number == placed.number)).one()
    transition_order(session=s, order_id=oid, to_status="paid", actor=Actor.system())
    s.commit()
    usage = run("promo", "usage", "steam5").stdout.splitlines()
    assert usage[0] == "STEAM5: 5.00 EUR, 5.50 USD, 1 use(s) of no limit, 0 given back"
    assert usage[1] == "discount given: 5.00 EUR"
    assert f"\t{placed.number}\tpaid\ta@example.com\t-5.00 EUR" in usage[2]

    today = utcnow().date().isoformat()
    report = run("report", "discounts", "--from", today, "--to", today).stdout.splitlines()
    assert report == [
        "currency\tcurrency\torders\tdiscount\tpaid",
        "EUR\tEUR\t1\t5.00 EUR\t15.00 EUR",
    ]
    by_code = run("report", "discounts", "--from", today, "--to", today, "--by", "code")
    assert by_code.stdout.splitlines()[1] == "STEAM5\tEUR\t1\t5.00 EUR\t15.00 EUR"

    actions = (
        fresh(session)
        .exec(
            select(AuditEvent.action)
            .where(AuditEvent.action.startswith("promo."))
            .order_by(AuditEvent.id)
        )
        .all()
    )
    assert actions == ["promo.create", "promo.create", "promo.generate", "promo.pause",
                       "promo.pause", "promo.resume"]  # fmt: skip
