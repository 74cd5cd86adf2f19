"""Promo codes (issue #18 item 1): percent or fixed per currency, scoped, with a minimum,
start and end, total and per-customer limits, stacking and the cost floor; checkout keeps
the code and each line's discount; a cancelled or expired order gives its use back, a
refund does not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.errors import InvalidInput
from core.models import (
    AuditEvent,
    Order,
    OrderLine,
    PricingRule,
    PromoCode,
    PromoRedemption,
    ProviderOffer,
    utcnow,
)
from core.services.audit import Actor
from core.services.checkout import CartLine, place_order
from core.services.maintenance import expire_unpaid_orders
from core.services.operator.promos import (
    DuplicatePromo,
    PromoInput,
    create_promo,
    generate_codes,
    promo_usage,
    set_paused,
)
from core.services.orders import get_order_by_number, transition_order
from core.services.promos import PromoRejected, discounts, parse_codes
from tests.factories import fresh, make_keys, make_product

OWNER = Actor.operator("owner")


def promo(code: str, **kw) -> str:
    return create_promo(data=PromoInput(code=code, **kw), actor=OWNER)


def game(session, *, price=2000, keys=5, **kw):
    product = make_product(session, price_minor=price, **kw)
    make_keys(session, product, keys)
    return product


def order(session, number: str) -> Order:
    return get_order_by_number(session=fresh(session), number=number)


def lines_of(session, order_id: int) -> list[OrderLine]:
    return list(fresh(session).exec(select(OrderLine).where(OrderLine.order_id == order_id)))


def test_a_percent_code_takes_its_share_off_each_line_and_the_order_keeps_it(session):
    a, b = game(session, price=2000), game(session, price=999)
    promo("SUMMER10", percent="10")
    placed = place_order(
        email="ann@example.com",
        lines=[CartLine(a.slug, 2), CartLine(b.slug, 1)],
        promo_code=" summer10 ",
    )
    o = order(session, placed.number)
    assert (o.subtotal_minor, o.discount_minor, o.total_minor) == (4999, 499, 4500)
    assert placed.total_minor == 4500
    by_product = {ln.product_id: ln.discount_minor for ln in lines_of(session, o.id)}
    assert by_product == {a.id: 400, b.id: 99}  # 10 % of 99.9 rounds down
    (redemption,) = fresh(session).exec(select(PromoRedemption)).all()
    assert (redemption.code, redemption.order_id, redemption.discount_minor) == (
        "SUMMER10",
        o.id,
        499,
    )
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1


def test_a_fixed_code_is_per_currency_and_shared_in_proportion(session):
    a, b = game(session, price=3000), game(session, price=1000)
    promo("FIVEOFF", amounts="EUR=5, USD=6")
    applied = discounts(
        session=session,
        lines=_priced([(a, 1), (b, 1)]),
        currency="EUR",
        codes=["FIVEOFF"],
        email="x@example.com",
    )
    assert applied.by_line == {a.id: 375, b.id: 125} and applied.total_minor == 500
    with pytest.raises(PromoRejected, match="cannot be used in GBP"):
        discounts(session=session, lines=_priced([(a, 1)]), currency="GBP",
                  codes=["FIVEOFF"], email="x@example.com")  # fmt: skip


def _priced(pairs):
    from core.services.promos import PricedLine

    return [PricedLine(p.id, p.price_minor, q) for p, q in pairs]


def test_scopes_products_platforms_and_genres(session):
    steam = game(session, platform="Steam", genre="RPG")
    xbox = game(session, platform="Xbox", genre="Racing")
    promo("STEAMY", percent="50", scope="platforms", scope_values=["steam"])
    promo("RACER", percent="50", scope="genres", scope_values=["Racing"])
    promo("ONLYXBOX", percent="50", scope="products", scope_values=[xbox.slug])
    both = _priced([(steam, 1), (xbox, 1)])
    kw = {"session": session, "lines": both, "currency": "EUR", "email": "x@example.com"}
    assert discounts(codes=["STEAMY"], **kw).by_line == {steam.id: 1000}
    assert discounts(codes=["RACER"], **kw).by_line == {xbox.id: 1000}
    assert discounts(codes=["ONLYXBOX"], **kw).by_line == {xbox.id: 1000}
    with pytest.raises(PromoRejected, match="does not apply to the products in your cart"):
        discounts(session=session, lines=_priced([(steam, 1)]), currency="EUR",
                  codes=["RACER"], email="x@example.com")  # fmt: skip


def test_clear_messages_for_each_reason_a_code_is_refused(session):
    g = game(session, price=1000)
    now = utcnow()
    promo("LATER", percent="10", starts_at=now + timedelta(days=2))
    promo("GONE", percent="10", ends_at=now - timedelta(minutes=1),
          starts_at=now - timedelta(days=3))  # fmt: skip
    promo("BIGSPEND", percent="10", minimum="EUR=50")
    promo("HUSH", percent="10")
    set_paused(code="HUSH", paused=True, actor=OWNER)
    promo("ONCE", percent="10", max_uses=1)
    place_order(email="first@example.com", lines=[CartLine(g.slug, 1)], promo_code="ONCE")
    kw = {"session": fresh(session), "lines": _priced([(g, 1)]), "currency": "EUR",
          "email": "b@example.com"}  # fmt: skip
    for code, words in [
        ("NOPE", "Promo code NOPE does not exist."),
        ("LATER", "Promo code LATER is not valid yet: it starts on"),
        ("GONE", "Promo code GONE has expired."),
        ("BIGSPEND", "Promo code BIGSPEND needs an order of at least €50.00."),
        ("HUSH", "Promo code HUSH is paused."),
        ("ONCE", "Promo code ONCE has been used up."),
    ]:
        with pytest.raises(PromoRejected) as caught:
            discounts(codes=[code], **kw)
        assert caught.value.message.startswith(words), caught.value.message


def test_a_refused_code_refuses_the_checkout_and_writes_nothing(session):
    g = game(session, price=1000)
    promo("BIGSPEND", percent="10", minimum="EUR=50")
    with pytest.raises(PromoRejected, match=r"at least €50\.00"):
        place_order(email="a@example.com", lines=[CartLine(g.slug, 1)], promo_code="BIGSPEND")
    s = fresh(session)
    assert s.exec(select(Order)).all() == [] and s.exec(select(PromoRedemption)).all() == []
    assert s.exec(select(PromoCode.uses)).one() == 0


def test_one_code_per_order_unless_every_code_stacks(session):
    g = game(session, price=2000)
    promo("TEN", percent="10")
    promo("STACK5", percent="5", stackable=True)
    promo("STACK1", amounts="EUR=1", stackable=True)
    kw = {"session": session, "lines": _priced([(g, 1)]), "currency": "EUR",
          "email": "x@example.com"}  # fmt: skip
    with pytest.raises(PromoRejected, match="TEN cannot be combined with other codes"):
        discounts(codes=parse_codes("TEN, STACK5"), **kw)
    applied = discounts(codes=parse_codes("STACK5 STACK1"), **kw)
    # 5 % of 20.00, then 1.00 off what is left
    assert applied.by_code == {"STACK5": 100, "STACK1": 100} and applied.total_minor == 200


def test_a_code_never_goes_below_the_cost_floor_unless_it_says_so(session):
    g = game(session, price=2000)
    session.add(
        ProviderOffer(provider="codeswholesale", external_id="cw-1", product_id=g.id,
                      name=g.title, cost_minor=1500, currency="EUR", stock=10)
    )  # fmt: skip
    session.commit()
    promo("HALF", percent="50")
    promo("HALFANYWAY", percent="50", below_cost=True)
    kw = {"session": session, "lines": _priced([(g, 2)]), "currency": "EUR",
          "email": "x@example.com"}  # fmt: skip
    assert discounts(codes=["HALF"], **kw).by_line == {g.id: 1000}  # 2 x (20.00 - 15.00)
    assert discounts(codes=["HALFANYWAY"], **kw).by_line == {g.id: 2000}
    # a pricing rule's floor counts too
    session.add(PricingRule(product_id=g.id, currency="EUR", mode="cost_plus",
                            margin_bp=2000, floor_minor=1900))  # fmt: skip
    session.commit()
    assert discounts(codes=["HALF"], **kw).by_line == {g.id: 200}
    session.add(PricingRule(product_id=None, currency="EUR", mode="fixed",
                            fixed_price_minor=2000, floor_minor=2000))  # fmt: skip
    session.commit()
    g2 = game(session, price=2000)
    with pytest.raises(PromoRejected, match="cannot lower the prices"):
        discounts(session=session, lines=_priced([(g2, 1)]), currency="EUR",
                  codes=["HALF"], email="x@example.com")  # fmt: skip


def test_per_customer_limit_counts_the_account_and_its_address(session):
    g = game(session, price=1000)
    promo("WELCOME", percent="10", per_customer=1)
    place_order(email="Ann@Example.com", lines=[CartLine(g.slug, 1)], promo_code="WELCOME")
    with pytest.raises(PromoRejected, match="already used promo code WELCOME"):
        place_order(email="ann@example.com", lines=[CartLine(g.slug, 1)], promo_code="welcome")
    place_order(email="bob@example.com", lines=[CartLine(g.slug, 1)], promo_code="WELCOME")


def test_a_cancelled_or_expired_order_gives_its_use_back_a_refund_does_not(session):
    g = game(session, price=1000, keys=10)
    promo("TWICE", percent="10", max_uses=2, per_customer=1)
    first = place_order(email="a@example.com", lines=[CartLine(g.slug, 1)], promo_code="TWICE")
    second = place_order(email="b@example.com", lines=[CartLine(g.slug, 1)], promo_code="TWICE")
    with pytest.raises(PromoRejected, match="used up"):
        place_order(email="c@example.com", lines=[CartLine(g.slug, 1)], promo_code="TWICE")

    # an operator cancels the first order: its use goes back, the same buyer may use it again
    s = fresh(session)
    transition_order(session=s, order_id=order(session, first.number).id, to_status="cancelled",
                     actor=OWNER, reason="customer asked")  # fmt: skip
    s.commit()
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1
    third = place_order(email="a@example.com", lines=[CartLine(g.slug, 1)], promo_code="TWICE")

    # the unpaid-order expiry gives the second order's use back
    s = fresh(session)
    s.get(Order, order(session, second.number).id).created_at = utcnow() - timedelta(days=1)
    s.commit()
    expire_unpaid_orders()
    assert order(session, second.number).status == "cancelled"
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1

    # a refunded order keeps its use
    s = fresh(session)
    oid = order(session, third.number).id
    transition_order(session=s, order_id=oid, to_status="paid", actor=OWNER)
    transition_order(session=s, order_id=oid, to_status="refunded", actor=OWNER, reason="r")
    s.commit()
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1
    usage = promo_usage(session=fresh(session), code="twice")
    assert (usage.live, usage.released, usage.discount) == (1, 2, {"EUR": 100})
    # releasing twice changes nothing
    s = fresh(session)
    from core.services.promos import release_for_order

    assert release_for_order(session=s, order_id=order(session, first.number).id) == []


def test_operator_input_is_checked_and_audited(session):
    g = game(session)
    with pytest.raises(InvalidInput, match="percent or fixed amounts, not both"):
        promo("BOTH", percent="10", amounts="EUR=5")
    with pytest.raises(InvalidInput, match=r"percent: from 0\.01 to 100"):
        promo("TOOMUCH", percent="150")
    with pytest.raises(InvalidInput, match="EUR amounts have at most 2 decimals"):
        promo("FRACTION", amounts="EUR=5.001")
    with pytest.raises(InvalidInput, match="no product nope"):
        promo("WHICH", percent="5", scope="products", scope_values=["nope"])
    with pytest.raises(PromoRejected, match="is not a promo code"):
        promo("a b", percent="5")
    promo("OK5", percent="5", scope="products", scope_values=[g.slug])
    with pytest.raises(DuplicatePromo):
        promo("ok5", percent="5")
    assert fresh(session).exec(select(PromoCode.code)).all() == ["OK5"]
    actions = fresh(session).exec(select(AuditEvent.action, AuditEvent.object_id)).all()
    assert actions == [("promo.create", "OK5")]


def test_generated_codes_are_single_use_unique_and_audited_once(session):
    codes = generate_codes(data=PromoInput(amounts="EUR=3"), count=250, prefix="infl", actor=OWNER)
    assert len(set(codes)) == 250 and all(c.startswith("INFL-") for c in codes)
    rows = fresh(session).exec(select(PromoCode)).all()
    assert {(r.max_uses, r.campaign) for r in rows} == {(1, "INFL")}
    assert fresh(session).exec(select(AuditEvent.action)).all() == ["promo.generate"]
    assert set_paused(campaign="INFL", paused=True, actor=OWNER) == 250


def test_the_receipt_and_the_order_page_show_lines_that_add_up_to_what_was_paid(session):
    from core.services.invoices import receipt_pdf, view_receipt
    from core.services.portal import order_view

    g = game(session, price=1999)
    other = game(session, price=500)
    promo("THIRD", percent="33.33", scope="products", scope_values=[g.slug])
    placed = place_order(email="a@example.com", lines=[CartLine(g.slug, 3), CartLine(other.slug, 1)],
                         promo_code="THIRD", country="DE")  # fmt: skip
    s = fresh(session)
    o = order(session, placed.number)
    transition_order(session=s, order_id=o.id, to_status="paid", actor=OWNER)
    s.commit()
    receipt = view_receipt(number=placed.number, access_token=placed.access_token)
    # 3 x 19.99 = 59.97, a third off (rounded down) = 19.98 off
    assert [(ln.total, ln.discount) for ln in receipt.lines] == [
        ("€39.99", "-€19.98"),
        ("€5.00", ""),
    ]
    assert receipt.total == "€44.99" and receipt.vat == "€7.18"
    assert receipt_pdf(receipt).startswith(b"%PDF")
    s = fresh(session)
    view = order_view(session=s, order=order(session, placed.number))
    assert [(ln.line_total_minor, ln.discount_minor) for ln in view.lines] == [
        (3999, 1998),
        (500, 0),
    ]
    assert sum(ln.line_total_minor for ln in view.lines) == view.total_minor == 4499
