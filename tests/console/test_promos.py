"""The promo codes screen (F8): the codes, the selected code's usage, create (checked in
the dialog, audited) and pause/resume (confirmed, audited)."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable, Input, Static

from core.models import Order, PromoCode
from core.services.audit import Actor
from core.services.checkout import CartLine, place_order
from core.services.operator.promos import PromoInput, create_promo
from core.services.orders import transition_order
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_product


def test_list_usage_create_and_pause(session, console_app):
    game = make_product(session, slug="nova", price_minor=2000)
    make_keys(session, game, 2)
    create_promo(data=PromoInput(code="SPRING", percent="10", max_uses=5), actor=Actor.system())
    placed = place_order(email="ann@example.com", lines=[CartLine("nova", 1)], promo_code="SPRING")
    s = fresh(session)
    paid = s.exec(select(Order.id).where(Order.number == placed.number)).one()
    transition_order(session=s, order_id=paid, to_status="paid", actor=Actor.system())
    s.commit()

    async def scenario(pilot):
        await show(pilot, "f8")
        screen = pilot.app.screen
        table = screen.query_one("#promos-table", DataTable)
        assert [str(c) for c in table.get_row("SPRING")] == [
            "SPRING", "10 %", "shop", "1/5", "active", "", "",
        ]  # fmt: skip
        await settle(pilot)
        totals = str(screen.query_one("#promo-totals", Static).render())
        assert totals.startswith("discount given in the last 30 days: 2.00 EUR on 1 paid order")
        usage = str(screen.query_one("#promo-usage", Static).render())
        assert "SPRING: 1 use(s), 0 given back" in usage and "2.00 EUR" in usage
        assert screen.query_one("#usage-table", DataTable).row_count == 1

        # a new code: a bad value is named in the dialog, then it is created
        await pilot.press("n")
        await settle(pilot)
        dialog = pilot.app.screen
        dialog.query_one("#promo-code", Input).value = "steam5"
        dialog.query_one("#promo-amounts", Input).value = "EUR=5"
        dialog.query_one("#promo-percent", Input).value = "10"
        dialog.query_one("#confirm").focus()
        await pilot.press("enter")
        await settle(pilot)
        error = str(dialog.query_one("#promo-error", Static).render())
        assert error == "give a percent or fixed amounts, not both"
        dialog.query_one("#promo-percent", Input).value = ""
        dialog.query_one("#confirm").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert table.row_count == 2 and str(table.get_row("STEAM5")[1]) == "5.00 EUR"

        # pause the selected code (confirmed)
        table.focus()
        table.move_cursor(row=table.get_row_index("SPRING"))
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert str(table.get_row("SPRING")[4]) == "paused"

    run(console_app, scenario)
    s = fresh(session)
    assert s.exec(select(PromoCode.paused).where(PromoCode.code == "SPRING")).one()
    assert s.exec(select(PromoCode.amounts).where(PromoCode.code == "STEAM5")).one() == {"EUR": 500}
    assert audit(session, "promo.create")[-1].actor_id == OPERATOR
    assert audit(session, "promo.pause")[0].object_id == "SPRING"
