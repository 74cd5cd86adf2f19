"""Live status watchers for the order page, kept in bounds.

``OrderState.watch`` is an event any browser can send, as often as it likes; each one
used to start a loop that read the database every second for ten minutes. Here:

- **One watcher per client and order.** A watcher is registered under (the browser
  tab's Reflex token, the order number) with the page load's generation; a second call
  for the same tab and order is refused unless it comes from a newer page load, which
  takes the slot over (the older loop sees it is no longer current and ends).
- **Bounded per worker.** At most :data:`MAX_WATCHERS` run in one web process; past that
  a page shows its status without live updates (a reload shows the latest).
- **Stopped on disconnect.** Each tick first asks whether the tab still has a websocket
  on this worker (Reflex's token manager); a closed tab ends its watcher within a tick.

The loop itself (:func:`run_watcher`) takes its clock, its database read and its
connection check as arguments, so tests drive it deterministically.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final

MAX_WATCHERS: Final = 200
INTERVAL_SECONDS: Final = 1.0
WATCH_SECONDS: Final = 600

Key = tuple[str, str]  # (client token, order number)


class Watchers:
    """The watchers running in this process, by (client, order), with their generation."""

    def __init__(self, limit: int = MAX_WATCHERS) -> None:
        self.limit = limit
        self._running: dict[Key, int] = {}
        self._lock = threading.Lock()

    def start(self, key: Key, generation: int) -> bool:
        """Take the slot for ``key``; False when a watcher of this or a newer page load
        already has it, or when the process runs :attr:`limit` watchers."""
        with self._lock:
            current = self._running.get(key)
            if current is not None and current >= generation:
                return False
            if current is None and len(self._running) >= self.limit:
                return False
            self._running[key] = generation
            return True

    def stop(self, key: Key, generation: int) -> None:
        with self._lock:
            if self._running.get(key) == generation:
                del self._running[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)


WATCHERS = Watchers()


async def run_watcher(
    *,
    key: Key,
    generation: int,
    is_current: Callable[[], Awaitable[bool]],
    refresh: Callable[[], Awaitable[bool]],
    connected: Callable[[], bool],
    on_start: Callable[[], Awaitable[None]] | None = None,
    registry: Watchers | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    seconds: float = WATCH_SECONDS,
) -> str:
    """Refresh every :data:`INTERVAL_SECONDS` until the order settles (``refresh``
    returns True), the tab goes away, a newer page load takes over or ``seconds`` pass.
    Returns why it ended (``refused`` when it never started)."""
    registry = registry if registry is not None else WATCHERS
    if not registry.start(key, generation):
        return "refused"
    deadline = clock() + seconds
    try:
        if on_start is not None:
            await on_start()
        while clock() < deadline:
            await sleep(INTERVAL_SECONDS)
            if not connected():
                return "disconnected"
            if not await is_current():
                return "replaced"
            if await refresh():
                return "settled"
        return "timed out"
    finally:
        registry.stop(key, generation)


def client_connected(token: str) -> bool:
    """Whether the browser tab ``token`` still has a websocket to the running app (True
    outside a running app: tests and scripts have no sockets to lose)."""
    module = sys.modules.get("web.web")  # the running app's module (rxconfig app_name)
    app = getattr(module, "app", None)
    namespace = getattr(app, "event_namespace", None)
    manager = getattr(namespace, "_token_manager", None)
    sockets = getattr(manager, "token_to_socket", None)
    if sockets is None:
        return True
    return token in sockets
