"""Audit, alerts, webhooks and outbox screens."""

from __future__ import annotations

import threading
from email.message import EmailMessage

import pytest
from sqlmodel import select
from textual.widgets import DataTable, Input, Static

from console.messages import RowsLoaded
from console.screens.audit import parse_filter
from console.screens.modals import ConfirmScreen
from core.mail import OutboxMailer
from core.models import Alert, WebhookEvent
from core.services.audit import Actor, record_audit
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh
from tests.support.pilot import wait_until


def rows(pilot, table_id):
    table = pilot.app.screen.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_parse_filter():
    assert parse_filter("action:key.reveal actor:bob type:key ip:10.0 42") == {
        "action": "key.reveal",
        "actor_id": "bob",
        "object_type": "key",
        "ip": "10.0",
        "object_id": "42",
    }


def test_parse_filter_refuses_an_unknown_filter():
    with pytest.raises(ValueError, match=r"unknown filter 'actr:'.*action:, actor:"):
        parse_filter("actr:bob")
    with pytest.raises(ValueError, match="'action:' needs a value"):
        parse_filter("action:")


def audit_events(session):
    record_audit(
        session=session,
        actor=Actor.operator("bob", ip="203.0.113.9", user_agent="Mozilla/5.0 (X11) Firefox/130"),
        action="key.reveal",
        object_type="key",
        object_id="k-1",
        data={"first": False, "note": "x" * 120, "ends_with": "THE-END"},
    )
    record_audit(
        session=session,
        actor=Actor.operator("bobby"),
        action="key.revoke",
        object_type="key",
        object_id="k-2",
    )
    record_audit(
        session=session,
        actor=Actor.system(),
        action="order.transition",
        object_type="order",
        object_id="KS-ABC-1",
    )
    session.commit()


