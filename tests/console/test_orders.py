"""Orders: search by number, e-mail or key code; the timeline; revealing a key (audited,
behind a confirmation), replacing a faulty key and revoking one."""

from __future__ import annotations

import itertools
import logging

from textual.widgets import DataTable, Input

from console.screens.modals import ConfirmScreen, RevealScreen
from core.models import Key, Order, OrderEvent
from core.services.audit import Actor
from core.services.inventory import revoke_key
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_keys, make_order, make_product, order_lines


def delivered_order(session, code="ZZZZZ-11111-AAAAA", email="Buyer@Example.com"):
    product = make_product(session, title="Space Game")
    order = make_order(session, [(product, 1)], status="fulfilled", email=email)
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, codes=[code], status="delivered", order_line_id=line.id)
    session.add(
        OrderEvent(
            order_id=order.id,
            from_status="paid",
            to_status="fulfilled",
            reason="delivered from stock",
            actor="system",
        )
    )
    session.commit()
    return product, order, key


async def search(pilot, text):
    field = pilot.app.screen.query_one("#order-search", Input)
    field.value = text
    field.focus()
    await pilot.press("enter")
    await settle(pilot)


def result_numbers(pilot):
    table = pilot.app.screen.query_one("#order-results", DataTable)
    return [table.get_row_at(i)[0] for i in range(table.row_count)]


def test_search_by_number_email_and_key(session, console_app):
    _, order, _ = delivered_order(session)
    other = make_order(session, [(make_product(session), 1)], email="someone@else.com")

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number.lower())
        assert result_numbers(pilot) == [order.number]
        timeline = str(pilot.app.screen.query_one("#timeline").render())
        assert "delivered from stock" in timeline and "1 x Space Game" in timeline
        keys = pilot.app.screen.query_one("#order-keys", DataTable)
        assert keys.row_count == 1 and "ZZZZZ" not in str(keys.get_row_at(0))
        await search(pilot, "buyer@example.COM")
        assert result_numbers(pilot) == [order.number]
        await search(pilot, "zzzzz 11111 aaaaa")  # the same key, typed differently
        assert result_numbers(pilot) == [order.number]
        await search(pilot, "nothing-like-this")
        assert result_numbers(pilot) == []
        await search(pilot, other.number)
        assert result_numbers(pilot) == [other.number]

    run(console_app, scenario)


def test_reveal_is_confirmed_audited_and_never_logged(session, console_app, caplog):
    caplog.set_level(logging.DEBUG)
    _, order, key = delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("v")
        assert isinstance(pilot.app.screen, ConfirmScreen)
        body = str(pilot.app.screen.query_one(".dialog-body").render())
        assert "not count as the customer's reveal" in body
        await pilot.press("n")  # backing out reveals nothing
        await settle(pilot)
        assert audit(session, "key.operator_reveal") == []
        await pilot.press("v", "y")
        await settle(pilot)
        dialog = pilot.app.screen
        assert isinstance(dialog, RevealScreen)
        assert str(dialog.query_one("#revealed-code").render()) == "ZZZZZ-11111-AAAAA"
        await pilot.press("escape")
        await settle(pilot)
        keys = pilot.app.screen.query_one("#order-keys", DataTable)
        assert str(keys.get_row_at(0)[4]) == "-"  # the customer has still not revealed it

    run(console_app, scenario)
    [event] = audit(session, "key.operator_reveal")
    assert event.actor_id == OPERATOR and event.actor_type == "operator"
    assert event.object_id == str(key.id) and event.data["customer_revealed"] is False
    assert "ZZZZZ-11111-AAAAA" not in caplog.text


def test_an_operator_reveal_never_counts_as_the_customers(session, console_app, queued_jobs):
    """Issue #17 defect 3: after an operator's reveal the key still goes back to stock
    on a refund, because the customer never saw it."""
    _, order, key = delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("v", "y")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Key, key.id).revealed_at is None
    assert audit(session, "key.reveal") == []
    revoke_key(session=session, key_id=key.id, actor=Actor.system(), reason="refund", to_stock=True)
    session.commit()
    assert fresh(session).get(Key, key.id).status == "available"


