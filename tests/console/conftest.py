"""Console tests: the real app, driven by Pilot, against the real test database."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

import pytest
from sqlmodel import col, select
from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerState

from console.app import KeyshopConsole, make_app
from core.models import AuditEvent
from core.providers.base import Balance, ProviderTransientError
from tests.factories import fresh

OPERATOR = "alice"
SIZE = (100, 30)


class FakeClient:
    """A provider client for the screens that only ask for balances: answers with
    ``amount`` at once, fails with ``error``, or hangs until released."""

    def __init__(
        self, name: str, amount: int = 123456, *, error: str | None = None, hang: bool = False
    ):
        self.name = name
        self.amount = amount
        self.error = error
        self.released = threading.Event()
        if not hang:
            self.released.set()

    def balance(self) -> Balance:
        self.released.wait(10)
        if self.error:
            raise ProviderTransientError(self.name, self.error)
        return Balance(self.amount, "EUR")


def fake_clients(settings) -> dict[str, FakeClient]:
    return {name: FakeClient(name) for name in settings.providers}


@pytest.fixture
def console_app(test_settings, engine, queued_jobs) -> KeyshopConsole:
    """The console as operator ``alice``, with provider clients that answer balances at
    once and a queue holding 3 jobs; notifications it shows are kept in ``app.notes`` as
    ``(severity, message)``."""
    clients = fake_clients(test_settings)
    app = make_app(
        test_settings,
        operator=OPERATOR,
        refresh_seconds=0,
        provider_clients=lambda: clients,
        queue_depth=lambda: 3,
    )
    return keep_notes(app)


def keep_notes(app: KeyshopConsole) -> KeyshopConsole:
    notes: list[tuple[str, str]] = []
    original = app.notify

    def notify(message, *, title="", severity="information", **kw):  # type: ignore[no-untyped-def]
        notes.append((severity, str(message)))
        return original(message, title=title, severity=severity, **kw)

    app.notify = notify  # type: ignore[method-assign]
    app.notes = notes  # type: ignore[attr-defined]
    return app


def run(app: KeyshopConsole, scenario: Callable[[Pilot], Awaitable[None]], size=SIZE) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)
            # what the scenario's last action posted is handled before the app closes
            await settle(pilot)

    asyncio.run(main())


async def settle(pilot: Pilot) -> None:
    """Until no worker is pending or running and no message waits in the app's or the
    screen's queues (what the workers posted is handled).

    Idle must be seen three times in a row: a key press can schedule the worker that
    does the work (a modal's callback, a message) a moment after the first check."""
    app = pilot.app
    idle = 0
    for _ in range(400):
        await pilot.pause()
        # a worker cancelled by a newer one of its group (its answer is dropped) is not
        # waited for; one cancelled meanwhile raises, and the next round looks again
        with contextlib.suppress(WorkerCancelled):
            await app.workers.wait_for_complete([w for w in app.workers if not w.is_cancelled])
        await pilot.pause()
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers)
        # a finished worker's message (rows loaded, saved) may still wait to be handled
        waiting = app.message_queue_size or any(
            node.message_queue_size for node in app.screen.walk_children(with_self=True)
        )
        if busy or waiting:
            idle = 0
        else:
            idle += 1
            if idle >= 3:
                return
    raise AssertionError("workers did not settle")


async def show(pilot: Pilot, key: str) -> None:
    await pilot.press(key)
    await settle(pilot)


def audit(session, action: str) -> list[AuditEvent]:
    return list(
        fresh(session).exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        )
    )
