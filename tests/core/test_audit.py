import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.services.audit import Actor, record_audit, search_audit


def test_audit_events_record_who_what_where_and_can_be_searched(session):
    alice = Actor.operator("alice", ip="10.0.0.7", user_agent="keyshop-console")
    record_audit(
        session=session, actor=alice, action="key.reveal", object_type="key", object_id="k1"
    )
    record_audit(
        session=session,
        actor=Actor.customer(42),
        action="key.reveal",
        object_type="key",
        object_id="k2",
    )
    record_audit(
        session=session,
        actor=alice,
        action="key.revoke",
        object_type="key",
        object_id="k1",
        data={"reason": "chargeback"},
    )
    session.commit()
    by_alice = search_audit(session=session, actor_id="alice")
    assert [(e.action, e.object_id, e.ip) for e in by_alice] == [
        ("key.revoke", "k1", "10.0.0.7"),
        ("key.reveal", "k1", "10.0.0.7"),
    ]
    reveals = search_audit(session=session, action="key.reveal")
    assert {e.actor_type for e in reveals} == {"operator", "customer"}
    first_page = search_audit(session=session, limit=2)
    second_page = search_audit(session=session, limit=2, before_id=first_page[-1].id)
    assert [e.object_id for e in second_page] == ["k1"]


def test_audit_trail_is_append_only_in_the_database(session):
    event = record_audit(
        session=session,
        actor=Actor.system(),
        action="order.transition",
        object_type="order",
        object_id="KS-1",
    )
    session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(
            text("UPDATE audit_events SET actor_id = 'mallory' WHERE id = :id"), {"id": event.id}
        )
        session.flush()
    session.rollback()
    assert search_audit(session=session)[0].actor_id == "keyshop"
