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
