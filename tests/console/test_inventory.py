"""Inventory: stock counts with low stock highlighted, and imports from a file; a file
or product that cannot be imported shows a clear message and changes nothing."""

from __future__ import annotations

import pytest
from sqlmodel import func, select
from textual.widgets import DataTable, Input, ProgressBar

from core.models import ImportBatch, Key
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_product


async def import_file(pilot, path, slug):
    screen = pilot.app.screen
    screen.query_one("#import-product", Input).value = slug
    field = screen.query_one("#import-path", Input)
    field.value = str(path)
    field.focus()
    await pilot.press("enter")
    await settle(pilot)


def counts(session):
    fresh(session)
    return (
        session.exec(select(func.count()).select_from(Key)).one(),
        session.exec(select(func.count()).select_from(ImportBatch)).one(),
    )


def test_stock_counts_and_low_stock(session, console_app):
    plenty = make_product(session, title="Plenty", low_stock_threshold=2)
    scarce = make_product(session, title="Scarce", low_stock_threshold=5)
    make_keys(session, plenty, 3)
    make_keys(session, scarce, 1)

    async def scenario(pilot):
        await show(pilot, "3")
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        rows = {str(table.get_row_at(i)[1]): table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows[plenty.slug][3]) == "3" and "LOW" not in str(rows[plenty.slug][0])
        assert str(rows[scarce.slug][3]) == "1" and "LOW" in str(rows[scarce.slug][0])

    run(console_app, scenario)


def test_import_a_file(session, console_app, tmp_path):
    product = make_product(session)
    path = tmp_path / "keys.txt"
    path.write_text("AAAAA-BBBBB-11111\nAAAAA-BBBBB-22222\nAAAAA-BBBBB-11111\n")

    async def scenario(pilot):
        await show(pilot, "3")
        await import_file(pilot, path, product.slug)
        report = str(pilot.app.screen.query_one("#import-report").render())
        assert "read 3, imported 2, duplicate in file 1" in report
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        assert str(table.get_row_at(table.get_row_index(product.slug))[3]) == "2"

    run(console_app, scenario)
    assert counts(session) == (2, 1)
    assert session.exec(select(ImportBatch)).one().operator == OPERATOR
    [event] = audit(session, "keys.import")
    assert event.actor_id == OPERATOR and event.data["imported"] == 2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing", "no such file"),
        ("binary", "binary"),
        ("empty", "is empty"),
        ("unknown product", "no product with slug"),
    ],
)
def test_bad_input_shows_a_message_and_changes_nothing(
    session, console_app, tmp_path, kind, expected
):
    product = make_product(session)
    path = tmp_path / "keys.txt"
    slug = product.slug
    if kind == "binary":
        path.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "unknown product":
        path.write_text("AAAAA-BBBBB-33333\n")
        slug = "no-such-game"

    async def scenario(pilot):
        await show(pilot, "3")
        await import_file(pilot, path, slug)
        assert expected in str(pilot.app.screen.query_one("#import-report").render())
        # A refused import stops the bar (no total: it would keep animating).
        bar = pilot.app.screen.query_one("#import-progress", ProgressBar)
        assert bar.total is not None and bar.progress == 0

    run(console_app, scenario)
    assert any(sev == "error" and expected in msg for sev, msg in console_app.notes)
    assert counts(session) == (0, 0)
    assert audit(session, "keys.import") == []


def test_a_csv_import_names_the_bad_field_and_keeps_the_lines_after_a_quote(
    session, console_app, tmp_path
):
    """Issue #17 defect 11: one unclosed quote is its own line's problem (the keys after
    it are imported), and a bad cost or currency is named as such."""
    product = make_product(session, slug="quoted-game")
    good = [f"GOODK-{n:05d}-ABCDE" for n in range(20)]
    body = "key,cost,currency\n"
    body += f"{good[0]},1.00,EUR\n"
    body += '"UNCLOSED-KEY-0001,1.00,EUR\n'  # line 3
    body += "".join(f"{code},2.50,EUR\n" for code in good[1:])
    body += "BADCO-STKEY-00001,cheap,EUR\n"  # line 23
    body += "BADCU-RRKEY-00001,1.00,EURO\n"  # line 24
    path = tmp_path / "keys.csv"
    path.write_text(body)

    async def scenario(pilot):
        await show(pilot, "3")
        await import_file(pilot, path, product.slug)
        report = str(pilot.app.screen.query_one("#import-report").render())
        assert "read 23, imported 20" in report
        assert "line 3: malformed CSV: a quote is not closed on this line" in report
        assert "line 23: bad cost: not a number" in report
        assert "line 24: bad currency" in report
        await pilot.press("h")
        await settle(pilot)
        table = pilot.app.screen.query_one("#imports-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        row = dict(zip(labels, [str(c) for c in table.get_row_at(0)], strict=True))
        assert row["Product"] == "quoted-game"
        assert row["File"] == "keys.csv"

    run(console_app, scenario, size=(120, 35))
    assert counts(session) == (20, 1)


LONG_SLUG = "the-witcher-3-wild-hunt-game-of-the-year-edition-gog"


def stock_product(session):
    make_product(session, slug=LONG_SLUG, title="The Witcher 3: Wild Hunt GOTY", platform="gog")
    make_product(session, slug=LONG_SLUG + "-pl", title="The Witcher 3: Wild Hunt GOTY")


def test_wide_terminal_shows_whole_slugs_and_the_platform(session, console_app):
    """Issue #17 defect 12: slugs were cut to 16 characters and the platform missing,
    so two editions could not be told apart; columns now size to the terminal."""
    stock_product(session)

    async def scenario(pilot):
        await show(pilot, "3")
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Platform" in labels
        slugs = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert slugs == {LONG_SLUG, LONG_SLUG + "-pl"}
        assert str(table.get_row_at(table.get_row_index(LONG_SLUG))[2]) == "gog"

    run(console_app, scenario, size=(160, 35))


def test_at_80_columns_the_selected_product_is_shown_whole(session, console_app):
    stock_product(session)

    async def scenario(pilot):
        await show(pilot, "3")
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        total = sum(c.get_render_width(table) for c in table.columns.values())
        assert total <= 80
        table.move_cursor(row=table.get_row_index(LONG_SLUG + "-pl"))
        await settle(pilot)
        detail = str(pilot.app.screen.query_one("#stock-detail").render())
        assert LONG_SLUG + "-pl" in detail

    run(console_app, scenario, size=(80, 24))
