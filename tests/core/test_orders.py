import re
import threading

import pytest
from sqlmodel import select

from core.db import session_scope
from core.errors import ConcurrentUpdate, InvalidInput, InvalidTransition, UnknownProduct
from core.models import AuditEvent, Order, OrderEvent, OrderStatus
from core.services.audit import Actor
from core.services.orders import (
    ALLOWED,
    LineRequest,
    create_order,
    get_order_by_number,
    new_order_number,
    order_events,
    order_lines,
    transition_order,
)
from tests.factories import make_order, make_product

ALL = [s.value for s in OrderStatus]
SYSTEM = Actor.system("test")


def test_order_numbers_are_random_and_reveal_no_sequence():
    numbers = {new_order_number() for _ in range(2000)}
    assert len(numbers) == 2000
    assert all(re.fullmatch(r"KS-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", n) for n in numbers)


def test_create_order_snapshots_prices_and_logs_the_first_event(session):
    game = make_product(session, title="Hollow Tide", price_minor=2999)
    dlc = make_product(session, title="Hollow Tide: Deep", price_minor=999)
    order = create_order(
        session=session,
        email="  Alice@Example.COM ",
        lines=[LineRequest(game.id, 1), LineRequest(dlc.id, 2), LineRequest(game.id, 1)],
    )
    session.commit()
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.email == "alice@example.com"
    assert order.total_minor == 2 * 2999 + 2 * 999
    game.price_minor = 5
    session.add(game)
    session.commit()
    lines = order_lines(session=session, order_id=order.id)
    assert [(ln.title, ln.quantity, ln.unit_price_minor) for ln in lines] == [
        ("Hollow Tide", 2, 2999),
        ("Hollow Tide: Deep", 2, 999),
    ]
    assert get_order_by_number(session=session, number=order.number.lower()).id == order.id
    [event] = order_events(session=session, order_id=order.id)
    assert (event.from_status, event.to_status) == (None, "pending_payment")


@pytest.mark.parametrize(
    "lines, error",
    [
        ([], InvalidInput),
        ([("p", 0)], InvalidInput),
        ([("p", 11)], InvalidInput),
        ([("missing", 1)], UnknownProduct),
        ([("inactive", 1)], UnknownProduct),
    ],
)
def test_bad_checkout_input_is_refused_and_writes_nothing(session, lines, error):
    products = {"p": make_product(session), "inactive": make_product(session, active=False)}
    requests = [LineRequest(products[k].id if k in products else 999_999, q) for k, q in lines]
    with pytest.raises(error):
        create_order(session=session, email="a@example.com", lines=requests)
    session.rollback()
    assert session.exec(select(Order)).all() == []


def test_bad_email_is_refused(session):
    p = make_product(session)
    with pytest.raises(InvalidInput, match="e-mail"):
        create_order(session=session, email="not-an-address", lines=[LineRequest(p.id, 1)])


def test_mixed_currencies_are_refused(session):
    eur = make_product(session, currency="EUR")
    usd = make_product(session, currency="USD")
    with pytest.raises(InvalidInput, match="currency"):
        create_order(
            session=session,
            email="a@example.com",
            lines=[LineRequest(eur.id, 1), LineRequest(usd.id, 1)],
        )


@pytest.mark.parametrize("from_status", ALL)
@pytest.mark.parametrize("to_status", ALL)
def test_status_machine_allows_exactly_the_listed_transitions(session, from_status, to_status):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status=from_status)
    allowed = to_status in ALLOWED[from_status]
    if allowed:
        moved = transition_order(
            session=session, order_id=order.id, to_status=to_status, actor=SYSTEM, reason="because"
        )
        session.commit()
        assert moved.status == to_status
        events = session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
        assert [(e.from_status, e.to_status, e.reason) for e in events] == [
            (from_status, to_status, "because")
        ]
    else:
        with pytest.raises(InvalidTransition) as info:
            transition_order(
                session=session, order_id=order.id, to_status=to_status, actor=SYSTEM, reason="x"
            )
        assert info.value.code == "invalid_transition"
        session.rollback()
        assert session.get(Order, order.id).status == from_status
        assert session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all() == []


def test_paid_and_fulfilled_timestamps_and_attention_reason(session):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="pending_payment")
    transition_order(session=session, order_id=order.id, to_status="paid", actor=SYSTEM)
    with pytest.raises(InvalidInput):
        transition_order(
            session=session,
            order_id=order.id,
            to_status="needs_attention",
            actor=SYSTEM,
            reason=" ",
        )
    o = transition_order(
        session=session,
        order_id=order.id,
        to_status="needs_attention",
        actor=SYSTEM,
        reason="no provider had stock",
    )
    assert o.paid_at is not None and o.attention_reason == "no provider had stock"
    o = transition_order(
        session=session, order_id=order.id, to_status="fulfilled", actor=Actor.operator("ops")
    )
    session.commit()
    assert o.fulfilled_at is not None and o.attention_reason is None
    audit = session.exec(select(AuditEvent)).all()
    assert [(a.actor_id, a.action, a.object_id) for a in audit] == [
        ("ops", "order.transition", order.number)
    ]


def test_expected_from_guards_a_stale_decision(session):
    product = make_product(session)
    order = make_order(session, [(product, 1)], status="paid")
    with pytest.raises(ConcurrentUpdate):
        transition_order(
            session=session,
            order_id=order.id,
            to_status="refunded",
            actor=SYSTEM,
            expected_from="needs_attention",
        )


def test_two_workers_racing_to_move_one_order_only_one_wins(engine):
    with session_scope() as s:
        product = make_product(s)
        order = make_order(s, [(product, 1)], status="pending_payment")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def pay() -> None:
        barrier.wait()
        try:
            with session_scope() as s:
                transition_order(session=s, order_id=order.id, to_status="paid", actor=SYSTEM)
            outcomes.append("ok")
        except (ConcurrentUpdate, InvalidTransition):
            outcomes.append("refused")

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    with session_scope(write=False) as s:
        events = s.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)).all()
        assert [e.to_status for e in events] == ["paid"]
