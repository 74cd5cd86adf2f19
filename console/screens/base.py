"""What every console screen shares: the operator and settings handed down by the app,
the navigation bar, and running an operator action in a thread worker that posts
:class:`ActionSucceeded` or :class:`ActionFailed` back (a domain error becomes a
notification; nothing changed)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sqlalchemy.exc import SQLAlchemyError
from textual import on, work
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, HelpPanel, Input
from textual.worker import NoActiveWorker, Worker, get_current_worker

from console.messages import ActionFailed, ActionSucceeded
from core.config import Settings
from core.errors import DomainError
from core.jobs import QueueHealth
from core.models import utcnow
from core.providers.base import ProviderClient
from core.services.audit import Actor

log = logging.getLogger(__name__)

#: Marks a worker's message the event loop has checked and queued (see
#: :meth:`ConsoleScreen.check_message_enabled`).
_CHECKED = "_keyshop_checked_on_the_loop"


@dataclass(frozen=True)
class Dependencies:
    """What the screens get from outside core, injected by ``make_app``: the task
    queue's depth and the workers' newest heartbeat in epoch seconds, the queue's health
    and how to queue a failed task again (None: not wired),
    the provider clients, the clock, and how long to wait for provider balances."""

    queue_depth: Callable[[], int] | None = None
    worker_heartbeat: Callable[[], float | None] | None = None
    queue_health: Callable[[], QueueHealth] | None = None
    retry_task: Callable[[str], str] | None = None
    provider_clients: Callable[[], Mapping[str, ProviderClient]] = field(default=lambda: {})
    now: Callable[[], datetime] = utcnow
    balance_timeout: float = 5.0


class ActionFailedError(Exception):
    """Raised by a screen's action call when the service ran but did not succeed (a
    purchase that failed): shown as an error with the reason, never as a success."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ConsoleScreen(Screen[None]):
    """A top-level console screen.

    Subclasses implement :meth:`load` (a thread worker posting a "…Loaded" message) and
    list their operator actions in ``PALETTE`` as ``(title, action, help)`` so the
    command palette offers them too.
    """

    NAME: ClassVar[str] = ""
    PALETTE: ClassVar[list[tuple[str, str, str]]] = []
    BINDINGS = [
        Binding("f5,ctrl+r", "reload", "Refresh", id="screen.refresh"),
        Binding("escape", "leave_input", "Leave field", show=False, id="screen.leave_input"),
        Binding("question_mark,f1", "help", "Keys", show=False, id="screen.help"),
    ]

    def __init__(
        self,
        *,
        settings: Settings,
        operator: str,
        deps: Dependencies | None = None,
        reload_every: float = 0.0,
    ) -> None:
        super().__init__(name=self.NAME, id=f"{self.NAME}-screen")
        self.settings = settings
        self.operator = operator
        self.deps = deps or Dependencies()
        self.reload_every = reload_every
        self.updated_at: datetime | None = None

    def on_mount(self) -> None:
        if self.reload_every > 0:
            self.set_interval(self.reload_every, self._refresh_tick)

    def _refresh_tick(self) -> None:
        """Reload on the timer while this screen is shown, no dialog is open, the
        operator is not typing in a field (a half-typed filter is not applied) and the
        last load has answered: a newer load cancels the running one, whose rows are then
        dropped, so a load slower than the timer would never be shown."""
        if (
            self.app.screen is self
            and not isinstance(self.focused, Input)
            and not self.running("load")
        ):
            self.load()

    def running(self, group: str) -> bool:
        """Whether this screen's worker of ``group`` is still at work (and not
        cancelled). A timer starts a new one only when not: see :meth:`_refresh_tick`."""
        return any(
            w.node is self and w.group == group and not w.is_finished and not w.is_cancelled
            for w in self.app.workers
        )

    def updated(self) -> str:
        """Records that the data on screen was just loaded; returns "updated hh:mm:ss"."""
        self.updated_at = self.deps.now()
        return f"updated {self.updated_at:%H:%M:%S}"

    @property
    def actor(self) -> Actor:
        return Actor.operator(self.operator)

    def on_screen_resume(self) -> None:
        self.load()

    def check_message_enabled(self, message: Message) -> bool:
        """What a thread worker posts reaches its handler only if that worker has not
        been cancelled by then. An exclusive worker (a list's ``load``) is cancelled when
        a newer one starts; its rows, read before an action changed them, must not land
        after the newer rows and put the old ones back on screen.

        ``post_message`` calls this in the worker's thread. The message is handed to the
        event loop and queued there only if the worker is still wanted: workers are
        cancelled on the loop, so the check and the queueing cannot race a newer load."""
        if not super().check_message_enabled(message):
            return False
        if message.__dict__.pop(_CHECKED, False):
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop here: a worker's thread
            try:
                worker = get_current_worker()
            except NoActiveWorker:
                return True
            # the console is closing, and nobody will read the message: RuntimeError (no
            # loop), or the callback's task cancelled at shutdown
            with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
                self.app.call_from_thread(self._post_unless_cancelled, message, worker)
            return False
        return True

    def _post_unless_cancelled(self, message: Message, worker: Worker[object]) -> None:
        if not worker.is_cancelled:
            message.__dict__[_CHECKED] = True
            self.post_message(message)

    def action_reload(self) -> None:
        self.load()

    def action_help(self) -> None:
        """``?`` or F1: show (or hide) the keys of this screen beside it."""
        if self.query(HelpPanel):
            self.app.action_hide_help_panel()
        else:
            self.app.action_show_help_panel()

    def action_leave_input(self) -> None:
        """Escape always leaves an input field, so the screen's keys work again: focus
        goes to the screen's first table."""
        if isinstance(self.focused, Input):
            tables = self.query(DataTable)
            if tables:
                tables.first().focus()
            else:
                self.set_focus(None)

    def load(self) -> object:
        """Start the worker that (re)loads this screen's data (screens whose ``load`` is
        a ``@work`` method return its Worker)."""
        return None

    def selected_key(self, table: DataTable) -> str | None:
        """The row key of the table's cursor row (None when the table is empty)."""
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if row_key.value is None else str(row_key.value)

    @work(thread=True, group="actions")
    def run_operator_action(self, action: str, call: Callable[[], str]) -> None:
        """Run ``call`` (a service call that owns its transaction and returns what to
        tell the operator) and post the outcome."""
        try:
            text = call()
        except ActionFailedError as exc:
            self.post_message(ActionFailed(action, exc.text, verb="failed"))
        except DomainError as exc:
            self.post_message(ActionFailed(action, exc.message))
        except SQLAlchemyError as exc:
            log.error("console action %s: database error %s", action, type(exc).__name__)
            self.post_message(ActionFailed(action, f"database error ({type(exc).__name__})"))
        else:
            self.post_message(ActionSucceeded(action, text))

    @on(ActionSucceeded)
    def _action_succeeded(self, message: ActionSucceeded) -> None:
        self.notify(message.text, title=message.action)
        self.load()

    @on(ActionFailed)
    def _action_failed(self, message: ActionFailed) -> None:
        self.notify(message.text, title=f"{message.action}: {message.verb}", severity="error")
        self.load()
