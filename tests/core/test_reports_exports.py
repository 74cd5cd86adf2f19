"""Margin you can see (each delivered key's sale price and cost, grouped) and streamed
CSV exports with keys masked and formula cells neutralised."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import UTC, date, datetime

import pytest

from core.errors import InvalidInput
from core.models import (
    AuditEvent,
    KeyStatus,
    OrderStatus,
    PromoCode,
    PromoKind,
    PromoRedemption,
    ProviderPurchase,
)
from core.services.exports import KEY_MASK, export_to_file, write_export
from core.services.reports import sales
from tests.factories import make_keys, make_order, make_product, order_lines


def deliver(session, product, order, count, *, day, cost=None, supplier=None, purchase=None):
    [line] = order_lines(session, order)
    return make_keys(
        session,
        product,
        count,
        status=KeyStatus.DELIVERED,
        order_line_id=line.id,
        delivered_at=datetime(2026, 11, day, 12, tzinfo=UTC),
        cost_minor=cost,
        cost_currency="EUR" if cost is not None else None,
        supplier=supplier,
        provider_purchase_id=purchase,
    )


@pytest.fixture
def shop(session):
    own = make_product(session, slug="own", title="Own", price_minor=2000, platform="Steam")
    bought = make_product(session, slug="bought", title="Bought", price_minor=1500, platform="GOG")
    yen = make_product(session, slug="yen", title="Yen", price_minor=1200, currency="JPY")
    first = make_order(session, [(own, 2)], status=OrderStatus.FULFILLED)
    deliver(session, own, first, 2, day=3, cost=1200, supplier="Acme")
    second = make_order(session, [(bought, 1)], status=OrderStatus.FULFILLED)
    [line] = order_lines(session, second)
    purchase = ProviderPurchase(
        order_line_id=line.id, provider="kinguin", reference="r-1", quantity=1, currency="EUR"
    )
    session.add(purchase)
    session.commit()
    deliver(session, bought, second, 1, day=4, cost=1300, supplier="kinguin", purchase=purchase.id)
    third = make_order(session, [(yen, 1)], status=OrderStatus.FULFILLED)
    deliver(session, yen, third, 1, day=4)  # cost unknown
    refunded = make_order(session, [(own, 1)], status=OrderStatus.REFUNDED)
    deliver(session, own, refunded, 1, day=4, cost=1200)
    return session


def test_sales_by_day_source_and_provider(shop):
    rows = sales(session=shop, start=date(2026, 11, 1), end=date(2026, 11, 30), by="day")
    assert [(r.group, r.currency, r.count, r.revenue_minor, r.cost_minor, r.cost_unknown)
            for r in rows] == [
        ("2026-11-03", "EUR", 2, 4000, 2400, 0),
        ("2026-11-04", "EUR", 1, 1500, 1300, 0),
        ("2026-11-04", "JPY", 1, 1200, 0, 1),
    ]  # fmt: skip
    assert rows[0].margin_minor == 1600 and rows[0].margin_percent == 40.0
    by_source = sales(session=shop, start=date(2026, 11, 1), end=date(2026, 11, 30), by="source")
    assert [(r.group, r.currency, r.count) for r in by_source] == [
        ("provider", "EUR", 1),
        ("stock", "EUR", 2),
        ("stock", "JPY", 1),
    ]
    by_provider = sales(
        session=shop, start=date(2026, 11, 1), end=date(2026, 11, 30), by="provider"
    )
    assert {r.group for r in by_provider} == {"Acme", "kinguin", "own stock"}
    assert (
        sales(session=shop, start=date(2026, 11, 4), end=date(2026, 11, 4), by="month")[0].group
        == "2026-11"
    )
    with pytest.raises(InvalidInput):
        sales(session=shop, start=date(2026, 11, 4), end=date(2026, 11, 1))


def test_revenue_is_what_the_customer_paid_net_of_discounts_and_partial_refunds(session):
    """Three keys at 10.00 with 1.00 off by a code and 2.50 refunded later: 26.50 of
    revenue, shared between the keys in proportion to their price, to the minor unit,
    whichever days they were delivered on."""
    game = make_product(session, slug="net", title="Net", price_minor=1000)
    order = make_order(
        session, [(game, 3)], status=OrderStatus.FULFILLED, discount_minor=100, refunded_minor=250
    )
    order.total_minor = 2900
    session.add(order)
    session.commit()
    deliver(session, game, order, 2, day=5, cost=600)
    deliver(session, game, order, 1, day=6, cost=600)
    rows = sales(session=session, start=date(2026, 11, 1), end=date(2026, 11, 30), by="day")
    assert [(r.group, r.count, r.revenue_minor, r.cost_minor) for r in rows] == [
        ("2026-11-05", 2, 1766, 1200),
        ("2026-11-06", 1, 884, 600),
    ]
    [whole] = sales(session=session, start=date(2026, 11, 1), end=date(2026, 11, 30), by="product")
    assert (whole.revenue_minor, whole.margin_minor) == (2650, 850)


def test_a_faulty_key_and_its_replacement_share_what_the_customer_paid_once(session):
    game = make_product(session, slug="twice", title="Twice", price_minor=1000)
    order = make_order(session, [(game, 1)], status=OrderStatus.FULFILLED)
    [faulty] = deliver(session, game, order, 1, day=5, cost=600)
    faulty.status = KeyStatus.FAULTY
    session.add(faulty)
    session.commit()
    deliver(session, game, order, 1, day=6, cost=600)  # the replacement
    rows = sales(session=session, start=date(2026, 11, 1), end=date(2026, 11, 30), by="day")
    assert [(r.group, r.count, r.revenue_minor, r.cost_minor) for r in rows] == [
        ("2026-11-05", 1, 500, 600),
        ("2026-11-06", 1, 500, 600),
    ]


def test_orders_export_has_discount_codes_refunds_country_and_vat(session):
    """An accountant's row per order: subtotal, what promo codes took off and which
    codes, the total, what was refunded, the buyer's country and the VAT the total
    contains."""
    game = make_product(session, slug="game", title="Game", price_minor=5000)
    order = make_order(
        session,
        [(game, 1)],
        status=OrderStatus.FULFILLED,
        discount_minor=750,
        refunded_minor=1000,
        country="DE",
        vat_rate_bp=1900,
        vat_minor=679,
        created_at=datetime(2026, 11, 3, 10, tzinfo=UTC),
    )
    order.total_minor = 4250  # subtotal - discount
    promo = PromoCode(code="AUTUMN", kind=PromoKind.PERCENT, percent_bp=1000)
    session.add(promo)
    session.flush()
    for code, minor in (("WELCOME", 250), ("AUTUMN", 500)):
        session.add(
            PromoRedemption(
                promo_id=promo.id, order_id=order.id, code=code, email=order.email,
                currency="EUR", discount_minor=minor,
            )
        )  # fmt: skip
    session.commit()
    out = io.StringIO()
    assert write_export("orders", start=date(2026, 11, 1), end=date(2026, 11, 30), out=out) == 1
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (
        row["subtotal"],
        row["discount"],
        row["promo_codes"],
        row["total"],
        row["refunded"],
    ) == ("50.00", "7.50", "AUTUMN WELCOME", "42.50", "10.00")
    assert (row["country"], row["vat_rate_percent"], row["vat"]) == ("DE", "19.00", "6.79")


def test_keys_export_masks_codes_and_streams(shop, tmp_path):
    path = tmp_path / "keys.csv"
    assert export_to_file("keys", start=date(2026, 1, 1), end=date(2027, 12, 31), path=path) == 5
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert {r["code"] for r in rows} == {KEY_MASK}
    assert all(len(r["fingerprint"]) == 64 for r in rows)
    assert not list(tmp_path.glob(".*partial"))


def test_formula_cells_are_neutralised(session):
    session.add(
        AuditEvent(
            actor_type="operator", actor_id="=HYPERLINK(\"http://x\")", action="+sum",
            object_type="-1", object_id="@x", data={},
        )
    )  # fmt: skip
    session.commit()
    out = io.StringIO()
    write_export("audit", start=date(2026, 1, 1), end=date(2027, 12, 31), out=out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["actor_id"].startswith("'=") and row["action"] == "'+sum"
    assert row["object_type"] == "'-1" and row["object_id"] == "'@x"


def test_export_memory_does_not_grow_with_rows(session):
    rows = [
        AuditEvent(actor_type="system", actor_id="bench", action="x", object_type="t",
                   object_id=str(i), data={"n": i})
        for i in range(6000)
    ]  # fmt: skip
    session.add_all(rows)
    session.commit()

    class Sink(io.TextIOBase):
        def write(self, text: str) -> int:
            return len(text)

    tracemalloc.start()
    write_export("audit", start=date(2026, 1, 1), end=date(2027, 12, 31), out=Sink())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a batch of 2,000 rows, not 6,000: well under what holding every row would take
    assert peak < 8 * 1024 * 1024
