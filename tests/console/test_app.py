"""The app: screens by key at 80x24, bindings with ids and descriptions, the command
palette offering each screen's operator actions."""

from __future__ import annotations

import threading

import pytest
from textual.command import CommandList
from textual.widgets import DataTable, Input

from console.app import make_app
from console.screens.modals import ConfirmScreen
from console.widgets.navbar import SCREENS
from tests.console.conftest import keep_notes, run, settle, show
from tests.factories import make_order, make_product
from tests.support.pilot import wait_until


def test_every_screen_opens_at_80x24(session, console_app):
    async def scenario(pilot):
        assert pilot.app.screen.name == "dashboard"
        for key, name, _ in SCREENS:
            await show(pilot, key)
            assert pilot.app.screen.name == name
            assert pilot.app.screen.query_one(".navbar")

    run(console_app, scenario, size=(80, 24))


def test_every_binding_has_an_id_and_a_description(session, console_app):
    async def scenario(pilot):
        nodes = [pilot.app] + [pilot.app.get_screen(name) for _, name, _ in SCREENS]
        for node in nodes:
            for binding in node.BINDINGS:
                if binding.action in ("command_palette", "quit"):
                    continue  # Textual's own
                assert binding.id and binding.description, (node, binding)

    run(console_app, scenario)


def test_operator_actions_are_in_the_command_palette(session, console_app):
    make_order(session, [(make_product(session), 1)], status="needs_attention")

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"retry fulfilment")

        def retry_highlighted() -> bool:  # the palette's search has found the action
            found = pilot.app.screen.query(CommandList)
            if not found or found.first().highlighted is None:
                return False
            found_list = found.first()
            prompt = found_list.get_option_at_index(found_list.highlighted or 0).prompt
            return "Retry fulfilment" in str(prompt)

        await wait_until(pilot, retry_highlighted)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ConfirmScreen)

    run(console_app, scenario)


def test_the_dashboard_shows_the_figures(session, console_app):
    product = make_product(session, title="Rare Game", low_stock_threshold=3)
    make_order(session, [(product, 1)], status="needs_attention")

    async def scenario(pilot):
        await settle(pilot)
        screen = pilot.app.screen
        assert "Needs attention:     1" in str(screen.query_one("#dash-fulfilment").render())
        assert "Rare Game" in str(screen.query_one("#dash-stock").render())

    run(console_app, scenario)


def test_an_operator_needs_a_name(test_settings):
    with pytest.raises(ValueError):
        make_app(test_settings, operator="  ")


def test_question_mark_shows_the_keys_of_the_current_screen(console_app):
    """Issue #17, help and habits: ``?`` (or F1) shows the screen's keys, again hides."""
    from textual.widgets import HelpPanel

    from tests.console.conftest import run, show

    async def scenario(pilot):
        await show(pilot, "2")
        await pilot.press("question_mark")
        await pilot.pause()
        assert pilot.app.screen.query(HelpPanel)
        await pilot.press("f1")
        await pilot.pause()
        assert not pilot.app.screen.query(HelpPanel)

    run(console_app, scenario)


def test_q_quits_at_once_when_nothing_is_running(console_app, monkeypatch):
    """Issue #17, help and habits: ``q`` quits."""
    exits = []
    monkeypatch.setattr(console_app, "exit", lambda *a, **kw: exits.append(a))

    async def scenario(pilot):
        await show(pilot, "5")
        await pilot.press("q")
        await pilot.pause()
        assert exits == [()]

    run(console_app, scenario)


