"""Background work on Huey. Importing this package registers every task and plugs the
queue into ``core.jobs``, so work that core enqueues after a commit lands here."""

import time
from typing import Any

from core import jobs as core_jobs
from core import tracing
from core.jobs import Job
from tasks import warmup  # noqa: F401  (registers the consumer's warm-up)
from tasks.jobs import TASKS, ask_for_mail_batch, keep_for_this_thread
from tasks.queue import configure, huey


def _dispatch(name: Job, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if keep_for_this_thread(name, args, kwargs):
        return
    # the task continues the trace of the span that queued it (core/tracing.py)
    # queued_at: how long a job has waited, on the console's worker screen
    context = tracing.carrier() or None
    if name == Job.SEND_DUE_ORDER_EMAILS:
        # one batch queued at a time
        ask_for_mail_batch(trace_context=context, queued_at=time.time())
        return
    TASKS[name](*args, **kwargs, trace_context=context, queued_at=time.time())


core_jobs.set_dispatcher(_dispatch)

__all__ = ["TASKS", "configure", "huey"]
