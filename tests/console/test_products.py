"""The products screen: add a product through the model's form, edit it, retire and
restore it; every action audited, bad input shown in the form and nothing written."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable, Input, Static

from console.screens.modals import ConfirmScreen, ReasonScreen
from console.screens.products import ProductFormScreen
from core.models import Product
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_order, make_product


async def fill(pilot, **values: str) -> None:
    form = pilot.app.screen
    assert isinstance(form, ProductFormScreen)
    for name, value in values.items():
        form.query_one(f"#field-{name}", Input).value = value
    form.query_one("#confirm").press()
    await settle(pilot)


async def select_row(pilot, slug: str) -> None:
    table = pilot.app.screen.query_one("#products-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(slug))
    await pilot.pause()


def test_add_edit_retire_and_restore_a_product(session, console_app):
    async def scenario(pilot):
        await show(pilot, "0")
        await pilot.press("a")
        await settle(pilot)
        # a bad price keeps the form open and says why
        await fill(
            pilot, slug="starfall", title="Starfall", platform="steam", region="eu", price="1.999"
        )
        form = pilot.app.screen
        assert isinstance(form, ProductFormScreen)
        assert "decimals" in str(form.query_one("#product-error", Static).render())
        await fill(pilot, price="19.99")
        table = pilot.app.screen.query_one("#products-table", DataTable)
        assert [str(c) for c in table.get_row("starfall")[:5]] == [
            "starfall",
            "Starfall",
            "Steam",
            "EU",
            "19.99 EUR",
        ]

        await select_row(pilot, "starfall")
        await pilot.press("e")
        await settle(pilot)
        await fill(pilot, price="24.50", genre="Action")

        await select_row(pilot, "starfall")
        await pilot.press("x")
        await settle(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, ReasonScreen)
        dialog.query_one("#reason", Input).value = "publisher pulled it"
        await pilot.press("enter")
        await settle(pilot)
        assert str(table.get_row("starfall")[5]) == "retired"

        await select_row(pilot, "starfall")
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert str(table.get_row("starfall")[5]) == "on sale"

    run(console_app, scenario)
    product = fresh(session).exec(select(Product)).one()
    assert (product.price_minor, product.genre, product.active) == (2450, "Action", True)
    [created] = audit(session, "product.create")
    assert created.actor_id == OPERATOR
    [edit] = audit(session, "product.edit")
    assert edit.data["changes"] == {"price_minor": [1999, 2450], "genre": ["", "Action"]}
    assert audit(session, "product.retire")[0].data["reason"] == "publisher pulled it"
    assert len(audit(session, "product.restore")) == 1


def test_the_list_shows_stock_offers_and_orders_and_searches(session, console_app):
    sold = make_product(session, slug="sold-one", title="Sold One")
    make_order(session, [(sold, 2)])
    make_product(session, slug="other", title="Other")

    async def scenario(pilot):
        await show(pilot, "0")
        screen = pilot.app.screen
        table = screen.query_one("#products-table", DataTable)
        assert table.row_count == 2
        assert str(table.get_row("sold-one")[8]) == "1"
        screen.query_one("#products-filter", Input).value = "sold"
        screen.query_one("#products-filter", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert table.row_count == 1

    run(console_app, scenario)


def test_a_cover_and_prices_per_currency_from_the_form(session, console_app, tmp_path):
    import io

    from PIL import Image

    from core.services.catalogue.prices import all_prices

    def jpeg(name: str, size: tuple[int, int]) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", size, "teal").save(buffer, format="JPEG")
        (tmp_path / name).write_bytes(buffer.getvalue())
        return str(tmp_path / name)

    async def scenario(pilot):
        await show(pilot, "0")
        await pilot.press("a")
        await settle(pilot)
        # a picture too small keeps the form open, says why, and nothing is added
        await fill(
            pilot, slug="starfall", title="Starfall", platform="Steam", price="19.99",
            price_usd="21.99", cover_file=jpeg("small.jpg", (120, 160)),
        )  # fmt: skip
        form = pilot.app.screen
        assert isinstance(form, ProductFormScreen)
        assert "at least 300x400" in str(form.query_one("#product-error", Static).render())
        assert fresh(session).exec(select(Product)).all() == []
        await fill(pilot, cover_file=jpeg("box.jpg", (600, 800)))

        await select_row(pilot, "starfall")
        await pilot.press("e")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, ProductFormScreen)
        assert form.query_one("#field-price_usd", Input).value == "21.99"
        await fill(pilot, price_usd="", price_gbp="17.50")

    run(console_app, scenario)
    product = fresh(session).exec(select(Product)).one()
    assert product.cover_image is not None and product.cover_image.startswith("covers/")
    prices = {p.currency: p.minor for p in all_prices(session=fresh(session), product=product)}
    assert prices == {"EUR": 1999, "GBP": 1750}
    [cover] = audit(session, "product.cover")
    assert cover.actor_id == OPERATOR and cover.data["file"] == "box.jpg"