def test_audit_shows_ip_user_agent_and_the_whole_data(session, console_app):
    """Issue #17 defect 9: IP and user agent are columns; the detail pane shows the
    highlighted event's data whole."""
    audit_events(session)

    async def scenario(pilot):
        await show(pilot, "5")
        table = pilot.app.screen.query_one("#audit-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "IP" in labels and "User agent" in labels
        table.move_cursor(row=2)
        await settle(pilot)
        row = rows(pilot, "#audit-table")[2]
        assert "203.0.113.9" in row
        detail = str(pilot.app.screen.query_one("#audit-detail", Static).render())
        assert "THE-END" in detail and "x" * 120 in detail
        assert "Mozilla/5.0 (X11) Firefox/130" in detail

    run(console_app, scenario, size=(120, 35))


def test_audit_refuses_an_unknown_filter_and_keeps_the_list(session, console_app):
    audit_events(session)

    async def scenario(pilot):
        await show(pilot, "5")
        field = pilot.app.screen.query_one("#audit-filter", Input)
        field.value = "actr:bob"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert len(rows(pilot, "#audit-table")) == 3
        assert field.value == "actr:bob"
        assert any(
            sev == "error" and "unknown filter 'actr:'" in text for sev, text in pilot.app.notes
        )

    run(console_app, scenario)


def test_audit_filters_match_prefixes(session, console_app):
    audit_events(session)

    async def scenario(pilot):
        await show(pilot, "5")
        found = {}
        for text in ("action:key.", "actor:bob", "KS-ABC", "type:ord", "ip:203.0"):
            field = pilot.app.screen.query_one("#audit-filter", Input)
            field.value = text
            field.focus()
            await pilot.press("enter")
            await settle(pilot)
            found[text] = sorted(r[3] for r in rows(pilot, "#audit-table"))
        assert found == {
            "action:key.": ["key k-1", "key k-2"],
            "actor:bob": ["key k-1", "key k-2"],
            "KS-ABC": ["order KS-ABC-1"],
            "type:ord": ["order KS-ABC-1"],
            "ip:203.0": ["key k-1"],
        }

    run(console_app, scenario)


def test_audit_search_shows_who_revealed_which_key(session, console_app):
    record_audit(
        session=session,
        actor=Actor.operator("bob"),
        action="key.reveal",
        object_type="key",
        object_id="k-1",
        data={"first": True},
    )
    record_audit(
        session=session,
        actor=Actor.system(),
        action="order.transition",
        object_type="order",
        object_id="T1",
    )
    session.commit()

    async def scenario(pilot):
        await show(pilot, "5")
        assert len(rows(pilot, "#audit-table")) == 2
        field = pilot.app.screen.query_one("#audit-filter", Input)
        field.value = "action:key.reveal"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        [row] = rows(pilot, "#audit-table")
        assert row[1:4] == ["operator:bob", "key.reveal", "key k-1"]

    run(console_app, scenario)


def test_acknowledge_an_alert(session, console_app):
    alert = Alert(kind="low_stock", subject="product:1", message="3 left")
    session.add(alert)
    session.commit()

    async def scenario(pilot):
        await show(pilot, "6")
        assert len(rows(pilot, "#alerts-table")) == 1
        await pilot.press("a", "y")
        await settle(pilot)
        assert rows(pilot, "#alerts-table") == []

    run(console_app, scenario)
    assert fresh(session).get(Alert, alert.id).acknowledged_by == OPERATOR
    [event] = audit(session, "alert.acknowledge")
    assert event.actor_id == OPERATOR


class HeldLoad:
    """The alerts list's next load after :meth:`hold` reads its rows, then waits for
    :meth:`release`; ``posted`` is set once that load has posted its rows."""

    def __init__(self, monkeypatch):
        import console.screens.alerts as alerts_screen

        real = alerts_screen.alert_rows
        self.holding, self.has_read, self.released = (threading.Event() for _ in range(3))
        self.posted = threading.Event()
        self.thread: int | None = None

        def held_rows(**kw):
            found = real(**kw)
            if self.holding.is_set():
                self.holding.clear()
                self.thread = threading.get_ident()
                self.has_read.set()
                self.released.wait(60)
            return found

        monkeypatch.setattr(alerts_screen, "alert_rows", held_rows)

    def watch(self, screen) -> None:
        original = screen.post_message

        def post(message):
            queued = original(message)
            if isinstance(message, RowsLoaded) and threading.get_ident() == self.thread:
                self.posted.set()
            return queued

        screen.post_message = post

    def hold(self) -> None:
        self.holding.set()

    def release(self) -> None:
        self.released.set()

    async def answered(self, pilot) -> None:
        """Let the held load answer, and its answer be handled (or dropped)."""
        self.release()
        await wait_until(pilot, self.posted.is_set)
        await settle(pilot)


@pytest.fixture
def held(session, monkeypatch) -> HeldLoad:
    """One open alert, and the alerts list's loads held on demand."""
    session.add(Alert(kind="low_stock", subject="product:1", message="3 left"))
    session.commit()
    return HeldLoad(monkeypatch)


def test_a_load_overtaken_by_a_newer_one_never_puts_its_old_rows_back(session, console_app, held):
    """A list's load that read the rows before an action changed them, and answers
    after the load the action started, is dropped: the screen keeps the newer rows."""

    async def scenario(pilot):
        try:
            await show(pilot, "6")
            assert len(rows(pilot, "#alerts-table")) == 1
            held.watch(pilot.app.screen)
            held.hold()
            pilot.app.screen.action_reload()  # reads the open alert, then waits
            await wait_until(pilot, held.has_read.is_set)
            await pilot.press("a", "y")  # acknowledged; its reload finds nothing open
            await wait_until(pilot, lambda: rows(pilot, "#alerts-table") == [])
            await held.answered(pilot)  # the old load answers last
            assert rows(pilot, "#alerts-table") == []
        finally:
            held.release()

    run(console_app, scenario)
    [event] = audit(session, "alert.acknowledge")
    assert event.actor_id == OPERATOR


def test_the_timer_leaves_a_slow_load_to_answer(session, console_app, held):
    """A timer's reload while the last load still reads starts nothing: a newer load
    would cancel the slow one, and a load slower than the timer would never show."""

    async def scenario(pilot):
        try:
            await show(pilot, "6")
            screen = pilot.app.screen
            session.add(Alert(kind="low_stock", subject="product:2", message="2 left"))
            session.commit()
            held.watch(screen)
            held.hold()
            slow = screen.load()
            await wait_until(pilot, held.has_read.is_set)
            screen._refresh_tick()
            assert not slow.is_cancelled
            await held.answered(pilot)
            assert len(rows(pilot, "#alerts-table")) == 2
        finally:
            held.release()

    run(console_app, scenario)


def test_replay_a_webhook(session, console_app, queued_jobs):
    from core.models import utcnow

    hook = WebhookEvent(
        source="stripe",
        event_id="evt_1",
        event_type="charge.refunded",
        raw_body=b'{"id": "evt_1"}',
        authenticated=True,
        processed_at=utcnow(),
        outcome="ignored",
    )
    session.add(hook)
    session.commit()

    async def scenario(pilot):
        await show(pilot, "7")
        assert rows(pilot, "#webhooks-table")[0][2] == "stripe"
        assert '"evt_1"' in str(pilot.app.screen.query_one("#webhook-body").render())
        await pilot.press("p", "y")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(WebhookEvent, hook.id).processed_at is None
    assert ("process_webhook", (hook.id,), {}) in queued_jobs


def test_a_replay_keeps_every_outcome_and_is_audited(session, console_app, queued_jobs):
    """Issue #17 defect 6: the first outcome survives a replay, each processing is
    kept, and the replay is audited under the operator's name."""
    from core.models import WebhookAttempt
    from core.services.webhooks import process_webhook

    hook = WebhookEvent(
        source="stripe",
        event_id="evt_2",
        event_type="customer.created",
        raw_body=b'{"id": "evt_2", "type": "customer.created", "data": {"object": {}}}',
        authenticated=True,
    )
    session.add(hook)
    session.commit()
    first = process_webhook(webhook_id=hook.id)

    async def scenario(pilot):
        await show(pilot, "7")
        # the list and the webhook's detail are loaded before the key acts on them
        table = pilot.app.screen.query_one("#webhooks-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        await settle(pilot)
        await pilot.press("p", "y")
        await settle(pilot)
        pane = pilot.app.screen.query_one("#webhook-body")
        await wait_until(pilot, lambda: "pending (was:" in str(pane.render()))
        body = str(pane.render())
        assert f"pending (was: {first})" in body and "attempts (1)" in body

    run(console_app, scenario)
    assert ("process_webhook", (hook.id,), {}) in queued_jobs
    process_webhook(webhook_id=hook.id)
    attempts = fresh(session).exec(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert [a.outcome for a in attempts] == [first, first]
    [event] = audit(session, "webhook.replay")
    assert event.actor_id == OPERATOR and event.object_id == str(hook.id)
    assert event.data["previous_outcome"] == first


def test_a_rejected_webhook_cannot_be_replayed(session, console_app, queued_jobs):
    """Issue #17 defect 6: a delivery that failed authentication keeps its rejection."""
    import pytest

    from core.errors import InvalidInput
    from core.services.webhooks import WebhookRejected, receive_webhook, replay_webhook

    with pytest.raises(WebhookRejected):
        receive_webhook(source="stripe", headers={"Stripe-Signature": "t=1,v1=0"}, body=b"{}")
    [hook] = fresh(session).exec(select(WebhookEvent)).all()

    async def scenario(pilot):
        await show(pilot, "7")
        await pilot.press("p")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, ConfirmScreen)

    run(console_app, scenario)
    with pytest.raises(InvalidInput, match="failed authentication"):
        replay_webhook(webhook_id=hook.id, actor=Actor.operator(OPERATOR))
    kept = fresh(session).get(WebhookEvent, hook.id)
    assert kept.outcome == hook.outcome and kept.outcome.startswith("rejected")
    assert kept.processed_at is not None
    assert not [j for j in queued_jobs if j[0] == "process_webhook"]
    assert audit(session, "webhook.replay") == []
    assert any(sev == "error" and "cannot be replayed" in msg for sev, msg in console_app.notes)


def test_the_webhooks_screen_counts_rejected_deliveries_per_source(session, console_app):
    import pytest

    from core.services.webhooks import WebhookRejected, receive_webhook

    for source in ("stripe", "stripe", "kinguin"):
        with pytest.raises(WebhookRejected):
            receive_webhook(source=source, headers={"Stripe-Signature": "t=1,v1=0"}, body=b"{}")

    async def scenario(pilot):
        await show(pilot, "7")
        assert "rejected in 24 h: kinguin 1, stripe 2" in pilot.app.screen.sub_title

    run(console_app, scenario)


def test_outbox_lists_the_mails(test_settings, console_app):
    message = EmailMessage()
    message["To"] = "buyer@example.com"
    message["Subject"] = "Your keys"
    message.set_content("hello")
    OutboxMailer(test_settings.outbox_dir).send(message)

    async def scenario(pilot):
        await show(pilot, "8")
        assert any(
            r[1:3] == ["buyer@example.com", "Your keys"] for r in rows(pilot, "#outbox-table")
        )

    try:
        run(console_app, scenario)
    finally:
        for path in test_settings.outbox_dir.glob("*.eml"):
            path.unlink()


def test_alerts_name_what_they_are_about_and_close_with_their_cause(session, console_app):
    """Issue #17 defect 5: an order's alert resolves itself once the order is handled
    (recorded, in the history); alerts name the product and order, never "product:33"."""
    from core.models import Key
    from tests.factories import make_keys, make_order, make_product

    product = make_product(session, title="Star Racer", slug="star-racer-pc")
    order = make_order(
        session, [(product, 1)], status="needs_attention", attention_reason="no stock"
    )
    make_keys(session, product, 1)
    session.add(Alert(kind="needs_attention", subject=f"order:{order.number}", message="no stock"))
    session.add(Alert(kind="low_stock", subject=f"product:{product.id}", message="1 left"))
    session.commit()

    async def scenario(pilot):
        await show(pilot, "6")
        about = sorted(r[4] for r in rows(pilot, "#alerts-table"))
        assert about == ["Star Racer (star-racer-pc)", f"order {order.number}"]
        assert "product:" not in str(pilot.app.screen.query_one("#alert-detail").render())
        await show(pilot, "2")
        await pilot.press("s", "y")  # the order is served from stock
        await settle(pilot)
        await show(pilot, "6")
        assert [r[4] for r in rows(pilot, "#alerts-table")] == ["Star Racer (star-racer-pc)"]
        await pilot.press("h")
        await settle(pilot)
        assert [r[4] for r in rows(pilot, "#alerts-table")] == [f"order {order.number}"]
        detail = str(pilot.app.screen.query_one("#alert-detail").render())
        assert "resolved" in detail and "assigned 1 keys from stock" in detail

    run(console_app, scenario)
    closed = fresh(session).exec(select(Alert).where(Alert.kind == "needs_attention")).one()
    assert closed.resolved_at is not None and closed.acknowledged_at is None
    assert order.number in closed.resolution
    assert session.exec(select(Key).where(Key.status == "delivered")).one()


def test_acknowledge_marked_alerts_at_once(session, console_app):
    for n in range(3):
        session.add(Alert(kind="provider_down", subject=f"provider:p{n}", message="down"))
    session.commit()

    async def scenario(pilot):
        await show(pilot, "6")
        await pilot.press("space", "down", "space", "a")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert len(rows(pilot, "#alerts-table")) == 1

    run(console_app, scenario)
    assert len(audit(session, "alert.acknowledge")) == 2
    assert {a.actor_id for a in audit(session, "alert.acknowledge")} == {OPERATOR}


def test_escape_leaves_the_filter_field_on_audit_and_webhooks(session, console_app):
    """Issue #17 defect 9 (part): after Escape, screen keys work again instead of
    typing into the filter."""

    async def scenario(pilot):
        for key, field_id in (("5", "#audit-filter"), ("7", "#webhook-source")):
            await show(pilot, key)
            await pilot.press("slash")
            field = pilot.app.screen.query_one(field_id, Input)
            assert pilot.app.screen.focused is field
            await pilot.press("escape", "1")
            await settle(pilot)
            assert field.value == ""
            assert pilot.app.screen.id == "dashboard-screen"

    run(console_app, scenario)
