"""Order e-mails in batches through real consumer processes (Redis on the PostgreSQL
pass): the mail outbox, not the queue, is what says an e-mail is owed (issue #20)."""

from __future__ import annotations

import itertools

from sqlmodel import select

from core import jobs
from core.jobs import Job
from core.models import MailOutbox
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.waiting import wait_for


def _mails(outbox, number: str) -> list:
    return [f for f in outbox.glob("*.eml") if number in f.read_text()]


def test_many_orders_each_get_their_delivery_e_mail_once(session, queue):
    product = make_product(session)
    make_keys(session, product, 12)
    orders = [make_order(session, [(product, 1)]) for _ in range(12)]
    queue.start_worker()
    for order in orders:
        jobs.dispatch(Job.FULFIL_ORDER, order.id)
    outbox = queue.settings.outbox_dir
    for order in orders:
        wait_for(lambda o=order: _mails(outbox, o.number), what="the delivery e-mail")
    wait_for(lambda: fresh(session).exec(select(MailOutbox)).all() == [], what="an empty outbox")
    assert all(len(_mails(outbox, o.number)) == 1 for o in orders)


def test_an_e_mail_whose_batch_job_was_lost_is_sent_by_the_periodic_task(session, queue, providers):
    import tasks
    from core.services.fulfilment import fulfil_order
    from tasks.jobs import MAIL_BATCH_QUEUED, ask_for_mail_batch, mail_outbox
    from tests.support.fulfilment import NO_WAIT

    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)])
    real = jobs._dispatcher

    def batch_job_lost(name, args, kwargs):
        if name == Job.SEND_DUE_ORDER_EMAILS:
            tasks.huey.put_if_empty(MAIL_BATCH_QUEUED, "1")  # flagged, then the job is lost
            return
        real(name, args, kwargs)

    jobs.set_dispatcher(batch_job_lost)
    try:
        result = fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    finally:
        jobs.set_dispatcher(real)
    assert result.outcome == "fulfilled"
    outbox = queue.settings.outbox_dir
    [owed] = fresh(session).exec(select(MailOutbox)).all()
    assert owed.order_id == order.id and _mails(outbox, order.number) == []
    assert ask_for_mail_batch() is False  # the stale flag says a batch is queued
    # the periodic task clears the flag and sends what is owed
    assert mail_outbox.call_local() == "1 due order e-mails sent"
    assert len(_mails(outbox, order.number)) == 1
    assert fresh(session).exec(select(MailOutbox)).all() == []
    assert ask_for_mail_batch() is True  # and the next e-mail queues a batch again


def test_with_a_backlog_of_orders_the_e_mails_keep_pace_with_the_fulfilments(
    session, queued_jobs, test_settings
):
    """The batch job queued after each fulfilment waits behind the backlog; the worker
    threads send a batch along every MAIL_BATCH fulfilments meanwhile."""
    import tasks  # noqa: F401  (registers the tasks)
    from core.services.notifications import MAIL_BATCH
    from tasks import jobs as task_jobs

    product = make_product(session)
    make_keys(session, product, MAIL_BATCH * 2)
    orders = [make_order(session, [(product, 1)]) for _ in range(MAIL_BATCH * 2)]
    task_jobs._fulfilments = itertools.count(1)
    for order in orders:
        task_jobs.fulfil_order.call_local(order.id)  # the queued batch jobs never run here
    assert [j[0] for j in queued_jobs].count("send_due_order_emails") == MAIL_BATCH * 2
    assert fresh(session).exec(select(MailOutbox)).all() == []
    outbox = test_settings.outbox_dir
    assert all(len(_mails(outbox, o.number)) == 1 for o in orders)
