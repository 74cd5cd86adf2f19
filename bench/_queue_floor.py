"""The queue alone: a Huey consumer whose one task does nothing, for
``bench/fulfilment.py --scenario queue_ceiling``. Built like the shop's (tasks/queue.py:
Redis storage, no results, UTC; tasks/consumer.py: thread workers with the same polling
options), so what it reaches is what Huey and Redis can hand out on this machine before
any of keyshop's work: a limit no worker built on them can pass.

    python -c 'import bench._queue_floor as q; q.consume(URL, NAME, THREADS)'
"""

from __future__ import annotations

from typing import Any

from huey import RedisHuey
from huey.consumer import Consumer

from tasks.consumer import POLLING


def make_huey(url: str, name: str) -> tuple[RedisHuey, Any]:
    huey = RedisHuey(name, url=url, results=False, utc=True)

    @huey.task(name="bench_noop")
    def noop(i: int) -> None:
        return None

    return huey, noop


def consume(url: str, name: str, threads: int) -> None:
    huey, _ = make_huey(url, name)
    Consumer(huey, workers=threads, worker_type="thread", periodic=False, **POLLING).run()
