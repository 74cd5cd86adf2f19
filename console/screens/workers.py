"""Worker and queue health: the jobs waiting and how long the oldest has waited, each
worker with its last heartbeat (stale past ``worker_stale_seconds``), and the tasks that
failed for good with their error; ``r`` queues the highlighted one again (confirmed).

What it reads comes from ``make_app(queue_health=..., retry_task=...)`` (the CLI passes
``tasks.jobs.queue_health`` and ``tasks.jobs.retry_failed_task``); not wired: says so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from console.screens.base import ActionFailedError, ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import short
from console.widgets.navbar import NavBar
from core.jobs import FailedTask, QueueHealth


class QueueHealthRead(Message):
    """The queue's health (None with ``error`` when it could not be read)."""

    def __init__(self, health: QueueHealth | None, error: str | None = None) -> None:
        super().__init__()
        self.health = health
        self.error = error


def seconds(n: int) -> str:
    """``75`` → ``1m 15s``; ``4000`` → ``1h 06m``."""
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m {n % 60:02d}s"
    return f"{n // 3600}h {n % 3600 // 60:02d}m"


class WorkersScreen(ConsoleScreen):
    NAME = "workers"
    AUTO_FOCUS = "#failed-table"
    BINDINGS = [Binding("r", "retry", "Retry task", id="workers.retry")]
    PALETTE = [("Queue the selected failed task again", "retry", "asks for confirmation")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.failed: dict[str, FailedTask] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Static("", id="queue-summary", classes="detail", markup=False)
        yield DataTable(id="workers-table", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="failed-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="failed-detail", classes="detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        workers = self.query_one("#workers-table", DataTable)
        for label, width in (("Worker", 30), ("Last heartbeat", 16), ("Periodic", 8)):
            workers.add_column(label, width=width)
        workers.border_title = "Workers"
        failed = self.query_one("#failed-table", DataTable)
        for label, width in (("Failed at", 16), ("Task", 18), ("Arguments", 14), ("Error", 20)):
            failed.add_column(label, width=width)
        failed.border_title = "Failed tasks (r: queue again)"

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        if self.deps.queue_health is None:
            self.post_message(QueueHealthRead(None, "the queue is not wired to this console"))
            return
        try:
            health = self.deps.queue_health()
        except Exception as exc:  # noqa: BLE001 (the queue is another system: show, never raise)
            self.post_message(QueueHealthRead(None, type(exc).__name__))
        else:
            self.post_message(QueueHealthRead(health))

    @on(QueueHealthRead)
    def show_health(self, message: QueueHealthRead) -> None:
        summary = self.query_one("#queue-summary", Static)
        workers = self.query_one("#workers-table", DataTable)
        failed = self.query_one("#failed-table", DataTable)
        health = message.health
        if health is None:
            summary.update(f"Queue unreadable: {message.error}")
            self.sub_title = self.updated()
            return
        stale = self.settings.worker_stale_seconds
        oldest = (
            "none waiting"
            if health.oldest_seconds is None
            else f"the oldest waiting {seconds(health.oldest_seconds)}"
        )
        alive = sum(1 for w in health.workers if w.seconds_since <= stale)
        warning = "" if alive else " · NO WORKER SEEN RECENTLY: jobs are not being run"
        summary.update(
            f"{health.depth} job(s) queued, {oldest} · {alive} of {len(health.workers)} "
            f"worker(s) alive (beat within {stale} s) · {len(health.failed)} failed task(s)"
            + warning
        )
        workers.clear()
        for w in health.workers:
            late = w.seconds_since > stale
            workers.add_row(
                w.name,
                Text(
                    f"{seconds(w.seconds_since)} ago" + (" STALE" if late else ""),
                    style="bold red" if late else "",
                ),
                "yes" if w.periodic else "no",
                key=w.name,
            )
        keep = self.selected_key(failed)
        failed.clear()
        self.failed = {f.id: f for f in health.failed}
        for f in health.failed:
            at = datetime.fromtimestamp(f.failed_at, UTC)
            failed.add_row(
                f"{at:%Y-%m-%d %H:%M}",
                short(f.job.rsplit(".", 1)[-1], 18),
                short(", ".join(map(str, f.args)), 14),
                Text(short(f.error, 20), style="red"),
                key=f.id,
            )
        if keep in self.failed:
            failed.move_cursor(row=failed.get_row_index(keep))
        self.sub_title = f"queue {health.depth} · {self.updated()}"
        self._show_failed()

    @on(DataTable.RowHighlighted, "#failed-table")
    def _show_failed(self) -> None:
        f = self.failed.get(self.selected_key(self.query_one("#failed-table", DataTable)) or "")
        text = "" if f is None else f"{f.job}{tuple(f.args)}: {f.error}"
        self.query_one("#failed-detail", Static).update(text)

    def action_retry(self) -> None:
        f = self.failed.get(self.selected_key(self.query_one("#failed-table", DataTable)) or "")
        if f is None:
            self.notify("No failed task selected.", severity="warning")
            return
        retry = self.deps.retry_task
        if retry is None:
            self.notify("The queue is not wired to this console.", severity="warning")
            return
        task_id = f.id

        def call() -> str:
            try:
                return retry(task_id)
            except LookupError as exc:
                raise ActionFailedError(str(exc)) from exc

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_operator_action("Retry task", call)

        name = f.job.rsplit(".", 1)[-1]
        self.app.push_screen(
            ConfirmScreen(
                f"Queue {name}{tuple(f.args)} again?",
                f"It failed with: {short(f.error, 200)}. Tasks are idempotent: one that "
                "half ran does not do anything twice.",
                confirm_label="Queue again",
            ),
            confirmed,
        )
