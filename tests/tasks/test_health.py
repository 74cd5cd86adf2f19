"""The queue's health as the console's worker screen reads it (tasks.health): jobs
waiting with the oldest's age, each worker's heartbeat, tasks that failed for good and
queuing one again. A queue of its own in a temporary SQLite file, run by hand."""

from __future__ import annotations

import pytest
from huey import SqliteHuey

from core.jobs import Job
from tasks.consumer import write_heartbeat
from tasks.health import queue_health, retry_failed, watch_failures


@pytest.fixture
def queue(tmp_path):
    huey = SqliteHuey("health-test", filename=str(tmp_path / "q.db"), results=False)
    calls: list[str] = []

    @huey.task(retries=0)
    def sync_provider(name: str, queued_at: float | None = None) -> str:
        calls.append(name)
        if name == "broken":
            raise RuntimeError("provider said 500")
        return "ok"

    watch_failures(huey)
    return huey, sync_provider, calls


def run_next(huey) -> None:
    task = huey.dequeue()
    assert task is not None
    huey.execute(task)


def test_depth_and_the_age_of_the_oldest_job(queue):
    huey, sync_provider, _ = queue
    assert queue_health(huey, now=1000.0).oldest_seconds is None
    sync_provider("kinguin", queued_at=900.0)
    sync_provider("codeswholesale", queued_at=990.0)
    health = queue_health(huey, now=1000.0)
    assert (health.depth, health.oldest_seconds) == (2, 100)


def test_every_worker_is_listed_with_its_last_beat(queue):
    huey, _, _ = queue
    write_heartbeat(huey, at=950.0)
    write_heartbeat(huey, at=990.0, periodic=True)  # the same process: one entry
    [worker] = queue_health(huey, now=1000.0).workers
    assert (worker.seconds_since, worker.periodic) == (10, True)
    assert ":" in worker.name  # host:pid


def test_a_task_that_fails_for_good_is_listed_and_can_be_queued_again(queue):
    huey, sync_provider, calls = queue
    sync_provider("broken", queued_at=1.0)
    sync_provider("fine", queued_at=1.0)
    run_next(huey)
    run_next(huey)
    [failed] = queue_health(huey).failed
    assert failed.job.endswith("sync_provider") and failed.args == ("broken",)
    assert failed.error == "RuntimeError: provider said 500"

    text = retry_failed(huey, failed.id, {Job.SYNC_PROVIDER: sync_provider})
    assert text == "sync_provider('broken',) queued again"
    health = queue_health(huey)
    assert health.failed == [] and health.depth == 1
    run_next(huey)
    assert calls == ["broken", "fine", "broken"]
    with pytest.raises(LookupError, match="no longer listed"):
        retry_failed(huey, failed.id, {Job.SYNC_PROVIDER: sync_provider})
