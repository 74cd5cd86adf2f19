"""The order page and key portal: who may open an order, what it shows, reveals, reports."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core import crypto
from core.blobs import get_blob_store
from core.errors import InvalidInput, InvalidKeyState
from core.models import Alert, AuditEvent, Customer, Key, KeyReport, KeyStatus, new_uuid, utcnow
from core.services.fulfilment import fulfil_order
from core.services.notifications import order_access_token, portal_url
from core.services.portal import (
    REVEAL_LIMIT,
    TEXT_MASK,
    KeyNotFound,
    OrderNotFound,
    open_order,
    order_view,
    report_faulty_key,
    reveal_order_key,
    view_order,
)
from core.services.ratelimit import RateLimited
from tests.factories import fresh, make_keys, make_order, make_product, order_lines


@pytest.fixture
def delivered(session, queued_jobs):
    """A fulfilled order of two keys from stock, its access token and the codes."""
    product = make_product(
        session, platform="Steam", region="EU", activation_instructions="Open Steam"
    )
    codes = ["AAAAA-BBBBB-CCCCC", "DDDDD-EEEEE-FFFFF"]
    make_keys(session, product, 2, codes=codes)
    order = make_order(session, [(product, 2)], status="paid", delivery_consent_at=utcnow())
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    return order, order_access_token(order.number), codes


def customer(session, email):
    row = Customer(email=email)
    session.add(row)
    session.commit()
    return row


def view_of(session, number, token):
    s = fresh(session)
    return order_view(session=s, order=open_order(session=s, number=number, access_token=token))


# -- access -----------------------------------------------------------------------------


def test_the_token_opens_its_own_order_only(session, delivered):
    order, token, _ = delivered
    other = make_order(session, [(make_product(session), 1)], email="other@example.com")
    assert open_order(session=session, number=order.number, access_token=token).id == order.id
    assert (
        open_order(session=session, number=f" {order.number.lower()} ", access_token=token).id
        == order.id
    )
    answers = []
    for number, tok in [
        (other.number, token),
        (order.number, order_access_token(other.number)),
        (order.number, None),
        (order.number, "x.y.z"),
        ("KS-NONE-0000", token),
        ("KS-NONE-0000", order_access_token("KS-NONE-0000")),
        (order.number, token[:-2]),
    ]:
        with pytest.raises(OrderNotFound) as err:
            open_order(session=session, number=number, access_token=tok)
        answers.append((err.value.http_status, err.value.message))
    assert len(set(answers)) == 1 and answers[0][0] == 404


def test_the_e_mail_link_carries_a_token_that_opens_the_order(session, delivered):
    order, _, _ = delivered
    link = portal_url(order.number)
    token = link.split("token=")[1]
    assert open_order(session=session, number=order.number, access_token=token).id == order.id


def test_a_customer_opens_their_own_orders_and_not_anyone_elses(session):
    me, them = customer(session, "me@example.com"), customer(session, "them@example.com")
    product = make_product(session)
    mine = make_order(session, [(product, 1)], customer_id=me.id, email=me.email)
    theirs = make_order(session, [(product, 1)], customer_id=them.id, email=them.email)
    assert open_order(session=session, number=mine.number, customer_id=me.id).id == mine.id
    with pytest.raises(OrderNotFound):
        open_order(session=session, number=theirs.number, customer_id=me.id)
    guest = make_order(session, [(product, 1)], email=me.email)  # a guest order, same e-mail
    with pytest.raises(OrderNotFound):
        open_order(session=session, number=guest.number, customer_id=me.id)


# -- the view ---------------------------------------------------------------------------


def test_view_order_opens_and_builds_the_view_in_one_call(session, delivered):
    """The one function the order page, the payment page and the store API call."""
    order, token, _ = delivered
    view = view_order(number=order.number.lower(), access_token=token)
    assert view == view_of(session, order.number, token)
    with pytest.raises(OrderNotFound):
        view_order(number=order.number, access_token=None)
    with pytest.raises(OrderNotFound):
        view_order(number=order.number, customer_id=12345)


def test_order_view_of_a_pending_order(session):
    product = make_product(session, price_minor=1250)
    order = make_order(session, [(product, 2)], status="pending_payment")
    view = view_of(session, order.number, order_access_token(order.number))
    assert (view.status_label, view.stage, view.stages) == ("Waiting for payment", 1, 4)
    assert view.total_minor == 2500 and view.lines[0].line_total_minor == 2500
    assert view.lines[0].keys == [] and view.lines[0].pending == 0 and not view.is_final


def test_order_view_paid_then_delivering(session):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="paid")
    view = view_of(session, order.number, order_access_token(order.number))
    assert (view.status_label, view.stage, view.pending) == ("Paid", 2, 1)
    order.fulfilment_attempts = 1
    session.add(order)
    session.commit()
    view = view_of(session, order.number, order_access_token(order.number))
    assert (view.status_label, view.stage) == ("Delivering your keys", 3)


def test_order_view_of_a_delivered_order_masks_every_key(session, delivered):
    order, token, codes = delivered
    view = view_of(session, order.number, token)
    assert (view.status, view.status_label, view.stage) == ("fulfilled", "Delivered", 4)
    assert view.is_final and view.delivered == 2 and view.pending == 0
    [line] = view.lines
    assert line.activation_url == "https://store.steampowered.com/account/registerkey"
    assert line.activation_instructions == "Open Steam" and line.region == "EU"
    assert [(k.masked, k.revealed, k.reported, k.status) for k in line.keys] == [
        (TEXT_MASK, False, False, "delivered")
    ] * 2
    assert not any(code in repr(view) for code in codes)


def test_needs_attention_reads_in_customer_words(session):
    order = make_order(session, [(make_product(session), 1)], status="needs_attention")
    view = view_of(session, order.number, order_access_token(order.number))
    assert view.status_label == "Needs our attention" and view.pending == 1


# -- reveal -----------------------------------------------------------------------------


def test_reveal_returns_the_delivered_code_and_audits_it(session, delivered):
    order, token, codes = delivered
    key_ids = [k.id for k in view_of(session, order.number, token).lines[0].keys]
    shown = [
        reveal_order_key(
            number=order.number,
            key_id=kid,
            access_token=token,
            ip="198.51.100.7",
            user_agent="Firefox",
        )
        for kid in key_ids
    ]
    assert sorted(s.code for s in shown) == sorted(codes)  # compared, never printed
    assert all(s.kind == "text" and s.image_url is None for s in shown)
    assert not any(code in repr(shown) for code in codes)
    audits = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "key.reveal")).all()
    assert sorted(a.object_id for a in audits) == sorted(key_ids)
    assert {(a.actor_type, a.actor_id, a.ip, a.user_agent) for a in audits} == {
        ("customer", f"guest:{order.number}", "198.51.100.7", "Firefox")
    }
    assert all(k.revealed for k in view_of(session, order.number, token).lines[0].keys)


def test_reveal_is_refused_to_others_and_for_keys_of_other_orders(session, delivered):
    order, token, _ = delivered
    key_id = view_of(session, order.number, token).lines[0].keys[0].id
    other_product = make_product(session)
    make_keys(session, other_product, 1)
    other = make_order(session, [(other_product, 1)], status="paid")
    fulfil_order(order_id=other.id)
    other_token = order_access_token(other.number)
    with pytest.raises(OrderNotFound):
        reveal_order_key(number=order.number, key_id=key_id, access_token=other_token)
    with pytest.raises(KeyNotFound):  # my key through someone else's order
        reveal_order_key(number=other.number, key_id=key_id, access_token=other_token)
    for bad in ("not-a-uuid", str(new_uuid())):
        with pytest.raises(KeyNotFound):
            reveal_order_key(number=order.number, key_id=bad, access_token=token)
    assert (
        fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "key.reveal")).all() == []
    )


def test_reveal_by_the_owning_customer(session, queued_jobs):
    me = customer(session, "me@example.com")
    product = make_product(session)
    [key] = make_keys(session, product, 1, codes=["QQQQQ-WWWWW-EEEEE"])
    order = make_order(
        session, [(product, 1)], customer_id=me.id, email=me.email, delivery_consent_at=utcnow()
    )
    fulfil_order(order_id=order.id)
    assert (
        reveal_order_key(number=order.number, key_id=str(key.id), customer_id=me.id).code
        == "QQQQQ-WWWWW-EEEEE"
    )
    intruder = customer(session, "x@example.com")
    with pytest.raises(OrderNotFound):
        reveal_order_key(number=order.number, key_id=str(key.id), customer_id=intruder.id)
    audit = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "key.reveal")).one()
    assert audit.actor_id == str(me.id)


def test_revoked_keys_are_listed_but_not_revealed(session, delivered):
    order, token, _ = delivered
    key = fresh(session).exec(select(Key).where(Key.status == KeyStatus.DELIVERED)).first()
    key.status = KeyStatus.REVOKED
    session.add(key)
    session.commit()
    with pytest.raises(InvalidKeyState, match="withdrawn"):
        reveal_order_key(number=order.number, key_id=str(key.id), access_token=token)
    statuses = sorted(k.status for k in view_of(session, order.number, token).lines[0].keys)
    assert statuses == ["delivered", "revoked"]
    assert view_of(session, order.number, token).lines[0].pending == 1


def test_reveals_are_rate_limited_per_order(session, delivered):
    order, token, _ = delivered
    key_id = view_of(session, order.number, token).lines[0].keys[0].id
    for _ in range(REVEAL_LIMIT):
        reveal_order_key(number=order.number, key_id=key_id, access_token=token)
    with pytest.raises(RateLimited) as err:
        reveal_order_key(number=order.number, key_id=key_id, access_token=token)
    assert err.value.http_status == 429
    audits = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "key.reveal")).all()
    assert len(audits) == REVEAL_LIMIT


def test_an_image_key_reveals_as_a_signed_link(session, queued_jobs):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="fulfilled", delivery_consent_at=utcnow())
    line = order_lines(session, order)[0]
    row_id = new_uuid()
    name = f"keys/{row_id}.png"
    get_blob_store().put(name, b"\x89PNG fake", content_type="image/png")
    vault = crypto.get_vault()
    version, blob = vault.encrypt(name.encode(), row_id=row_id)
    session.add(
        Key(
            id=row_id,
            product_id=product.id,
            status=KeyStatus.DELIVERED,
            kind="image",
            ciphertext=blob,
            key_version=version,
            fingerprint=vault.fingerprint("image:x"),
            order_line_id=line.id,
        )
    )
    session.commit()
    token = order_access_token(order.number)
    [key_view] = view_of(session, order.number, token).lines[0].keys
    assert key_view.kind == "image" and name not in key_view.masked
    shown = reveal_order_key(number=order.number, key_id=str(row_id), access_token=token)
    assert shown.kind == "image" and shown.code is None
    assert "/api/blobs/keys/" in shown.image_url and "token=" in shown.image_url
    assert (
        get_blob_store().open_link(name, shown.image_url.split("token=")[1])[0] == b"\x89PNG fake"
    )


# -- faulty-key reports -----------------------------------------------------------------


def test_report_opens_one_case_with_an_alert_and_an_audit_event(session, delivered):
    order, token, codes = delivered
    key_id = view_of(session, order.number, token).lines[0].keys[0].id
    report = report_faulty_key(
        number=order.number,
        key_id=key_id,
        message="  Steam says invalid  ",
        access_token=token,
        ip="192.0.2.1",
    )
    assert (
        report.status == "open"
        and report.message == "Steam says invalid"
        and report.email == order.email
    )
    again = report_faulty_key(
        number=order.number, key_id=key_id, message="still broken", access_token=token
    )
    assert again.id == report.id
    s = fresh(session)
    assert len(s.exec(select(KeyReport)).all()) == 1
    [alert] = s.exec(select(Alert)).all()
    assert alert.subject == f"key-report:{report.id}" and order.number in alert.message
    assert not any(code in alert.message for code in codes)
    [audit] = s.exec(select(AuditEvent).where(AuditEvent.action == "key.report")).all()
    assert audit.object_id == key_id and audit.ip == "192.0.2.1"
    keys = view_of(session, order.number, token).lines[0].keys
    assert [k.reported for k in keys if k.id == key_id] == [True]
    assert fresh(session).get(type(order), order.id).status == "fulfilled"


@pytest.mark.parametrize("message", ["", "   ", "x" * 2001])
def test_report_message_is_required_and_limited(session, delivered, message):
    order, token, _ = delivered
    key_id = view_of(session, order.number, token).lines[0].keys[0].id
    with pytest.raises(InvalidInput):
        report_faulty_key(number=order.number, key_id=key_id, message=message, access_token=token)
    assert fresh(session).exec(select(KeyReport)).all() == []


def test_report_needs_ownership(session, delivered):
    order, token, _ = delivered
    key_id = view_of(session, order.number, token).lines[0].keys[0].id
    with pytest.raises(OrderNotFound):
        report_faulty_key(number=order.number, key_id=key_id, message="broken", access_token="nope")
    assert fresh(session).exec(select(KeyReport)).all() == []
