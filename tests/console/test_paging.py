"""Long lists open with one page and load the next as the cursor nears the end."""

from __future__ import annotations

from textual.widgets import DataTable

from core.models import WebhookEvent
from core.services.audit import Actor, record_audit
from tests.console.conftest import run, settle, show
from tests.factories import make_order, make_product


async def scroll_to_end(pilot, table_id):
    table = pilot.app.screen.query_one(table_id, DataTable)
    table.focus()
    table.move_cursor(row=table.row_count - 1)
    await settle(pilot)
    return table


def test_orders_audit_and_webhooks_page_lazily(session, console_app):
    product = make_product(session)
    numbers = [
        make_order(session, [(product, 1)], number=f"KS-PAGE-{n:03d}").number for n in range(120)
    ]
    for n in range(150):
        record_audit(
            session=session, actor=Actor.system(), action="test.page", object_type="x", object_id=n
        )
    for n in range(110):
        session.add(WebhookEvent(source="stripe", event_id=f"evt_{n}", raw_body=b"{}"))
    session.commit()

    async def scenario(pilot):
        await show(pilot, "4")
        table = pilot.app.screen.query_one("#order-results", DataTable)
        assert table.row_count == 100 and str(table.get_row_at(0)[0]) == numbers[-1]
        table = await scroll_to_end(pilot, "#order-results")
        assert table.row_count == 120 and str(table.get_row_at(119)[0]) == numbers[0]

        await show(pilot, "5")
        assert pilot.app.screen.query_one("#audit-table", DataTable).row_count == 100
        table = await scroll_to_end(pilot, "#audit-table")
        assert table.row_count == 150

        await show(pilot, "7")
        assert pilot.app.screen.query_one("#webhooks-table", DataTable).row_count == 100
        table = await scroll_to_end(pilot, "#webhooks-table")
        assert table.row_count == 110
        assert "outcome:" in str(pilot.app.screen.query_one("#webhook-body").render())

    run(console_app, scenario)
