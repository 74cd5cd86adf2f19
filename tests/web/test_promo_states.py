"""The cart's promo code field (issue #18 item 1): the lines show what the code takes
off, a code that cannot be used is named with the reason, and checkout applies it."""

from __future__ import annotations

import json

from sqlmodel import select

from core.models import Order, OrderLine, PromoRedemption
from core.services.audit import Actor
from core.services.operator.promos import PromoInput, create_promo
from tests.factories import fresh, make_keys, make_product
from tests.support.states import call, loaded, state_for
from web.state.checkout import CartState


def test_the_cart_shows_the_discount_per_line_and_checkout_keeps_it(session):
    nova = make_product(session, slug="nova-drift", title="Nova Drift", price_minor=1500,
                        platform="Steam")  # fmt: skip
    orbit = make_product(session, slug="orbit-run", title="Orbit Run", price_minor=1000,
                         platform="Xbox")  # fmt: skip
    make_keys(session, nova, 3)
    make_keys(session, orbit, 3)
    owner = Actor.operator("owner")
    create_promo(data=PromoInput(code="STEAM20", percent="20", scope="platforms",
                                 scope_values=["steam"]), actor=owner)  # fmt: skip
    create_promo(data=PromoInput(code="BIG", percent="5", minimum="EUR=100"), actor=owner)
    state = state_for(CartState, "/cart")
    state.cart_json = json.dumps(
        [{"slug": "nova-drift", "qty": 2}, {"slug": "orbit-run", "qty": 1}]
    )
    call(state.load)
    assert state.total == "€40.00" and state.promo_text == ""

    call(state.apply_promo, {"promo_code": "big"})
    assert state.promo_error == "Promo code BIG needs an order of at least €100.00."
    assert state.total == "€40.00"

    call(state.apply_promo, {"promo_code": " steam20 "})
    assert state.promo_error == "" and state.promo_text == "Promo code STEAM20: -€6.00"
    assert [(ln["slug"], ln["line_total"], ln["discount"]) for ln in state.lines] == [
        ("nova-drift", "€24.00", "€30.00 - €6.00 with the code"),
        ("orbit-run", "€10.00", ""),
    ]
    assert state.total == "€34.00"

    specs = call(state.place_order, {"email": "ann@example.com"})
    assert loaded(specs) is not None, state.error
    s = fresh(session)
    order = s.exec(select(Order)).one()
    assert (order.subtotal_minor, order.discount_minor, order.total_minor) == (4000, 600, 3400)
    discounts = dict(s.exec(select(OrderLine.product_id, OrderLine.discount_minor)).all())
    assert discounts == {nova.id: 600, orbit.id: 0}
    assert s.exec(select(PromoRedemption.code)).all() == ["STEAM20"]


def test_a_code_used_up_meanwhile_refuses_the_checkout_and_keeps_the_cart(session):
    nova = make_product(session, slug="nova-drift", title="Nova Drift", price_minor=1500)
    make_keys(session, nova, 3)
    create_promo(data=PromoInput(code="ONCE", amounts="EUR=2", max_uses=1),
                 actor=Actor.operator("owner"))  # fmt: skip
    first, second = state_for(CartState, "/cart"), state_for(CartState, "/cart")
    for state in (first, second):
        state.cart_json = json.dumps([{"slug": "nova-drift", "qty": 1}])
        call(state.load)
        call(state.apply_promo, {"promo_code": "ONCE"})
        assert state.total == "€13.00"
    assert loaded(call(first.place_order, {"email": "a@example.com"})) is not None
    specs = call(second.place_order, {"email": "b@example.com"})
    assert loaded(specs) is None
    assert second.error == "Promo code ONCE has been used up."
    assert second.promo_error == "Promo code ONCE has been used up."
    assert second.cart_json != "[]" and second.total == "€15.00"
    assert len(fresh(session).exec(select(Order)).all()) == 1

    call(second.remove_promo)
    assert second.promo_code == "" and second.promo_error == "" and second.total == "€15.00"
