"""Order e-mails with totals and VAT (never a key), the confirmation when an order is
placed, and "find my order" (issue #14 items 3 and 4)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from core.services.cart import CartLine
from core.services.checkout import place_order
from core.services.notifications import (
    ORDER_LINKS_LIMITS,
    request_order_links,
    send_order_email,
)
from core.services.ratelimit import RateLimited
from tests.factories import make_keys, make_order, make_product


def messages(test_settings, needle: str) -> list:
    found = []
    for path in sorted(test_settings.outbox_dir.glob("*.eml")):
        raw = path.read_bytes()
        if needle.encode() in raw:
            found.append(message_from_bytes(raw, policy=policy.default))
    return found


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_placing_an_order_queues_its_confirmation_with_total_and_vat(
    session, test_settings, queued_jobs
):
    game = make_product(session, title="Mail Quest", price_minor=1190)
    make_keys(session, game, 2, codes=["NEVER-INMAI-L0001", "NEVER-INMAI-L0002"])
    result = place_order(email="fan@example.com", lines=[CartLine(game.slug, 2)], country="DE")
    [(_name, args, _)] = [job for job in queued_jobs if job[0] == "send_order_email"]
    assert args[1] == "placed"
    assert send_order_email(order_id=args[0], kind="placed").endswith("sent")
    [message] = messages(test_settings, result.number)
    text = plain(message)
    assert message["Subject"] == f"Order {result.number} received"
    assert "2 x Mail Quest (Steam, GLOBAL)" in text
    assert "Total: €23.80" in text and "Includes VAT (19%, DE): €3.80" in text
    assert "NEVER-INMAI" not in message.as_string()


def test_the_delivery_e_mail_shows_totals_and_vat_never_the_key(session, test_settings):
    game = make_product(session, title="Delivered Dash", price_minor=2000)
    order = make_order(
        session, [(game, 1)], status="fulfilled", country="FR", vat_rate_bp=2000, vat_minor=333
    )
    assert send_order_email(order_id=order.id, kind="delivered").endswith("sent")
    [message] = messages(test_settings, order.number)
    text = plain(message)
    assert "Total: €20.00" in text and "Includes VAT (20%, FR): €3.33" in text


def test_find_my_order_says_the_same_and_mails_only_an_address_with_orders(
    session, test_settings, account_mail
):
    game = make_product(session)
    first = make_order(session, [(game, 1)], email="guest@example.com")
    second = make_order(session, [(game, 2)], email="guest@example.com")
    make_order(session, [(game, 1)], email="someone@example.com")
    assert request_order_links(email="Guest@Example.com", ip="203.0.113.5") is None
    assert request_order_links(email="nobody@example.com", ip="203.0.113.5") is None
    [message] = messages(test_settings, "guest@example.com")
    text = plain(message)
    assert first.number in text and second.number in text and "someone" not in text
    assert text.count("/orders/") == 2 and "token=" in text
    assert messages(test_settings, "nobody@example.com") == []


def test_find_my_order_is_rate_limited_per_address(session, account_mail):
    limit, _ = ORDER_LINKS_LIMITS["email"]
    for _ in range(limit):
        request_order_links(email="flood@example.com")
    with pytest.raises(RateLimited):
        request_order_links(email="flood@example.com")