def test_replace_a_faulty_key(session, console_app):
    product, order, bad = delivered_order(session)
    [spare] = make_keys(session, product, 1)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("x", *"already redeemed", "enter")
        await settle(pilot)
        keys = pilot.app.screen.query_one("#order-keys", DataTable)
        assert sorted(str(keys.get_row_at(i)[2]) for i in range(keys.row_count)) == [
            "delivered",
            "faulty",
        ]

    run(console_app, scenario)
    fresh(session)
    assert session.get(Key, bad.id).status == "faulty"
    assert session.get(Key, spare.id).status == "delivered"
    assert [e.actor_id for e in audit(session, "key.faulty")] == [OPERATOR]
    assert [e.actor_id for e in audit(session, "key.assign")] == [OPERATOR]


def test_revoke_a_key(session, console_app):
    _, order, key = delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("k", *"chargeback", "enter")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Key, key.id).status == "revoked"
    [event] = audit(session, "key.revoke")
    assert event.actor_id == OPERATOR and event.data["reason"] == "chargeback"
    order_now = session.get(Order, order.id)
    assert order_now.status == "needs_attention"
    assert "revoked: chargeback" in order_now.attention_reason
    assert "Space Game lacks 1 key(s)" in order_now.attention_reason


def test_replace_without_stock_is_refused(session, console_app):
    _, order, bad = delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        await pilot.press("x", *"broken", "enter")
        await settle(pilot)

    run(console_app, scenario)
    assert fresh(session).get(Key, bad.id).status == "delivered"
    assert audit(session, "key.faulty") == []
    assert any(sev == "error" for sev, _ in console_app.notes)


def test_a_search_with_no_match_clears_the_order_and_its_key_actions(session, console_app):
    """Issue #17 defect 2: pressing v after a search that found nothing must not offer
    the previous order's key."""
    _, order, _key = delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        assert pilot.app.screen.query_one("#order-keys", DataTable).row_count == 1
        await search(pilot, "no-such-order")
        screen = pilot.app.screen
        assert screen.query_one("#order-keys", DataTable).row_count == 0
        assert order.number not in str(screen.query_one("#timeline").render())
        await pilot.press("escape", "v")  # leave the search field, then reveal
        await settle(pilot)
        assert pilot.app.screen is screen  # no dialog: there is no key to reveal

    run(console_app, scenario)
    assert audit(session, "key.operator_reveal") == []
    assert any("No key selected" in msg for _, msg in console_app.notes)


def test_search_matches_parts_names_keys_and_filters(session, console_app):
    """Issue #17 defect 10: partial number, e-mail and customer name; a key by the end
    its mask shows; filters by status, product, provider and date; an unknown filter
    is refused, not ignored."""
    from core.models import Customer, ProviderPurchase

    alice = Customer(email="alice.w@example.org", display_name="Alice Walker")
    session.add(alice)
    session.commit()
    _, order, key = delivered_order(session, email="alice.w@example.org")
    order.customer_id = alice.id
    order.number = "VG09AB12CD34"
    session.add(order)
    other = make_order(session, [(make_product(session, title="Other Game", slug="other-game"), 1)])
    [line] = order_lines(session, other)
    session.add(
        ProviderPurchase(
            order_line_id=line.id, provider="kinguin", reference="r-1", quantity=1, status="failed"
        )
    )
    session.commit()
    masked_end = str(key.id)[-4:]

    async def scenario(pilot):
        await show(pilot, "4")
        for text in ("vg09", "alice", "walker", "example.org", f"…{masked_end}"):
            await search(pilot, text)
            assert result_numbers(pilot) == [order.number], text
        await search(pilot, "status:fulfilled")
        assert result_numbers(pilot) == [order.number]
        await search(pilot, "status:paid provider:kinguin")
        assert result_numbers(pilot) == [other.number]
        await search(pilot, "product:space")
        assert result_numbers(pilot) == [order.number]
        await search(pilot, "since:2000-01-01 until:2000-01-02")
        assert result_numbers(pilot) == []
        await search(pilot, "colour:red")
        assert result_numbers(pilot) == []

    run(console_app, scenario)
    assert any(
        sev == "error" and "unknown filter 'colour'" in msg for sev, msg in console_app.notes
    )


