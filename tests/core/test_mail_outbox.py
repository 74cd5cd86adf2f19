"""Order e-mails from the mail outbox (issue #20): the fulfilment writes the e-mail it
owes in its own transaction, batches send them several orders at a time, and nothing is
lost when a batch's worker dies or the mail server fails (no timing in these tests: the
clock is passed in)."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlmodel import select

from core.mail import MailError
from core.models import MailOutbox, OrderEvent, utcnow
from core.services import notifications
from core.services.fulfilment import fulfil_order
from core.services.notifications import (
    MAIL_LEASE,
    MAIL_MAX_ATTEMPTS,
    SENT,
    send_due_order_emails,
)
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.fulfilment import NO_WAIT


def outbox_rows(session) -> list[MailOutbox]:
    fresh(session)
    return list(session.exec(select(MailOutbox).order_by(MailOutbox.id)))


def mails_to(test_settings, number: str) -> list:
    return [
        message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(test_settings.outbox_dir.glob("*.eml"))
        if number.encode() in path.read_bytes()
    ]


def sent_events(session, order) -> list[str]:
    fresh(session)
    return [
        e.reason
        for e in session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id))
        if e.reason.startswith(SENT)
    ]


def fulfilled_orders(session, providers, n: int) -> list:
    product = make_product(session, title="Batch Quest")
    make_keys(session, product, n, codes=[f"BATCH-KEYS-{i:05d}" for i in range(n)])
    orders = [make_order(session, [(product, 1)]) for _ in range(n)]
    for order in orders:
        assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == (
            "fulfilled"
        )
    return orders


def test_one_batch_sends_the_delivery_e_mails_of_several_orders_once(
    session, providers, test_settings, queued_jobs
):
    orders = fulfilled_orders(session, providers, 3)
    assert [r.kind for r in outbox_rows(session)] == ["delivered"] * 3
    assert [j[0] for j in queued_jobs].count("send_due_order_emails") == 3  # one per commit
    batch = send_due_order_emails()
    assert (batch.taken, batch.sent, batch.failed) == (3, 3, 0)
    assert outbox_rows(session) == []
    for order in orders:
        [message] = mails_to(test_settings, order.number)
        assert message["To"] == order.email
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert "/orders/" in text and "BATCH-KEYS" not in message.as_string()
        assert sent_events(session, order) == [SENT + "delivered"]
    assert send_due_order_emails().taken == 0  # nothing owed any more


def test_a_batch_never_sends_a_notice_already_recorded_as_sent(
    session, providers, test_settings, queued_jobs
):
    [order] = fulfilled_orders(session, providers, 1)
    assert notifications.send_order_email(order_id=order.id, kind="delivered").endswith("sent")
    batch = send_due_order_emails()
    assert (batch.taken, batch.sent, batch.skipped) == (1, 0, 1)
    assert len(mails_to(test_settings, order.number)) == 1
    assert outbox_rows(session) == []


def test_e_mails_taken_by_a_batch_that_died_are_sent_after_its_lease(
    session, providers, test_settings, queued_jobs, monkeypatch
):
    orders = fulfilled_orders(session, providers, 2)
    now = utcnow()

    def worker_dies(*args, **kwargs):
        raise SystemExit("the worker was killed")

    # the batch takes the e-mails and dies before sending anything
    monkeypatch.setattr(notifications, "_read_notices", worker_dies)
    with pytest.raises(SystemExit):
        send_due_order_emails(now=now)
    monkeypatch.undo()
    assert [r.attempts for r in outbox_rows(session)] == [1, 1]
    # another batch while the lease runs takes nothing: never two batches on one e-mail
    assert send_due_order_emails(now=now + MAIL_LEASE - timedelta(seconds=1)).taken == 0
    batch = send_due_order_emails(now=now + MAIL_LEASE)
    assert (batch.taken, batch.sent) == (2, 2)
    assert all(len(mails_to(test_settings, o.number)) == 1 for o in orders)
    assert outbox_rows(session) == []


def test_a_failing_mail_server_delays_the_e_mail_and_loses_it_only_after_the_last_attempt(
    session, providers, test_settings, queued_jobs, monkeypatch, caplog
):
    [order] = fulfilled_orders(session, providers, 1)

    class Down:
        def send_raw(self, message):
            raise MailError("could not reach the SMTP server mx:25: timed out", transient=True)

    monkeypatch.setattr(notifications, "get_mailer", lambda: Down())
    later = utcnow()
    for attempt in range(1, MAIL_MAX_ATTEMPTS):
        batch = send_due_order_emails(now=later)
        assert (batch.taken, batch.failed, batch.dropped) == (1, 1, 0), attempt
        [row] = outbox_rows(session)
        assert row.attempts == attempt and row.due_at > later  # tried again later, not now
        assert send_due_order_emails(now=later).taken == 0
        later = row.due_at
    monkeypatch.undo()
    batch = send_due_order_emails(now=later)  # the server is back for the last attempt
    assert batch.sent == 1 and len(mails_to(test_settings, order.number)) == 1
    assert outbox_rows(session) == []


def test_an_e_mail_that_keeps_failing_is_dropped_with_an_error_line(
    session, providers, queued_jobs, monkeypatch, caplog
):
    [order] = fulfilled_orders(session, providers, 1)

    class Refused:
        def send_raw(self, message):
            raise MailError("the SMTP server mx:25 answered 554 for the message", transient=False)

    monkeypatch.setattr(notifications, "get_mailer", lambda: Refused())
    later = utcnow()
    for _ in range(MAIL_MAX_ATTEMPTS):
        batch = send_due_order_emails(now=later)
        later += timedelta(days=1)
    assert batch.dropped == 1 and outbox_rows(session) == []
    assert sent_events(session, order) == []
    [line] = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert line.levelname == "ERROR" and str(order.id) in line.getMessage()


def test_the_outbox_row_is_part_of_the_fulfilment_transaction(
    session, providers, queued_jobs, monkeypatch
):
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)])

    def fails(*args, **kwargs):
        raise RuntimeError("the database went away mid-transaction")

    # the row is written; the transaction then fails after it
    monkeypatch.setattr(notifications.jobs, "enqueue_after_commit", fails)
    with pytest.raises(RuntimeError):
        fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT)
    assert outbox_rows(session) == [] and queued_jobs == []
    assert fresh(session).get(type(order), order.id).status == "paid"
