"""Promo codes under concurrent checkouts (issue #18, invariants): a single-use code used
by 16 concurrent checkouts is accepted exactly once; a code with 100 uses under 200
concurrent checkouts is accepted exactly 100 times. Deterministic where racing: a second
checkout reaching the code while the first holds its use waits for it (seen in
``pg_stat_activity``) and is then refused."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.models import Order, PromoCode, PromoRedemption
from core.services.audit import Actor
from core.services.checkout import CartLine, place_order
from core.services.operator.promos import PromoInput, create_promo
from core.services.promos import PromoRejected
from tests.factories import fresh, make_keys, make_product
from tests.race_condition import Competitor, race_condition


def _storm(slug: str, code: str, n_checkouts: int, n_threads: int, *, same_buyer: bool = False):
    todo = iter(range(n_checkouts))
    take = threading.Lock()
    accepted: list = []
    refused: list[PromoRejected] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def buyer() -> None:
        start.wait()
        while True:
            with take:
                n = next(todo, None)
            if n is None:
                return
            try:
                accepted.append(
                    place_order(
                        email="one@example.com" if same_buyer else f"buyer{n}@example.com",
                        lines=[CartLine(slug, 1)],
                        promo_code=code,
                    )
                )
            except PromoRejected as exc:
                refused.append(exc)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=buyer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    return accepted, refused


@pytest.mark.parametrize(
    ("max_uses", "n_checkouts", "n_threads"),
    [(1, 16, 16), (100, 200, 32)],
    ids=["1of16", "100of200"],
)
def test_a_code_is_accepted_exactly_as_often_as_it_allows(
    session, max_uses, n_checkouts, n_threads
):
    product = make_product(session, title="Promo Game", price_minor=1000)
    make_keys(session, product, n_checkouts)  # stock never limits: the code does
    create_promo(
        data=PromoInput(code="RUSH", percent="10", max_uses=max_uses),
        actor=Actor.operator("owner"),
    )
    accepted, refused = _storm(product.slug, "RUSH", n_checkouts, n_threads)
    assert len(accepted) == max_uses, f"{len(accepted)} checkouts took a {max_uses}-use code"
    assert len(refused) == n_checkouts - max_uses
    assert all(exc.message == "Promo code RUSH has been used up." for exc in refused)
    s = fresh(session)
    assert s.exec(select(PromoCode.uses)).one() == max_uses
    assert len(s.exec(select(PromoRedemption)).all()) == max_uses
    orders = s.exec(select(Order)).all()
    assert len(orders) == max_uses and {o.total_minor for o in orders} == {900}


def test_one_buyer_racing_themselves_gets_a_once_per_customer_code_once(session):
    """The per-customer count is taken under the code's row lock: 12 concurrent checkouts
    by one address for a code allowed once per customer (no total limit) accept one."""
    product = make_product(session, title="Per Buyer", price_minor=1000)
    make_keys(session, product, 12)
    create_promo(
        data=PromoInput(code="ONCEEACH", percent="10", per_customer=1),
        actor=Actor.operator("owner"),
    )
    accepted, refused = _storm(product.slug, "ONCEEACH", 12, 12, same_buyer=True)
    assert len(accepted) == 1, f"{len(accepted)} checkouts by one buyer took a once-each code"
    assert {exc.message for exc in refused} == {
        "You have already used promo code ONCEEACH as often as it allows."
    }
    assert fresh(session).exec(select(PromoCode.uses)).one() == 1


@pytest.mark.postgres_only
def test_a_checkout_waits_for_the_one_taking_the_last_use(session, engine):
    """A has taken the single use and not yet committed when B reaches the code: B must
    wait for A's row lock and then be refused; A's order keeps the use."""
    product = make_product(session, title="Last Use", price_minor=1000)
    make_keys(session, product, 2)
    create_promo(
        data=PromoInput(code="SOLO", amounts="EUR=2", max_uses=1), actor=Actor.operator("owner")
    )
    b = Competitor(
        lambda: place_order(
            email="b@example.com", lines=[CartLine(product.slug, 1)], promo_code="SOLO"
        )
    )

    def b_reaches_the_code(*args, **kwargs):
        b.start()
        _wait_for_lock_wait(engine, b, "%UPDATE promo_codes%")

    with race_condition("core.services.locking.take_promo_use", after=b_reaches_the_code) as point:
        a = place_order(email="a@example.com", lines=[CartLine(product.slug, 1)], promo_code="SOLO")
    assert point.call_count == 2  # A's call, then B's (which waited)
    assert b.join(10)
    assert isinstance(b.error, PromoRejected), b.error
    assert b.error.message == "Promo code SOLO has been used up."
    s = fresh(session)
    assert [o.number for o in s.exec(select(Order))] == [a.number]
    assert s.exec(select(PromoCode.uses)).one() == 1


def _wait_for_lock_wait(engine, competitor, pattern: str) -> None:
    deadline = time.monotonic() + 30
    with engine.connect() as watcher:
        while time.monotonic() < deadline and not competitor.finished.is_set():
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid() AND query ILIKE :pattern"
                ),
                {"pattern": pattern},
            ).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the competing checkout never waited for the code's row lock")
