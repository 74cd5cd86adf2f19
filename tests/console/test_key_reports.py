"""Faulty-key reports on the attention screen: replace the key, revoke it or reject the
report; each confirmed with a note, closing the report (status, resolution, who, when)
and leaving its trail in the audit."""

from __future__ import annotations

from datetime import timedelta

from textual.widgets import DataTable

from console.screens.modals import ReasonScreen
from core.models import Key, KeyReport, Order, utcnow
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_order, make_product, order_lines


def reported_key(session, *, stock=0, message="the code says already redeemed", **report):
    """A fulfilled order whose delivered key a customer reported, plus ``stock`` spare
    keys of the same product."""
    product = make_product(session, title="Broken Quest")
    order = make_order(session, [(product, 1)], status="fulfilled", email="gamer@example.com")
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, status="delivered", order_line_id=line.id)
    spare = make_keys(session, product, stock) if stock else []
    row = KeyReport(key_id=key.id, order_id=order.id, email=order.email, message=message, **report)
    session.add(row)
    session.commit()
    return order, key, row, spare


async def resolve(pilot, binding, note):
    await show(pilot, "2")
    pilot.app.screen.query_one("#reports-table", DataTable).focus()
    await pilot.press(binding)
    assert isinstance(pilot.app.screen, ReasonScreen)
    await pilot.press(*note, "enter")
    await settle(pilot)


def test_open_reports_are_listed_with_order_product_email_message_and_age(session, console_app):
    order, _key, _report, _ = reported_key(session, created_at=utcnow() - timedelta(hours=5))
    _closed, *_ = reported_key(session, status="rejected")

    async def scenario(pilot):
        await show(pilot, "2")
        table = pilot.app.screen.query_one("#reports-table", DataTable)
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert row[1] == order.number and row[2] == "Broken Quest"
        assert row[3] == "gamer@example.com" and row[4].startswith("5h")
        assert "already redeemed" in row[5]

    run(console_app, scenario)


def test_replace_the_reported_key_from_stock(session, console_app):
    _order, key, report, [spare] = reported_key(session, stock=1)

    async def scenario(pilot):
        await resolve(pilot, "x", "customer sent a screenshot")
        assert pilot.app.screen.query_one("#reports-table", DataTable).row_count == 0

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, key.id).status == "faulty"
    replacement = session.get(Key, spare.id)
    assert replacement.status == "delivered" and replacement.order_line_id == key.order_line_id
    done = session.get(KeyReport, report.id)
    assert done.status == "replaced" and done.resolved_by == OPERATOR
    assert done.resolved_at is not None and str(spare.id) in done.resolution
    [event] = audit(session, "key_report.resolve")
    assert event.actor_id == OPERATOR and event.object_id == str(report.id)
    assert event.data["action"] == "replace" and event.data["note"] == "customer sent a screenshot"
    assert [e.object_id for e in audit(session, "key.faulty")] == [str(key.id)]
    assert [e.object_id for e in audit(session, "key.assign")] == [str(spare.id)]


def test_replace_without_stock_is_refused_and_the_report_stays_open(session, console_app):
    _order, key, report, _ = reported_key(session)

    async def scenario(pilot):
        await resolve(pilot, "x", "try a new one")
        assert pilot.app.screen.query_one("#reports-table", DataTable).row_count == 1

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, key.id).status == "delivered"
    assert session.get(KeyReport, report.id).status == "open"
    assert audit(session, "key_report.resolve") == [] and audit(session, "key.faulty") == []
    assert any(sev == "error" and "not enough keys" in msg for sev, msg in console_app.notes)


def test_revoke_the_reported_key(session, console_app):
    _order, key, report, _ = reported_key(session)

    async def scenario(pilot):
        await resolve(pilot, "k", "refunding instead")

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, key.id).status == "revoked"
    done = session.get(KeyReport, report.id)
    assert done.status == "revoked" and done.resolved_by == OPERATOR
    assert "refunding instead" in done.resolution
    [revoke] = audit(session, "key.revoke")
    assert revoke.actor_id == OPERATOR and revoke.object_id == str(key.id)
    [event] = audit(session, "key_report.resolve")
    assert event.data["action"] == "revoke" and event.data["status"] == "revoked"


def test_revoking_a_reported_key_sends_the_order_to_attention(session, console_app):
    """Issue #17 defect 1: the revoke leaves the line short, so the order is no longer
    fulfilled: it waits for an operator with the reason, on the attention screen."""
    order, _key, _report, _ = reported_key(session)

    async def scenario(pilot):
        await resolve(pilot, "k", "code was already redeemed")
        table = pilot.app.screen.query_one("#attention-table", DataTable)
        assert [table.get_row_at(i)[0] for i in range(table.row_count)] == [order.number]
        reason = str(pilot.app.screen.query_one("#attention-reason").render())
        assert "Broken Quest lacks 1 key(s)" in reason

    run(console_app, scenario)
    done = fresh(session).get(Order, order.id)
    assert done.status == "needs_attention"
    assert "code was already redeemed" in done.attention_reason
    [moved] = audit(session, "order.transition")
    assert moved.actor_id == OPERATOR and moved.data["to"] == "needs_attention"


def test_rejecting_a_report_leaves_the_order_fulfilled(session, console_app):
    order, _key, _report, _ = reported_key(session)

    async def scenario(pilot):
        await resolve(pilot, "j", "works for us")

    run(console_app, scenario)
    assert fresh(session).get(Order, order.id).status == "fulfilled"


def test_reject_the_report(session, console_app):
    _order, key, report, _ = reported_key(session)

    async def scenario(pilot):
        await resolve(pilot, "j", "key activates fine on our test account")

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, key.id).status == "delivered"
    done = session.get(KeyReport, report.id)
    assert done.status == "rejected" and done.resolved_by == OPERATOR
    assert done.resolution == "rejected: key activates fine on our test account"
    [event] = audit(session, "key_report.resolve")
    assert event.actor_id == OPERATOR and event.data["action"] == "reject"
    assert audit(session, "key.revoke") == [] and audit(session, "key.faulty") == []


def test_backing_out_or_no_note_changes_nothing(session, console_app):
    _order, key, report, _ = reported_key(session)

    async def scenario(pilot):
        await show(pilot, "2")
        pilot.app.screen.query_one("#reports-table", DataTable).focus()
        await pilot.press("k", "enter")  # no note: refused inside the dialog
        assert isinstance(pilot.app.screen, ReasonScreen)
        await pilot.press("escape")
        await settle(pilot)

    run(console_app, scenario)
    fresh(session)
    assert session.get(KeyReport, report.id).status == "open"
    assert session.get(Key, key.id).status == "delivered"
    assert audit(session, "key_report.resolve") == []


def test_a_report_closed_meanwhile_is_refused(session, console_app):
    _order, key, report, _ = reported_key(session)

    async def scenario(pilot):
        await show(pilot, "2")
        closed = fresh(session).get(KeyReport, report.id)
        closed.status = "rejected"
        session.commit()
        await resolve(pilot, "k", "too late")

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, key.id).status == "delivered"
    assert audit(session, "key_report.resolve") == [] and audit(session, "key.revoke") == []
    assert any(sev == "error" and "already rejected" in msg for sev, msg in console_app.notes)
