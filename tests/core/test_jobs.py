"""core.jobs: work is handed over only after its own transaction commits."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from core import jobs


def test_a_job_of_a_rolled_back_transaction_is_never_sent(session: Session, queued_jobs) -> None:
    session.execute(text("SELECT 1"))
    jobs.enqueue_after_commit(session, "send_order_email", 1, "delivered")
    session.rollback()
    session.execute(text("SELECT 1"))  # the same session, a new transaction
    jobs.enqueue_after_commit(session, "fulfil_order", 2)
    session.commit()
    assert [(name, args) for name, args, _ in queued_jobs] == [("fulfil_order", (2,))]


def test_a_savepoint_rolled_back_keeps_the_jobs_before_it(session: Session, queued_jobs) -> None:
    session.execute(text("SELECT 1"))
    jobs.enqueue_after_commit(session, "fulfil_order", 3)
    with session.begin_nested() as savepoint:
        session.execute(text("SELECT 1"))
        savepoint.rollback()
    session.commit()
    assert [(name, args) for name, args, _ in queued_jobs] == [("fulfil_order", (3,))]
