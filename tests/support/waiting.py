"""Waiting for a condition in tests: poll until it holds, fail with what was awaited.
Never sleep as proof; wait for the row, the log line or the message instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 40.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """``predicate()``'s first truthy value, polled every ``interval`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
