"""Huey tasks: thin wrappers that call core and let Huey retry.

Every task is idempotent (fulfilment takes a lease and asks providers by reference;
webhooks claim their event; e-mails record that they were sent), so a retry, a duplicate
delivery or a consumer killed mid-way never does anything twice.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from huey import crontab

from core import tracing
from core.jobs import Job, QueueHealth
from core.services import fulfilment, maintenance, notifications, webhooks
from core.services.fulfilment import FulfilmentRetry
from tasks.queue import huey

log = logging.getLogger("keyshop.tasks")
P = ParamSpec("P")
R = TypeVar("R")


#: Task arguments that become span attributes and log fields (ids, never an e-mail address).
TRACED_ARGUMENTS = frozenset({"order_id", "webhook_id", "kind", "key_id", "name"})


def task(**policy: Any) -> Callable[[Callable[P, R]], Any]:
    """``huey.task(**policy)`` for a task that continues the trace of whoever queued it:
    the dispatcher passes ``trace_context`` (W3C headers, core/tracing.py) and
    ``queued_at`` (epoch seconds, for the queue's age: tasks.health), taken off here
    before the function runs."""

    def wrap(func: Callable[P, R]) -> Any:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def run(
            *args: Any,
            trace_context: dict[str, str] | None = None,
            queued_at: float | None = None,  # read from the queue (tasks.health), not here
            **kwargs: Any,
        ) -> R:
            bound = signature.bind_partial(*args, **kwargs).arguments
            fields = {f"keyshop.{k}": v for k, v in bound.items() if k in TRACED_ARGUMENTS}
            with tracing.attached(trace_context), tracing.span(f"task {func.__name__}", **fields):
                return func(*args, **kwargs)

        return huey.task(**policy)(run)

    return wrap


# While a worker thread processes a webhook, the fulfilment it queues (a payment → the
# order's fulfil_order) is kept here and run by the same thread right after the webhook's
# commit, instead of a second trip through the queue behind everything queued meanwhile.
_here = threading.local()


def keep_for_this_thread(name: Job, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """The dispatcher's hook: True if job ``name`` was kept to run right here."""
    kept = getattr(_here, "follow_ups", None)
    if kept is None or name != Job.FULFIL_ORDER or kwargs:
        return False
    kept.append(args)
    return True


@task(retries=6, retry_delay=1, retry_backoff=2)
def process_webhook(webhook_id: int) -> str:
    kept: list[tuple[Any, ...]] = []
    _here.follow_ups = kept
    try:
        outcome = webhooks.process_webhook(webhook_id=webhook_id)
    except BaseException:
        _here.follow_ups = None
        for args in kept:  # committed before the failure: never drop them
            fulfil_order(*args)
        raise
    _here.follow_ups = None
    for args in kept:
        _fulfil_here(*args)
    return outcome


def _fulfil_here(order_id: int) -> None:
    """fulfil_order in this thread; if it cannot finish now, the queued task takes over
    with its own retries (and reconciliation after a crash, as for any task)."""
    try:
        fulfil_order.call_local(order_id)
    except Exception as exc:  # noqa: BLE001 (the queued task retries whatever happened)
        log.warning("order %s: %s; queued to try again", order_id, type(exc).__name__)
        fulfil_order.schedule(
            args=(order_id,), kwargs={"trace_context": tracing.carrier() or None}, delay=2
        )


@task(retries=10, retry_delay=2, retry_backoff=2)
def fulfil_order(order_id: int) -> str:
    try:
        result = fulfilment.fulfil_order(order_id=order_id)
    except FulfilmentRetry as exc:
        log.warning("order %s: %s; trying again later", order_id, exc)
        raise
    log.info("order %s: %s %s", order_id, result.outcome, result.detail)
    _mail_along()
    return result.outcome


# Fulfilments this process has run; every MAIL_BATCH of them, the thread that ran the last
# one also sends a batch of due e-mails. The queued batch job sits behind whatever was
# queued before it: with a backlog of orders, the e-mails keep pace with them this way.
_fulfilments = itertools.count(1)


def _mail_along() -> None:
    if next(_fulfilments) % notifications.MAIL_BATCH:
        return
    try:
        notifications.send_due_order_emails()
    except Exception as exc:  # noqa: BLE001 (the outbox keeps them for the next batch)
        log.warning("a batch of order e-mails failed: %s", type(exc).__name__)


@task(retries=4, retry_delay=30, retry_backoff=2)
def return_faulty_key(key_id: str) -> str:
    import uuid

    from core.services.key_returns import return_faulty_key as give_back

    return give_back(key_id=uuid.UUID(key_id))


@task(retries=6, retry_delay=5, retry_backoff=2)
def send_order_email(order_id: int, kind: str, ref: str = "") -> str:
    return notifications.send_order_email(order_id=order_id, kind=kind, ref=ref)


#: Set while a batch of due order e-mails is queued and not yet started, so that a burst
#: of fulfilled orders queues one batch, not one job per order (Huey's key-value store:
#: Redis or SQLite, like the queue).
MAIL_BATCH_QUEUED = "keyshop-mail-batch-queued"


def ask_for_mail_batch(**kwargs: Any) -> bool:
    """Queue a batch of due order e-mails unless one is queued already (True if queued):
    how the dispatcher (tasks/__init__.py) queues ``Job.SEND_DUE_ORDER_EMAILS``."""
    if not huey.put_if_empty(MAIL_BATCH_QUEUED, "1"):
        return False
    try:
        send_due_order_emails(**kwargs)
    except BaseException:
        huey.delete(MAIL_BATCH_QUEUED)  # nothing queued: the next one must try again
        raise
    return True


@task(retries=3, retry_delay=5, retry_backoff=2)
def send_due_order_emails() -> str:
    """One batch of due order e-mails (core.services.notifications). The mail outbox is
    the source of truth: this job only says "look now"; a full batch queues the next one,
    which another worker thread can take while this one finishes."""
    huey.delete(MAIL_BATCH_QUEUED)  # from here on, a newly due e-mail queues a batch
    batch = notifications.send_due_order_emails()
    if batch.full:
        ask_for_mail_batch(trace_context=tracing.carrier() or None)
    return f"{batch.sent} order e-mails sent ({batch.taken} taken)"


@task(retries=6, retry_delay=5, retry_backoff=2)
def send_account_email(
    kind: str, email: str, ip: str | None = None, language: str | None = None
) -> str:
    """Verification, sign-up attempt and password-reset e-mails: queued so that a web
    request does the same work whether or not the address has an account."""
    from core.services.signup import send_account_email as send

    return send(kind=kind, email=email, ip=ip, language=language)


@task(retries=6, retry_delay=5, retry_backoff=2)
def send_stock_alert_email(kind: str, alert_id: int) -> str:
    """A back-in-stock request's confirmation or its one back-in-stock e-mail."""
    from core.services.stock_alerts import send_stock_alert_email as send

    return send(kind=kind, alert_id=alert_id)


@task(retries=2, retry_delay=30)
def sync_provider(name: str) -> str:
    from core.services.provider_sync import sync_offers

    client = fulfilment.provider_clients()[name]
    report = sync_offers(client=client, updated_since=None)
    return str(report)


# -- periodic, each behind a lock so two schedulers could never overlap ---------------------


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("keyshop-reconcile")
def reconcile() -> str:
    report = maintenance.reconcile()
    return (
        f"requeued {report.requeued}, needs attention {report.to_attention}, "
        f"webhooks queued again {report.webhooks}"
    )


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("keyshop-mail-outbox")
def mail_outbox() -> str:
    """Whatever no batch job took (a lost job, a worker that died mid-batch, an e-mail
    whose retry delay ran out): sent here, every minute, a few batches at most."""
    huey.delete(MAIL_BATCH_QUEUED)  # a flag whose job was lost must not block the next
    sent = 0
    for _ in range(20):
        batch = notifications.send_due_order_emails()
        sent += batch.sent
        if not batch.full:
            break
    else:
        ask_for_mail_batch()
    return f"{sent} due order e-mails sent"


@huey.periodic_task(crontab(minute="*/5"))
@huey.lock_task("keyshop-expire-unpaid")
def expire_unpaid_orders() -> str:
    return f"cancelled {maintenance.expire_unpaid_orders()}"


@huey.periodic_task(crontab(minute="17", hour="*"))
@huey.lock_task("keyshop-purge-rejected-webhooks")
def purge_rejected_webhooks() -> str:
    from core.services import webhooks

    return f"{webhooks.purge_rejected_webhooks()} rejected webhook deliveries purged"


@huey.periodic_task(crontab(minute="*/10"))
@huey.lock_task("keyshop-sync-providers")
def sync_providers() -> str:
    from datetime import timedelta

    from core.db import session_scope
    from core.services.provider_sync import last_synced, sync_offers

    reports = []
    for name, client in fulfilment.provider_clients().items():
        with session_scope(write=False) as session:
            since = last_synced(session=session, provider=name)
        # Kinguin filters by updatedSince; CodesWholesale re-reads its price list.
        reports.append(
            sync_offers(
                client=client, updated_since=since - timedelta(minutes=5) if since else None
            )
        )
    return "; ".join(map(str, reports))


@huey.periodic_task(crontab(minute="*/15"))
@huey.lock_task("keyshop-stock-alerts")
def stock_alerts() -> str:
    return f"{maintenance.low_stock_alerts()} products low on stock"


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("keyshop-stock-flags")
def refresh_stock_flags() -> str:
    return f"{maintenance.refresh_stock_flags()} stock flags corrected"


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("keyshop-back-in-stock")
def back_in_stock() -> str:
    from core.services.stock_alerts import notify_back_in_stock

    return f"{notify_back_in_stock()} back-in-stock e-mails queued"


@huey.periodic_task(crontab(minute="*/15"))
@huey.lock_task("keyshop-balance-alerts")
def balance_alerts() -> str:
    checks = maintenance.balance_alerts(clients=fulfilment.provider_clients())
    return "; ".join(f"{c.provider}: {c.alert or 'ok'}" for c in checks)


@huey.periodic_task(crontab(minute="41", hour="*"))
@huey.lock_task("keyshop-referrals")
def pay_referrals() -> str:
    from core.services.referrals import pay_due

    payout = pay_due()
    return (
        f"{payout.rewarded} referrals rewarded, {payout.voided} voided, "
        f"{payout.cashback} orders given cashback"
    )


# core names its jobs (core.jobs.Job); each is the task of the same name
TASKS: dict[Job, Any] = {
    Job.PROCESS_WEBHOOK: process_webhook,
    Job.FULFIL_ORDER: fulfil_order,
    Job.SEND_ORDER_EMAIL: send_order_email,
    Job.SEND_DUE_ORDER_EMAILS: send_due_order_emails,
    Job.SEND_ACCOUNT_EMAIL: send_account_email,
    Job.SEND_STOCK_ALERT_EMAIL: send_stock_alert_email,
    Job.SYNC_PROVIDER: sync_provider,
    Job.RETURN_FAULTY_KEY: return_faulty_key,
}


def queue_depth() -> int:
    """Jobs waiting in the queue (not yet taken by a consumer): the console's fulfilment
    backlog figure, handed to ``console.app.make_app(queue_depth=...)``."""
    return int(huey.pending_count())


def queue_health() -> QueueHealth:
    """Jobs waiting with the oldest's age, workers seen, failed tasks: the console's
    worker screen, handed to ``console.app.make_app(queue_health=...)``."""
    from tasks.health import queue_health as read

    return read(huey)


def retry_failed_task(task_id: str) -> str:
    """Queue a failed task again (the console's worker screen, ``retry_task=``)."""
    from tasks.health import retry_failed

    return retry_failed(huey, task_id, TASKS)


def worker_heartbeat() -> float | None:
    """The workers' newest heartbeat (epoch seconds, None if none): the console's "no
    worker seen" line, handed to ``console.app.make_app(worker_heartbeat=...)``."""
    from tasks.consumer import last_heartbeat

    return last_heartbeat(huey)
