"""Issue #17 defect 4: the customer is told after a refund, cancel, replace, revoke or
rejected report (templated, never with a key), and the console sends any e-mail of an
order again (audited)."""

from __future__ import annotations

import uuid

import pytest
from textual.widgets import DataTable

from console.screens.modals import ChoiceScreen, ReasonScreen
from core.mail import list_outbox, read_outbox_message
from core.models import KeyReport
from core.services.notifications import send_order_email
from core.services.webhooks import process_webhook
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import make_keys, make_order, make_product, order_lines

CODE = "SECRET-CODE-12345"


@pytest.fixture
def outbox(test_settings):
    """Mails written to the outbox by this test, as (to, subject, plain text)."""
    folder = test_settings.outbox_dir
    before = {item.path for item in list_outbox(folder)}

    def read():
        return [
            (
                item.to,
                item.subject,
                read_outbox_message(item.path).get_body(("plain",)).get_content(),
            )
            for item in reversed(list_outbox(folder))
            if item.path not in before
        ]

    yield read
    for item in list_outbox(folder):
        if item.path not in before:
            item.path.unlink(missing_ok=True)


def send_queued(queued_jobs) -> list[str]:
    """Run the queued order e-mails as the worker would; returns their kinds."""
    kinds = []
    for name, args, _ in list(queued_jobs):
        if name == "send_order_email":
            send_order_email(order_id=args[0], kind=args[1], ref=args[2] if len(args) > 2 else "")
            kinds.append(args[1])
    return kinds


def reported(session, email):
    product = make_product(session, title="Broken Quest")
    order = make_order(session, [(product, 1)], status="fulfilled", email=email)
    [line] = order_lines(session, order)
    [key] = make_keys(session, product, 1, codes=[CODE], status="delivered", order_line_id=line.id)
    session.add(KeyReport(key_id=key.id, order_id=order.id, email=email, message="dead"))
    session.commit()
    return order, key


async def resolve(pilot, binding, note):
    await show(pilot, "2")
    pilot.app.screen.query_one("#reports-table", DataTable).focus()
    await pilot.press(binding)
    assert isinstance(pilot.app.screen, ReasonScreen)
    await pilot.press(*note, "enter")
    await settle(pilot)


@pytest.mark.parametrize(
    ("binding", "kind", "subject"),
    [
        ("k", "revoked", "A key of your order {number} was withdrawn"),
        ("j", "report_rejected", "About the key you reported on order {number}"),
    ],
)
def test_closing_a_report_tells_the_customer(
    session, console_app, queued_jobs, outbox, binding, kind, subject
):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    order, _key = reported(session, email)

    async def scenario(pilot):
        await resolve(pilot, binding, "checked with the publisher")

    run(console_app, scenario)
    assert send_queued(queued_jobs) == [kind]
    [(to, title, text)] = outbox()
    assert to == email and title == subject.format(number=order.number)
    assert CODE not in text and "checked with the publisher" not in text


def test_replacing_a_reported_key_tells_the_customer(session, console_app, queued_jobs, outbox):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    order, key = reported(session, email)
    make_keys(session, key_product(session, key), 1, codes=["SPARE-CODE-99999"])

    async def scenario(pilot):
        await resolve(pilot, "x", "dead key")

    run(console_app, scenario)
    assert send_queued(queued_jobs) == ["replaced"]
    [(to, title, text)] = outbox()
    assert to == email
    assert title == f"A new key for your order {order.number}"
    assert CODE not in text and "SPARE-CODE" not in text and "key portal" in text


def key_product(session, key):
    from core.models import Product

    return session.get(Product, key.product_id)


def test_cancel_and_refund_tell_the_customer(session, console_app, queued_jobs, outbox):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    product = make_product(session)
    cancelled = make_order(
        session, [(product, 1)], status="needs_attention", attention_reason="x", email=email
    )
    refunded = make_order(
        session,
        [(product, 1)],
        status="needs_attention",
        attention_reason="y",
        email=email,
        payment_reference="pi_test_notice",
    )

    async def scenario(pilot):
        await show(pilot, "2")
        table = pilot.app.screen.query_one("#attention-table", DataTable)
        table.move_cursor(row=table.get_row_index(cancelled.number))
        await pilot.press("c", *"customer asked", "enter")
        await settle(pilot)
        table.move_cursor(row=table.get_row_index(refunded.number))
        await pilot.press("f", *"customer asked", "enter")
        await settle(pilot)

    run(console_app, scenario)
    for name, args, _ in list(queued_jobs):
        if name == "process_webhook":
            process_webhook(webhook_id=args[0])
    assert sorted(send_queued(queued_jobs)) == ["cancelled", "refunded"]
    subjects = sorted(subject for _, subject, _ in outbox())
    assert subjects == sorted(
        [
            f"Your order {cancelled.number} has been cancelled",
            f"Your order {refunded.number} has been refunded",
        ]
    )


def test_any_email_of_an_order_can_be_sent_again(session, console_app, queued_jobs, outbox):
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    order = make_order(session, [(make_product(session), 1)], status="fulfilled", email=email)
    send_order_email(order_id=order.id, kind="delivered")

    async def scenario(pilot):
        await show(pilot, "4")
        field = pilot.app.screen.query_one("#order-search")
        field.value = order.number
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("m")
        dialog = pilot.app.screen
        assert isinstance(dialog, ChoiceScreen) and dialog.options == ["delivered"]
        await pilot.press("enter")
        await settle(pilot)

    run(console_app, scenario)
    sent = outbox()
    assert [subject for _, subject, _ in sent] == [
        f"Your keys for order {order.number} are ready"
    ] * 2
    [event] = audit(session, "order.email_resend")
    assert event.actor_id == OPERATOR and event.data["kind"] == "delivered"
    assert event.object_id == order.number
