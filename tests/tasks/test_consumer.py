"""``tasks.consumer`` without a process: the queue watch's clock and log lines, and the
filter that keeps Huey's per-poll tracebacks to one line per interval."""

from __future__ import annotations

import logging

from huey import MemoryHuey

from tasks.consumer import OnePerInterval, QueueWatch, last_heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_counts_time_without_a_beat_and_logs_an_outage_briefly(caplog):
    huey = MemoryHuey("watch-test")
    clock = Clock()
    watch = QueueWatch(huey, every=0.5, periodic=False, log_every=10, clock=clock)
    assert watch.beat() and last_heartbeat(huey) is not None

    def down(*_args, **_kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    huey.storage.put_data = down
    with caplog.at_level(logging.INFO, logger="keyshop.worker"):
        for _ in range(60):  # 30 s of beats every half second, all failing
            clock.now += 0.5
            assert not watch.beat()
        assert watch.seconds_without_beat() == 30
        del huey.storage.put_data  # the queue is back
        clock.now += 0.5
        assert watch.beat() and watch.seconds_without_beat() == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # at 0, 10 and 20 s down, then back
    assert lines[0].startswith("the queue has been unreachable for 0 s: ConnectionError: Error 111")
    assert lines[-1] == "the queue is reachable again after 30 s"


def test_hueys_queue_errors_become_one_line_per_interval(caplog):
    logger = logging.getLogger("huey.consumer.Worker.test")
    logger.addFilter(OnePerInterval(every=3600))
    with caplog.at_level(logging.INFO, logger=logger.name):
        for _ in range(50):
            try:
                raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
            except ConnectionError:
                logger.exception("Error reading from queue")
        logger.info("Unrelated %s", "line")
    records = caplog.records
    assert [r.getMessage() for r in records] == [
        "Error reading from queue: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused.",
        "Unrelated line",
    ]
    assert records[0].exc_info is None