def test_the_timeline_tells_the_whole_story(session, console_app, queued_jobs):
    """Issue #17 defect 14: reveals (address and browser), reports, replacements,
    revokes, e-mails sent and refunds with the operator and their reason."""
    from core.models import KeyReport
    from core.services.audit import record_audit
    from core.services.keys import reveal_key
    from core.services.notifications import send_order_email
    from core.services.operator import resolve_key_report

    product, order, key = delivered_order(session)
    make_keys(session, product, 1)
    customer = Actor.customer(7, ip="203.0.113.9", user_agent="Firefox/140.0")
    reveal_key(session=session, key_id=key.id, actor=customer)
    report = KeyReport(key_id=key.id, order_id=order.id, email=order.email, message="dead")
    session.add(report)
    record_audit(
        session=session,
        actor=Actor.operator("bob"),
        action="order.refund",
        object_type="order",
        object_id=order.number,
        data={"reason": "goodwill"},
    )
    session.commit()
    resolve_key_report(
        report_id=report.id, action="replace", actor=Actor.operator("bob"), note="confirmed"
    )
    send_order_email(order_id=order.id, kind="delivered")
    masked = f"{str(key.id)[:4]}…{str(key.id)[-4:]}"

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        text = str(pilot.app.screen.query_one("#timeline").render())
        assert f"key {masked} revealed by customer:7 (first time) from 203.0.113.9" in text
        assert "Firefox/140.0" in text
        assert f"#{report.id} key {masked} reported faulty: dead" in text
        assert f"#{report.id} replaced by bob" in text
        assert f"key {masked} marked faulty by operator:bob" in text
        assert f"replacing {masked}" in text
        assert "refund asked by operator:bob: goodwill" in text
        assert "sent: delivered to Buyer@Example.com (by system:mail)" in text

    run(console_app, scenario)


def test_the_timeline_says_what_a_partial_refund_gave_back(session, console_app):
    from console.widgets.formatting import money

    _product, order, _key = delivered_order(session)
    order.refunded_minor = 500
    session.add(order)
    session.commit()

    async def scenario(pilot):
        await show(pilot, "4")
        await search(pilot, order.number)
        text = str(pilot.app.screen.query_one("#timeline").render())
        assert (
            f"fulfilled  {money(order.total_minor, 'EUR')} ({money(500, 'EUR')} refunded)" in text
        )

    run(console_app, scenario)


def test_at_80x24_the_order_lists_and_footer_keys_fit(session, console_app):
    """Issue #17 defect 12: at 80 columns the orders' Created column, the keys' dates
    and the footer's last keys (resend, customer) were cut off."""
    from textual.widgets._footer import FooterKey

    delivered_order(session)

    async def scenario(pilot):
        await show(pilot, "4")
        screen = pilot.app.screen
        for table_id in ("#order-results", "#order-keys"):
            table = screen.query_one(table_id, DataTable)
            assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80
        shown = sorted((k.region for k in screen.query(FooterKey)), key=lambda r: r.x)
        assert {"m", "u"} <= {k.key for k in screen.query(FooterKey)}
        assert all(region.right <= 80 for region in shown)
        # none hidden under the next (the palette's key is docked on the right)
        assert all(a.right <= b.x for a, b in itertools.pairwise(shown))

    run(console_app, scenario, size=(80, 24))
