"""The reports screen: the sales of the period with margin, regrouped on ``g``."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import DataTable, Input, Sparkline, Static

from core.models import KeyStatus, OrderStatus
from tests.console.conftest import run, settle, show
from tests.factories import make_keys, make_order, make_product, order_lines


def test_sales_with_margin_and_a_chart(session, console_app):
    game = make_product(session, slug="game", price_minor=2000)
    order = make_order(session, [(game, 2)], status=OrderStatus.FULFILLED)
    [line] = order_lines(session, order)
    make_keys(
        session, game, 2, status=KeyStatus.DELIVERED, order_line_id=line.id,
        delivered_at=datetime(2026, 11, 3, 10, tzinfo=UTC), cost_minor=1500, cost_currency="EUR",
    )  # fmt: skip

    async def scenario(pilot):
        await show(pilot, "f4")
        screen = pilot.app.screen
        screen.query_one("#report-from", Input).value = "2026-11-01"
        screen.query_one("#report-to", Input).value = "2026-11-07"
        screen.query_one("#report-to", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        table = screen.query_one("#report-table", DataTable)
        assert [str(c) for c in table.get_row_at(0)] == [
            "2026-11-03", "EUR", "2", "40.00 EUR", "30.00 EUR", "10.00 EUR", "25.0", "",
        ]  # fmt: skip
        assert list(screen.query_one("#report-chart", Sparkline).data) == [0, 0, 4000, 0, 0, 0, 0]
        table.focus()
        await pilot.press("g")
        await settle(pilot)
        assert str(table.get_row_at(0)[0]) == "2026-11-02"  # the week's Monday
        screen.query_one("#report-from", Input).value = "nonsense"
        screen.query_one("#report-from", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "YYYY-MM-DD" in str(screen.query_one("#report-summary", Static).render())

    run(console_app, scenario)