def test_q_asks_first_while_work_is_running(console_app, monkeypatch):
    exits = []
    monkeypatch.setattr(console_app, "exit", lambda *a, **kw: exits.append(a))
    release = threading.Event()

    async def scenario(pilot):
        await show(pilot, "3")
        # held until the scenario's end, however slowly the presses below are handled
        pilot.app.run_worker(release.wait, thread=True, group="import")
        try:
            await pilot.pause()
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ConfirmScreen)
            assert "work is running" in pilot.app.screen.title_text
            await pilot.press("n")
            await pilot.pause()
            assert exits == [] and pilot.app.screen.name == "inventory"
            await pilot.press("q")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert exits == [()]
        finally:  # in the scenario: the app's end waits for the worker's thread
            release.set()
        await settle(pilot)

    run(console_app, scenario)


LISTS = ["inventory", "orders", "audit", "alerts", "webhooks", "outbox", "products", "offers"]


def test_every_list_reloads_itself_and_says_when(session, test_settings, queued_jobs):
    """Issue #17: every list refreshes on its own (the app's timer) with a visible
    "updated hh:mm:ss"; a tick while the operator types in a field does not reload."""
    from datetime import UTC, datetime

    from core.services.audit import Actor, record_audit

    app = make_app(
        test_settings,
        operator="alice",
        refresh_seconds=3600,
        provider_clients=lambda: {},
        now=lambda: datetime(2026, 1, 2, 9, 8, 7, tzinfo=UTC),
    )

    async def scenario(pilot):
        await settle(pilot)
        for name in LISTS:
            screen = pilot.app.get_screen(name)
            assert screen.reload_every == 3600, name
            pilot.app.switch_screen(name)
            await settle(pilot)
            assert "updated 09:08:07" in pilot.app.screen.sub_title, name
        await show(pilot, "5")
        table = pilot.app.screen.query_one("#audit-table", DataTable)
        before = table.row_count
        record_audit(
            session=session,
            actor=Actor.operator("bob"),
            action="key.reveal",
            object_type="key",
            object_id="k-9",
        )
        session.commit()
        pilot.app.screen.query_one("#audit-filter", Input).focus()
        await pilot.pause()
        pilot.app.screen._refresh_tick()
        await settle(pilot)
        assert table.row_count == before
        table.focus()
        await pilot.pause()
        pilot.app.screen._refresh_tick()
        await settle(pilot)
        assert table.row_count == before + 1

    run(app, scenario)


def test_orders_reload_quietly_and_keep_the_order_in_hand(session, test_settings, queued_jobs):
    """The Orders list reloads on the timer too: a new order appears, the cursor stays
    on the order the operator was on, and a search with no match is not announced again."""
    from tests.factories import make_order, make_product

    product = make_product(session, slug="tick-game", title="Tick Quest")
    first = make_order(session, [(product, 1)], status="fulfilled", email="a@example.com")
    second = make_order(session, [(product, 1)], status="fulfilled", email="b@example.com")
    # notices counted as told, not as still on screen (a toast expires after 5 s)
    app = keep_notes(make_app(test_settings, operator="alice", refresh_seconds=3600))

    def no_match_notices() -> int:
        return sum(text.startswith("No order matches") for _, text in app.notes)

    async def scenario(pilot):
        await settle(pilot)
        await show(pilot, "4")
        table = pilot.app.screen.query_one("#order-results", DataTable)
        assert table.row_count == 2
        table.focus()
        table.move_cursor(row=table.get_row_index(first.number))
        await settle(pilot)
        make_order(session, [(product, 1)], status="paid", email="c@example.com")
        pilot.app.screen._refresh_tick()
        await settle(pilot)
        assert table.row_count == 3
        assert pilot.app.screen.selected_key(table) == first.number
        assert second.number in pilot.app.screen.results
        # a search that found nothing: the tick reloads it without a second notice
        search = pilot.app.screen.query_one("#order-search", Input)
        search.focus()
        search.value = "nobody-matches-this"
        await pilot.press("enter")
        await settle(pilot)
        assert no_match_notices() == 1
        table.focus()
        await pilot.pause()
        pilot.app.screen._refresh_tick()
        await settle(pilot)
        assert no_match_notices() == 1
        assert "updated" in pilot.app.screen.sub_title

    run(app, scenario)
