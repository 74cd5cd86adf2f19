"""Key returns to Kinguin in the faulty-key workflow (KG features/ReturnKeys.md): a
reported Kinguin key never revealed and within 24 hours is returned when the operator
replaces it, and the purchase records the return and the refund."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from core.models import AuditEvent, Key, KeyReport, ProviderPurchase, utcnow
from core.services.audit import Actor
from core.services.fulfilment import fulfil_order
from core.services.key_returns import return_eligible, return_faulty_key
from core.services.operator import resolve_key_report
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.fulfilment import NO_WAIT, keys_of, offer

ALICE = Actor.operator("alice")


def kinguin_key(session, providers, sim_server, *, revealed=False):
    """A key bought from Kinguin for an order, reported faulty by its customer."""
    product = make_product(session)
    offer(session, sim_server, product, "kinguin", cost="5.00")
    order = make_order(session, [(product, 1)])
    assert fulfil_order(order_id=order.id, clients=providers, retry=NO_WAIT).outcome == "fulfilled"
    [key] = keys_of(session, order)
    if revealed:
        key.revealed_at = utcnow()
        session.add(key)
    make_keys(session, product, 1)  # the replacement, from stock
    report = KeyReport(
        key_id=key.id, order_id=order.id, email=order.email, message="does not activate"
    )
    session.add(report)
    session.commit()
    return key, report


def test_a_replaced_unrevealed_kinguin_key_is_returned_and_refunded(
    session, providers, sim_server, queued_jobs
):
    key, report = kinguin_key(session, providers, sim_server)
    balance_before = providers["kinguin"].balance().amount_minor
    resolve_key_report(report_id=report.id, action="replace", actor=ALICE, note="dead key")
    assert ("return_faulty_key", (str(key.id),), {}) in queued_jobs
    outcome = return_faulty_key(key_id=key.id, clients=providers)
    assert "1 key(s) returned" in outcome
    purchase = fresh(session).exec(select(ProviderPurchase)).one()
    assert purchase.returned_at is not None and purchase.refund_minor == 500
    assert providers["kinguin"].balance().amount_minor == balance_before + 500
    [event] = session.exec(
        select(AuditEvent).where(AuditEvent.action == "purchase.keys_returned")
    ).all()
    assert event.data["refund_minor"] == 500
    # idempotent: run again (a retried job), nothing more happens
    assert "nothing to return" in return_faulty_key(key_id=key.id, clients=providers)
    assert providers["kinguin"].balance().amount_minor == balance_before + 500


def test_a_revealed_key_is_not_returned(session, providers, sim_server, queued_jobs):
    key, report = kinguin_key(session, providers, sim_server, revealed=True)
    resolve_key_report(report_id=report.id, action="replace", actor=ALICE, note="dead key")
    assert not [j for j in queued_jobs if j[0] == "return_faulty_key"]
    assert fresh(session).get(Key, key.id).status == "faulty"


def test_past_the_return_window_nothing_is_returned(session, providers, sim_server, queued_jobs):
    key, _report = kinguin_key(session, providers, sim_server)
    key_row = session.get(Key, key.id)
    key_row.status = "faulty"
    session.add(key_row)
    session.commit()
    assert return_eligible(session=session, key_id=key.id) is not None
    assert (
        return_eligible(session=session, key_id=key.id, now=utcnow() + timedelta(hours=25)) is None
    )


def test_a_refusal_by_kinguin_is_recorded_and_changes_nothing(
    session, providers, sim_server, queued_jobs
):
    key, report = kinguin_key(session, providers, sim_server)
    resolve_key_report(report_id=report.id, action="replace", actor=ALICE, note="dead key")
    sim_server.control("kinguin", return_window_seconds=0)  # Kinguin's clock says too late
    assert "refused" in return_faulty_key(key_id=key.id, clients=providers)
    assert fresh(session).exec(select(ProviderPurchase)).one().returned_at is None
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "purchase.keys_return_refused")
    ).all()
