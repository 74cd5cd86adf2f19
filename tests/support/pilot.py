"""Waiting for a condition in a Textual Pilot test (never sleeping as proof)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot


async def wait_until(pilot: Pilot, condition: Callable[[], bool], *, rounds: int = 2000) -> None:
    """Let the app run (timers, workers, messages) until ``condition()`` holds; fail
    after ``rounds`` turns of the event loop (each a few milliseconds at most)."""
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("the condition never held")


async def until_steady(pilot: Pilot, *, times: int = 3, rounds: int = 300) -> None:
    """Let the app run until what it shows stops changing: the same screenshot
    ``times`` turns in a row, 50 ms apart. For snapshots: a table lays its columns out
    for rows just added on a later refresh, which a loaded machine can delay past any
    fixed pause."""
    last, same = None, 0
    for _ in range(rounds):
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.05)
        shot = pilot.app.export_screenshot()
        same = same + 1 if shot == last else 0
        if same >= times:
            return
        last = shot
    raise AssertionError("the screen never stopped changing")
