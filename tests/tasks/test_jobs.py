"""Job names: core names each job once (``core.jobs.Job``) and the task layer has a task
for every one of them."""

from __future__ import annotations

from core import jobs
from core.jobs import Job


def test_every_job_core_names_has_the_task_of_the_same_name():
    from tasks.jobs import TASKS

    assert set(TASKS) == set(Job)
    for job, task in TASKS.items():
        assert task.func.__name__ == job.value


def test_the_dispatcher_receives_the_job_name_core_enqueued():
    seen = []
    jobs.set_dispatcher(lambda name, args, kwargs: seen.append((name, args, kwargs)))
    try:
        jobs.dispatch(Job.FULFIL_ORDER, 7)
    finally:
        jobs.set_dispatcher(None)
    assert seen == [(Job.FULFIL_ORDER, (7,), {})]
    assert seen[0][0] == "fulfil_order"  # a StrEnum: what travels through Huey is text
