"""Inventory actions: the low-stock threshold (validated, audited, bad input changes
nothing), revoking available keys of a product (how many, optionally one import), and
the import history with its rejected lines; the product list pages lazily."""

from __future__ import annotations

import pytest
from sqlmodel import select
from textual.widgets import DataTable, Input

from console.screens.modals import RevokeKeysScreen, ValueScreen
from core.models import ImportBatch, Key, Product
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_product


async def select_product(pilot, slug):
    table = pilot.app.screen.query_one("#stock-table", DataTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(slug))
    await pilot.pause()


async def set_threshold(pilot, slug, text):
    await show(pilot, "3")
    await select_product(pilot, slug)
    await pilot.press("t")
    dialog = pilot.app.screen
    assert isinstance(dialog, ValueScreen)
    dialog.query_one("#value", Input).value = text
    await pilot.press("enter")
    await settle(pilot)


def test_set_the_low_stock_threshold(session, console_app):
    product = make_product(session, title="Threshold Game", low_stock_threshold=5)
    make_keys(session, product, 3)

    async def scenario(pilot):
        await set_threshold(pilot, product.slug, " 2 ")
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        row = table.get_row(product.slug)
        assert str(row[6]) == "2" and "LOW" not in str(row[0])

    run(console_app, scenario)
    assert fresh(session).get(Product, product.id).low_stock_threshold == 2
    [event] = audit(session, "product.threshold")
    assert event.actor_id == OPERATOR and event.object_id == str(product.id)
    assert event.data == {"slug": product.slug, "from": 5, "to": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "whole number, 0 or more"),
        ("abc", "whole number, 0 or more (got 'abc')"),
        ("-1", "whole number, 0 or more (got '-1')"),
        ("2.5", "whole number, 0 or more (got '2.5')"),
        ("9999999", "at most 1,000,000"),
    ],
)
def test_a_bad_threshold_is_refused_in_the_dialog_and_changes_nothing(
    session, console_app, text, expected
):
    """Issue #17 defect 13: the error shows in the dialog, which stays open with the
    value, so nothing has to be typed again."""
    product = make_product(session, low_stock_threshold=5)

    async def scenario(pilot):
        await set_threshold(pilot, product.slug, text)
        dialog = pilot.app.screen
        assert isinstance(dialog, ValueScreen)
        assert expected in str(dialog.query_one("#value-error").render())
        assert dialog.query_one("#value", Input).value == text
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Product, product.id).low_stock_threshold == 5
    assert audit(session, "product.threshold") == []


def test_the_largest_threshold_is_shown_whole(session, console_app):
    product = make_product(session, title="Big Stock Game", low_stock_threshold=5)

    async def scenario(pilot):
        await set_threshold(pilot, product.slug, "1000000")
        row = pilot.app.screen.query_one("#stock-table", DataTable).get_row(product.slug)
        assert str(row[6]) == "1,000,000"

    run(console_app, scenario)
    assert fresh(session).get(Product, product.id).low_stock_threshold == 1_000_000
    assert ("information", "Big Stock Game: low-stock threshold 5 → 1,000,000") in console_app.notes


async def revoke(pilot, slug, count, reason, batch=""):
    await show(pilot, "3")
    await select_product(pilot, slug)
    await pilot.press("k")
    dialog = pilot.app.screen
    assert isinstance(dialog, RevokeKeysScreen)
    dialog.query_one("#count", Input).value = count
    dialog.query_one("#batch", Input).value = batch
    dialog.query_one("#reason", Input).value = reason
    await pilot.click("#confirm")
    await settle(pilot)


