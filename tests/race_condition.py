"""Deterministic race conditions, in the style of Saleor's ``tests/race_condition.py``.

:func:`race_condition` patches a function so that a competing action runs at a chosen
point — before or after the real call — exactly once, in the thread that reached it
first. The competitor usually runs in another thread (:class:`Competitor`), because on
a real database it must use its own connection and transaction; the test decides how
long to wait for it at the hook (PostgreSQL with ``SKIP LOCKED`` never blocks it;
SQLite's single writer makes it wait for the first transaction's commit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pkgutil import resolve_name
from typing import Any, Generic, TypeVar
from unittest import mock

T = TypeVar("T")


class Competitor(Generic[T]):
    """Runs ``action`` in a thread of its own and keeps its result or exception."""

    def __init__(self, action: Callable[[], T], name: str = "competitor") -> None:
        self._action = action
        self.result: T | None = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        self.started.set()
        try:
            self.result = self._action()
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()

    def start(self) -> None:
        self._thread.start()
        self.started.wait(5)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the competitor has finished."""
        self._thread.join(timeout)
        return self.finished.is_set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()


@contextmanager
def race_condition(
    target: str,
    *,
    before: Callable[..., Any] | None = None,
    after: Callable[..., Any] | None = None,
) -> Iterator[mock.MagicMock]:
    """Patch ``target`` (a dotted path, e.g. ``core.services.locking.claim_available``)
    so that the first call runs ``before(*args, **kwargs)`` just before the real
    function and ``after(*args, **kwargs)`` just after it; later calls (including the
    competitor's own) are passed straight through. Yields the mock, whose
    ``call_count`` shows the patched point was reached."""
    original = resolve_name(target)
    fired = threading.Lock()
    state = {"fired": False}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fired:
            first = not state["fired"]
            state["fired"] = True
        if first and before is not None:
            before(*args, **kwargs)
        result = original(*args, **kwargs)
        if first and after is not None:
            after(*args, **kwargs)
        return result

    with mock.patch(target, side_effect=wrapper) as patched:
        yield patched
