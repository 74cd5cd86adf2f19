"""The worker and queue health screen (F9): queue depth with the oldest job's age,
workers with their heartbeat, failed tasks with their error and a retry."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import DataTable

from console.app import make_app
from console.screens.modals import ConfirmScreen
from core.jobs import FailedTask, QueueHealth, WorkerSeen
from tests.console.conftest import keep_notes, run, settle, show

FAILED_AT = datetime(2026, 1, 2, 9, 30, tzinfo=UTC).timestamp()


def health(failed=True, workers=None):
    return QueueHealth(
        depth=12,
        oldest_seconds=754,
        workers=workers
        if workers is not None
        else [WorkerSeen("web-1:41", 3, True), WorkerSeen("web-2:77", 400, False)],
        failed=[
            FailedTask(
                id="t-1",
                job="tasks.jobs.send_order_email",
                args=(42, "refund"),
                error="SMTPServerDisconnected: Connection unexpectedly closed",
                failed_at=FAILED_AT,
            )
        ]
        if failed
        else [],
    )


def workers_app(test_settings, state, retried):
    def retry(task_id):
        retried.append(task_id)
        state["failed"] = False
        return "send_order_email(42, 'refund') queued again"

    return keep_notes(
        make_app(
            test_settings,
            operator="alice",
            refresh_seconds=0,
            provider_clients=lambda: {},
            queue_health=lambda: health(failed=state["failed"]),
            retry_task=retry,
        )
    )


def cells(pilot, table_id):
    table = pilot.app.screen.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_queue_workers_and_failed_tasks_are_shown(session, test_settings, queued_jobs):
    app = workers_app(test_settings, {"failed": True}, [])

    async def scenario(pilot):
        await show(pilot, "f9")
        assert pilot.app.screen.name == "workers"
        summary = str(pilot.app.screen.query_one("#queue-summary").render())
        assert "12 job(s) queued, the oldest waiting 12m 34s" in summary
        assert "1 of 2 worker(s) alive" in summary
        workers = cells(pilot, "#workers-table")
        assert workers[0][:2] == ["web-1:41", "3s ago"]
        assert workers[1][1] == "6m 40s ago STALE"
        [failed] = cells(pilot, "#failed-table")
        assert failed[0] == "2026-01-02 09:30" and failed[1] == "send_order_email"
        detail = str(pilot.app.screen.query_one("#failed-detail").render())
        assert "SMTPServerDisconnected: Connection unexpectedly closed" in detail
        assert "updated" in pilot.app.screen.sub_title

    run(app, scenario)


def test_retry_a_failed_task_after_confirming(session, test_settings, queued_jobs):
    retried: list[str] = []
    app = workers_app(test_settings, {"failed": True}, retried)

    async def scenario(pilot):
        await show(pilot, "f9")
        await pilot.press("r")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        assert "send_order_email(42, 'refund')" in pilot.app.screen.title_text
        await pilot.press("n")
        await settle(pilot)
        assert retried == []
        await pilot.press("r", "y")
        await settle(pilot)
        assert retried == ["t-1"]
        assert cells(pilot, "#failed-table") == []

    run(app, scenario)
    assert ("information", "send_order_email(42, 'refund') queued again") in app.notes


def test_no_worker_alive_is_a_warning(session, test_settings, queued_jobs):
    app = make_app(
        test_settings,
        operator="alice",
        refresh_seconds=0,
        provider_clients=lambda: {},
        queue_health=lambda: QueueHealth(depth=3, oldest_seconds=None, workers=[], failed=[]),
    )

    async def scenario(pilot):
        await show(pilot, "f9")
        summary = str(pilot.app.screen.query_one("#queue-summary").render())
        assert "NO WORKER SEEN RECENTLY" in summary and "none waiting" in summary

    run(app, scenario)


def test_at_80_columns_the_bar_shows_the_catalogue_screen_that_is_open(
    session, test_settings, queued_jobs
):
    """Issue #17 defect 12: on a catalogue screen at 80 columns the bar was cut after
    "0 Prods", so the screen shown (F9 here) was not on it."""
    app = workers_app(test_settings, {"failed": False}, [])

    async def scenario(pilot):
        await show(pilot, "f9")
        bar = pilot.app.screen.query_one(".navbar")
        text = bar.render()
        assert "f9 Work" in text.plain and text.cell_len <= 80

    run(app, scenario, size=(80, 24))