def test_revoke_keys_of_a_product(session, console_app):
    product = make_product(session)
    keys = make_keys(session, product, 5)

    async def scenario(pilot):
        await revoke(pilot, product.slug, "2", "supplier recalled them")
        row = pilot.app.screen.query_one("#stock-table", DataTable).get_row(product.slug)
        assert str(row[3]) == "3"

    run(console_app, scenario)
    fresh(session)
    statuses = [session.get(Key, k.id).status for k in sorted(keys, key=lambda k: k.id)]
    assert statuses == ["revoked", "revoked", "available", "available", "available"]
    revoked = audit(session, "key.revoke")
    assert len(revoked) == 2 and {e.actor_id for e in revoked} == {OPERATOR}
    [summary] = audit(session, "product.revoke_keys")
    assert summary.data["count"] == 2 and summary.data["reason"] == "supplier recalled them"


def test_revoke_only_the_keys_of_one_import(session, console_app):
    product = make_product(session)
    batch = ImportBatch(file_name="bad.txt", operator="bob", status="completed")
    session.add(batch)
    session.commit()
    good = make_keys(session, product, 2)
    bad = make_keys(session, product, 2, import_batch_id=batch.id)

    async def scenario(pilot):
        await revoke(pilot, product.slug, "2", "bad batch", batch=f"#{batch.id}")

    run(console_app, scenario)
    fresh(session)
    assert {session.get(Key, k.id).status for k in bad} == {"revoked"}
    assert {session.get(Key, k.id).status for k in good} == {"available"}


def test_revoking_more_keys_than_available_changes_nothing(session, console_app):
    product = make_product(session)
    make_keys(session, product, 2)

    async def scenario(pilot):
        await revoke(pilot, product.slug, "3", "too many")

    run(console_app, scenario)
    fresh(session)
    assert {k.status for k in session.exec(select(Key))} == {"available"}
    assert audit(session, "key.revoke") == [] and audit(session, "product.revoke_keys") == []
    assert any(sev == "error" and "has 2 available" in msg for sev, msg in console_app.notes)


def test_a_bad_count_is_refused_in_the_dialog(session, console_app):
    product = make_product(session)
    make_keys(session, product, 2)

    async def scenario(pilot):
        await revoke(pilot, product.slug, "two", "typo")
        dialog = pilot.app.screen
        assert isinstance(dialog, RevokeKeysScreen)
        assert "whole number" in str(dialog.query_one("#revoke-error").render())
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    assert {k.status for k in fresh(session).exec(select(Key))} == {"available"}
    assert audit(session, "key.revoke") == []


def test_import_history_with_rejected_lines(session, console_app):
    session.add(
        ImportBatch(
            file_name="keys-march.csv",
            operator="bob",
            status="completed",
            lines_read=10,
            imported=7,
            duplicate_in_file=1,
            rejected=2,
            rejections=[{"line": 4, "reason": "empty key"}, {"line": 9, "reason": "too long"}],
        )
    )
    session.commit()

    async def scenario(pilot):
        await show(pilot, "3")
        await pilot.press("h")
        await settle(pilot)
        table = pilot.app.screen.query_one("#imports-table", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[1] == "keys-march.csv" and row[2] == "per line" and row[4] == "bob"
        assert row[6:] == ["10", "7", "1", "2"]
        detail = str(pilot.app.screen.query_one("#import-detail").render())
        assert "line 4: empty key" in detail and "line 9: too long" in detail

    run(console_app, scenario)


def test_the_product_list_pages_lazily(session, console_app):
    for n in range(130):
        session.add(
            Product(
                slug=f"bulk-{n:03d}",
                title=f"Bulk {n:03d}",
                platform="Steam",
                region="GLOBAL",
                genre="Action",
                price_minor=100,
                currency="EUR",
            )
        )
    session.commit()

    async def scenario(pilot):
        await show(pilot, "3")
        table = pilot.app.screen.query_one("#stock-table", DataTable)
        assert table.row_count == 100
        table.focus()
        table.move_cursor(row=99)
        await settle(pilot)
        assert table.row_count == 130
        assert str(table.get_row_at(129)[1]) == "bulk-129"

    run(console_app, scenario)
