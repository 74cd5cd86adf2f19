"""The Credit screen (F7): what is outstanding per currency, a customer's ledger with an
adjustment, gift cards issued (code shown once), adjusted and voided — audited, with a
note; a refund to store credit from the attention screen."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from console.screens.credit import CreditScreen
from console.screens.modals import ReasonScreen, RevealScreen, ValueScreen
from core.db import session_scope
from core.models import Customer
from core.services import credit, giftcards
from core.services.audit import Actor
from tests.console.conftest import OPERATOR, audit, run, settle, show


async def _answer(pilot, value: str) -> None:
    dialog = pilot.app.screen
    assert isinstance(dialog, ValueScreen)
    dialog.query_one("#value", Input).value = value
    dialog.query_one("#confirm").press()
    await settle(pilot)


async def _note(pilot, text: str) -> None:
    dialog = pilot.app.screen
    assert isinstance(dialog, ReasonScreen)
    dialog.query_one(Input).value = text
    dialog.query_one("#confirm").press()
    await settle(pilot)


def test_credit_screen_adjusts_credit_and_issues_adjusts_and_voids_cards(session, console_app):
    session.add(Customer(email="ana@example.com"))
    session.commit()
    codes: list[str] = []

    async def scenario(pilot):
        await show(pilot, "f7")
        screen = pilot.app.screen
        assert isinstance(screen, CreditScreen)
        assert "nothing" in str(screen.query_one("#credit-outstanding", Static).render())
        # a customer's ledger, then an adjustment with a note
        field = screen.query_one("#credit-customer", Input)
        field.focus()
        field.value = "ana@example.com"
        await pilot.press("enter")
        await settle(pilot)
        screen.query_one("#giftcard-table", DataTable).focus()
        await pilot.press("a")
        await settle(pilot)
        await _answer(pilot, "0")  # refused in the dialog, which stays open
        assert isinstance(pilot.app.screen, ValueScreen)
        await _answer(pilot, "12.50")
        await _note(pilot, "sorry for the wait")
        assert "12.50 EUR" in str(screen.query_one("#credit-summary", Static).render())
        ledger = screen.query_one("#credit-ledger", DataTable)
        assert [str(c) for c in ledger.get_row("0")[1:3]] == ["Adjustment by the shop", "12.50 EUR"]
        # issue a card: its code is shown once
        await pilot.press("i")
        await settle(pilot)
        await _answer(pilot, "25")
        reveal = pilot.app.screen
        assert isinstance(reveal, RevealScreen)
        codes.append(str(reveal.query_one("#revealed-code", Static).render()))
        reveal.query_one("#close").press()
        await settle(pilot)
        table = screen.query_one("#giftcard-table", DataTable)
        table.focus()
        assert str(table.get_row_at(0)[2]) == "25.00 EUR"
        await pilot.press("j")
        await settle(pilot)
        await _answer(pilot, "-5")
        await _note(pilot, "used in the shop")
        assert str(table.get_row_at(0)[2]) == "20.00 EUR"
        await pilot.press("v")
        await settle(pilot)
        await _note(pilot, "reported stolen")
        assert [str(c) for c in table.get_row_at(0)[2:5]] == ["0.00 EUR", "25.00 EUR", "void"]
        assert "12.50 EUR" in str(screen.query_one("#credit-outstanding", Static).render())

    run(console_app, scenario)
    assert giftcards.check_balance(code=codes[0], ip=None).active is False
    actions = [
        "credit.adjust",
        "giftcard.issue",
        "giftcard.adjust",
        "giftcard.void",
    ]
    for action in actions:
        [event] = audit(session, action)
        assert event.actor_id == OPERATOR
    with session_scope(write=False) as s:
        assert credit.outstanding(s)[0].total_minor == 1250


def test_refund_to_store_credit_from_the_attention_screen(session, console_app):
    from sqlmodel import select

    from core.models import Order
    from core.services.checkout import CartLine, place_order
    from core.services.orders import transition_order
    from tests.factories import fresh, make_keys, make_product

    customer = Customer(email="bo@example.com")
    session.add(customer)
    session.commit()
    game = make_product(session, price_minor=1500)
    make_keys(session, game, 1)
    with session_scope() as s:
        code = giftcards.issue(
            session=s, amount_minor=5000, currency="EUR", actor=Actor.operator("x")
        ).code
    placed = place_order(
        email="bo@example.com",
        lines=[CartLine(game.slug, 1)],
        customer_id=customer.id,
        gift_cards=[code],
    )
    order_id = fresh(session).exec(select(Order.id).where(Order.number == placed.number)).one()
    with session_scope() as s:
        transition_order(
            session=s,
            order_id=order_id,
            to_status="needs_attention",
            actor=Actor.system("test"),
            reason="provider failed",
        )

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("t")
        await settle(pilot)
        await _note(pilot, "customer prefers credit")

    run(console_app, scenario)
    assert fresh(session).get(Order, order_id).status == "refunded"
    assert credit.balance_in(customer_id=customer.id, currency="EUR") == 1500
    assert giftcards.check_balance(code=code, ip=None).balance_minor == 3500


def test_credit_screen_lists_referrals_and_pays_what_is_due(
    session, console_app, test_settings, monkeypatch
):
    from datetime import timedelta

    from core.models import utcnow
    from core.services import referrals
    from tests.factories import make_order, make_product

    monkeypatch.setattr(test_settings, "referral_reward", "EUR:5")
    ana, bob = Customer(email="ana@gmail.com"), Customer(email="bob@gmail.com")
    session.add_all([ana, bob])
    session.commit()
    with session_scope() as s:
        referrals.record_referral(
            session=s, code=referrals.referral_code(ana.id), referred_id=bob.id
        )
    order = make_order(session, [(make_product(session), 1)], status="fulfilled")
    order.customer_id, order.paid_at = bob.id, utcnow() - timedelta(days=30)
    session.add(order)
    session.commit()

    async def scenario(pilot):
        await show(pilot, "f7")
        screen = pilot.app.screen
        table = screen.query_one("#referral-table", DataTable)
        assert [str(c) for c in table.get_row_at(0)[1:4]] == [
            "ana@gmail.com",
            "bob@gmail.com",
            "pending",
        ]
        table.focus()
        await pilot.press("p")
        await settle(pilot)
        assert str(table.get_row_at(0)[3]) == "rewarded"

    run(console_app, scenario)
    assert credit.balance_in(customer_id=ana.id, currency="EUR") == 500
    assert (
        "information",
        "1 referral(s) rewarded, 0 voided, 0 order(s) given cashback",
    ) in console_app.notes
