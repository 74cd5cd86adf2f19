"""The consumer ``keyshop worker`` runs: Huey's, plus a heartbeat, and an exit when the
queue is gone.

**Heartbeat.** Every worker process writes the time into the queue's own key-value
storage (a Redis hash, or the SQLite queue's ``kv`` table, per queue name) every
``Settings.heartbeat_seconds``, from a thread of its own. ``/api/health`` and the
console read it with :func:`last_heartbeat`; :func:`core.jobs.worker_presence` says what
its age means. The newest beat of any worker counts: the question is whether anyone
is consuming, not who. Ages are wall-clock differences, so workers' clocks must agree
(NTP) with the web's and the console's.

**A queue that is gone.** The beat is also the worker's probe of its queue. When no beat
could be stored for ``KEYSHOP_QUEUE_DOWN_EXIT_SECONDS`` the consumer stops and
``keyshop worker`` exits with status 1 and one line, so a supervisor restarts it,
instead of a process that stays up doing nothing. Meanwhile one line is logged when the
queue goes, one per :data:`LOG_EVERY` seconds while it stays down, and one when it comes
back; Huey's own workers, which log a traceback on every poll of a dead queue (several a
second per thread), are cut to one line per interval by :class:`OnePerInterval`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from huey import Huey
from huey.constants import EmptyData
from huey.consumer import Consumer, ConsumerStopped

from core.config import Settings
from tasks.health import note_worker_beat, watch_failures

log = logging.getLogger("keyshop.worker")

HEARTBEAT_KEY = "keyshop.worker-heartbeat"
LOG_EVERY = 10.0  # seconds between two lines about the same queue outage
STOP_TIMEOUT = 10.0  # seconds a worker giving up waits for tasks in flight


# -- the heartbeat ----------------------------------------------------------------


def write_heartbeat(huey: Huey, *, at: float | None = None, periodic: bool = False) -> None:
    """Record that a worker is alive now (``at``: epoch seconds, for tests)."""
    beat = {
        "at": time.time() if at is None else at,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "periodic": periodic,
    }
    huey.storage.put_data(HEARTBEAT_KEY, json.dumps(beat).encode())
    note_worker_beat(huey, beat)  # each worker's own beat, for the console's worker screen


def last_heartbeat(huey: Huey) -> float | None:
    """When a worker of this queue last said it was alive (epoch seconds), or None if
    none ever did. Raises what the queue raises when it cannot be read."""
    raw = huey.storage.peek_data(HEARTBEAT_KEY)
    if raw is EmptyData or raw is None:
        return None
    try:
        return float(json.loads(raw)["at"])
    except (ValueError, KeyError, TypeError):
        return None


class QueueWatch:
    """Writes the heartbeat every ``every`` seconds and remembers when one last got
    through; logs the queue's outages, briefly."""

    def __init__(
        self,
        huey: Huey,
        *,
        every: float,
        periodic: bool,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.huey = huey
        self.every = every
        self.periodic = periodic
        self.log_every = log_every
        self.clock = clock
        self.last_ok = clock()  # the queue gets the whole bound from the start
        self.last_error = ""
        self._down_since: float | None = None
        self._next_log = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyshop-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.every)

    def beat(self) -> bool:
        """One heartbeat; True if it was stored."""
        try:
            write_heartbeat(self.huey, periodic=self.periodic)
        except Exception as exc:  # noqa: BLE001 (a queue that is down is counted, never raised)
            now = self.clock()
            self.last_error = one_line(exc)
            if self._down_since is None:
                self._down_since = now
            if now >= self._next_log:
                self._next_log = now + self.log_every
                log.error(
                    "the queue has been unreachable for %.0f s: %s",
                    now - self._down_since,
                    self.last_error,
                )
            return False
        self.last_ok = self.clock()
        if self._down_since is not None:
            log.warning(
                "the queue is reachable again after %.0f s", self.last_ok - self._down_since
            )
            self._down_since = None
            self._next_log = 0.0
        return True

    def seconds_without_beat(self) -> float:
        return self.clock() - self.last_ok


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# -- Huey's own logging of a dead queue -------------------------------------------


class OnePerInterval(logging.Filter):
    """Lets through one record per ``every`` seconds of each of Huey's "Error reading
    from queue" kind of messages, as one line without the traceback, saying how many
    like it were dropped. Other records pass untouched."""

    PREFIXES = ("Error reading", "Error enqueueing")

    def __init__(self, every: float = LOG_EVERY) -> None:
        super().__init__()
        self.every = every
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or not str(record.msg).startswith(self.PREFIXES):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(key, 0.0):
                self._dropped[key] = self._dropped.get(key, 0) + 1
                return False
            self._next[key] = now + self.every
            dropped = self._dropped.pop(key, 0)
        exc = record.exc_info[1]
        message = record.getMessage().rstrip(".")
        if exc is not None:
            message += f": {one_line(exc)}"
        if dropped:
            message += f" ({dropped} more like it in the last {self.every:.0f} s not logged)"
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text = None, None
        return True


def quiet_queue_errors(every: float = LOG_EVERY) -> None:
    """Install :class:`OnePerInterval` on the loggers of Huey's workers and scheduler."""
    for name in ("huey.consumer.Worker", "huey.consumer.Scheduler"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OnePerInterval) for f in logger.filters):
            logger.addFilter(OnePerInterval(every))


# -- the consumer -------------------------------------------------------------------


class KeyshopConsumer(Consumer):
    """Huey's consumer with a :class:`QueueWatch`. After :meth:`run` returns,
    ``queue_lost`` says why it gave up (None: it was asked to stop)."""

    def __init__(
        self, huey: Huey, *, heartbeat_seconds: float, give_up_after: float, **options: Any
    ):
        super().__init__(huey, **options)
        self.give_up_after = give_up_after
        self.watch = QueueWatch(
            huey, every=heartbeat_seconds, periodic=bool(options.get("periodic"))
        )
        self.queue_lost: str | None = None

    def start(self) -> None:
        super().start()
        self.watch.start()

    def loop(self, health_check_ts: float | None = None) -> float | None:
        health_check_ts = super().loop(health_check_ts)
        if self.watch.seconds_without_beat() >= self.give_up_after:
            self.queue_lost = self.watch.last_error or "no answer"
            log.error(
                "no heartbeat could be stored for %.0f s; stopping so the worker is restarted",
                self.give_up_after,
            )
            self.watch.stop()
            self.shutdown_timeout = STOP_TIMEOUT
            self.stop(graceful=True)
            raise ConsumerStopped
        return health_check_ts


#: How an idle worker thread polls: Huey's back-off from 50 ms up to 1 s (with Redis the
#: threads block on the queue instead). bench/_queue_floor.py builds its consumer alike.
POLLING: dict[str, float] = {"initial_delay": 0.05, "backoff": 1.5, "max_delay": 1.0}


def make_consumer(
    huey: Huey, settings: Settings, *, workers: int, periodic: bool
) -> KeyshopConsumer:
    """The consumer for ``keyshop worker``: threads, the scheduler (with the periodic
    tasks when ``periodic``), the heartbeat, and Huey's queue errors kept brief."""
    quiet_queue_errors()
    watch_failures(huey)
    return KeyshopConsumer(
        huey,
        heartbeat_seconds=settings.heartbeat_seconds,
        give_up_after=settings.queue_down_exit_seconds,
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        check_worker_health=True,
        **POLLING,
    )
