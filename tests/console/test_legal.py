"""The Legal screen: each legal page with when it was last written; editing one saves its
Markdown through the operator service (audited); an empty page is refused in the editor,
which stays open, and nothing is written."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable, Static, TextArea

from console.screens.legal import LegalPageScreen
from core.models import LegalPage
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh
from tests.support.pilot import wait_until


def test_write_a_legal_page_from_the_console(session, console_app):
    async def scenario(pilot):
        await show(pilot, "f6")
        table = pilot.app.screen.query_one("#legal-table", DataTable)
        assert [str(table.get_row(slug)[2]) for slug in ("terms", "withdrawal")] == [
            "not written yet",
            "not written yet",
        ]
        table.focus()
        table.move_cursor(row=table.get_row_index("withdrawal"))
        await pilot.press("e")
        await settle(pilot)
        editor = pilot.app.screen
        assert isinstance(editor, LegalPageScreen)
        assert editor.query_one("#legal-body", TextArea).text == ""  # not the placeholder
        editor.query_one("#confirm").press()  # empty: refused, the editor stays open
        await settle(pilot)
        assert pilot.app.screen is editor
        assert "empty" in str(editor.query_one("#legal-error", Static).render())
        editor.query_one("#legal-body", TextArea).text = "# Withdrawal\n\nYou may withdraw…"
        editor.query_one("#confirm").press()
        await settle(pilot)
        assert not isinstance(pilot.app.screen, LegalPageScreen)
        # The list reloads after the save, and the save's outcome is told. On a loaded
        # machine either can come after settle() returns, and the reload on the screen's
        # return can show the saved row before the outcome is told: wait for both.
        told = ("information", "Right of withdrawal saved: 31 characters")
        await wait_until(
            pilot,
            lambda: str(table.get_row("withdrawal")[3]) == "31" and told in console_app.notes,
        )

    run(console_app, scenario)
    [page] = fresh(session).exec(select(LegalPage)).all()
    assert (page.slug, page.title, page.body) == (
        "withdrawal",
        "Right of withdrawal",
        "# Withdrawal\n\nYou may withdraw…",
    )
    [event] = audit(session, "legal.update")
    assert event.actor_id == OPERATOR and event.object_id == "withdrawal"
