"""Console tests: the real app, driven by Pilot, against the real test database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlmodel import select
from textual.pilot import Pilot
from textual.worker import WorkerState

from console.app import KeyshopConsole, make_app
from core.models import AuditEvent
from tests.factories import fresh

OPERATOR = "alice"
SIZE = (100, 30)


@pytest.fixture
def console_app(test_settings, engine, queued_jobs) -> KeyshopConsole:
    """The console as operator ``alice``; notifications it shows are kept in
    ``app.notes`` as ``(severity, message)``."""
    app = make_app(test_settings, operator=OPERATOR, refresh_seconds=0)
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

    asyncio.run(main())


async def settle(pilot: Pilot) -> None:
    """Until no worker is pending or running and the messages they posted are handled."""
    app = pilot.app
    for _ in range(200):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            return
    raise AssertionError("workers did not settle")


async def show(pilot: Pilot, key: str) -> None:
    await pilot.press(key)
    await settle(pilot)


def audit(session, action: str) -> list[AuditEvent]:
    return list(fresh(session).exec(select(AuditEvent).where(AuditEvent.action == action)))
