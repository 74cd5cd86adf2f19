"""The offers screen: unmapped offers with their closest products; map one (audited),
unmap it, create a product from another."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable, Static

from console.screens.modals import ConfirmScreen
from console.screens.offers import MapScreen
from core.models import Product, ProviderOffer
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_product


def add_offer(session, provider, external_id, name, cost=1240):
    session.add(
        ProviderOffer(
            provider=provider,
            external_id=external_id,
            name=name,
            title=name,
            platform="Steam",
            region="GLOBAL",
            cost_minor=cost,
            currency="EUR",
            stock=4,
        )
    )
    session.commit()


async def select_row(pilot, key):
    table = pilot.app.screen.query_one("#offers-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await settle(pilot)


def test_map_unmap_and_create_from_the_console(session, console_app):
    make_product(session, slug="starfall", title="Starfall Vanguard")
    add_offer(session, "codeswholesale", "cw-1", "Starfall Vanguard")
    add_offer(session, "kinguin", "k-2", "Hollow Tide")

    async def scenario(pilot):
        await show(pilot, "f2")
        screen = pilot.app.screen
        table = screen.query_one("#offers-table", DataTable)
        assert table.row_count == 2
        await select_row(pilot, "codeswholesale\tcw-1")
        detail = str(screen.query_one("#offer-detail", Static).render())
        assert "Closest: Starfall Vanguard (Steam, GLOBAL)" in detail

        await pilot.press("m")
        await settle(pilot)
        assert isinstance(pilot.app.screen, MapScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert str(table.get_row("codeswholesale\tcw-1")[7]) == "starfall"

        await pilot.press("u")  # unmapped only
        await settle(pilot)
        assert table.row_count == 1
        await select_row(pilot, "kinguin\tk-2")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert table.row_count == 0

        await pilot.press("u")
        await settle(pilot)
        await select_row(pilot, "codeswholesale\tcw-1")
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert str(table.get_row("codeswholesale\tcw-1")[7]) == "unmapped"

    run(console_app, scenario)
    assert [e.actor_id for e in audit(session, "offer.map")] == [OPERATOR, OPERATOR]
    assert len(audit(session, "offer.unmap")) == 1
    created = fresh(session).exec(select(Product).where(Product.title == "Hollow Tide")).one()
    assert created.slug == "hollow-tide-steam-global" and created.price_minor == 1399


LONG_ID = "cw-5f0c3a9e-2b7d-4e61-9c8a-1f2e3d4c5b6a-eu"


def test_wide_terminal_shows_whole_offer_ids(session, console_app):
    """Issue #17 defect 12: provider offer ids were cut (to 16 characters)."""
    add_offer(session, "codeswholesale", LONG_ID, "Starfall Vanguard")
    add_offer(session, "codeswholesale", LONG_ID[:-3] + "-us", "Starfall Vanguard")

    async def scenario(pilot):
        await show(pilot, "f2")
        table = pilot.app.screen.query_one("#offers-table", DataTable)
        ids = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert ids == {LONG_ID, LONG_ID[:-3] + "-us"}

    run(console_app, scenario, size=(160, 35))


def test_at_80_columns_the_selected_offer_id_is_shown_whole(session, console_app):
    add_offer(session, "codeswholesale", LONG_ID, "Starfall Vanguard")

    async def scenario(pilot):
        await show(pilot, "f2")
        table = pilot.app.screen.query_one("#offers-table", DataTable)
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80
        await select_row(pilot, f"codeswholesale\t{LONG_ID}")
        detail = str(pilot.app.screen.query_one("#offer-detail", Static).render())
        assert LONG_ID in detail

    run(console_app, scenario, size=(80, 24))
