"""Invariant 1 under concurrency: a key goes to at most one order line.

Two kinds of test (STYLE): a many-threads stress test that runs on both backends, and
deterministic races (``tests/race_condition.py``) where a competing claim runs while the
first claimer holds its freshly claimed keys, uncommitted.

Why these tests would catch a missing lock:
- a claim written as SELECT-then-UPDATE without a lock hands the same key to both
  claimers in the race (``test_race_harness_catches_an_unlocked_claim`` shows it) and
  to several threads in the stress test;
- the claim statement without ``SKIP LOCKED`` makes the PostgreSQL competitor wait for
  the first claimer and then come back empty-handed although stock remains
  (``test_race_harness_catches_a_claim_without_skip_locked``); the stress test then
  stops short of 1,000 claims.

The stress test has already earned its keep: with the candidates written as
``WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)``, PostgreSQL re-ran the
subquery inside a nested loop and one claim of 1 key reserved 961 keys. The claim now
selects its candidates in a ``MATERIALIZED`` CTE (``core/services/locking.py``).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.db import session_scope
from core.errors import InsufficientStock
from core.models import Key, KeyStatus, Product
from core.services import inventory, locking
from tests.conftest import is_postgres_run
from tests.factories import make_keys, make_order, make_product, order_lines
from tests.race_condition import Competitor, race_condition

CLAIM_POINT = "core.services.locking.claim_available"


def _claim_one(product_id: int, line_id: int) -> list[uuid.UUID]:
    with session_scope() as s:
        keys = inventory.claim_keys(session=s, product_id=product_id, quantity=1, line_id=line_id)
        return [k.id for k in keys]


# -- stress -------------------------------------------------------------------------------


def test_sixteen_threads_share_a_thousand_keys_without_a_duplicate(
    session: Session, engine: Engine
) -> None:
    n_keys, n_threads = 1000, 16
    product = make_product(session)
    make_keys(session, product, n_keys)
    order = make_order(session, [(product, 1)] * (n_keys + 2 * n_threads))
    line_ids = iter([line.id for line in order_lines(session, order)])
    session.commit()  # end the fixture's transaction: on SQLite it would hold the write lock
    take_line = threading.Lock()
    claims: list[tuple[int, uuid.UUID]] = []
    refusals: list[InsufficientStock] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)
    assert product.id is not None

    def claimer() -> None:
        start.wait()
        try:
            while True:
                with take_line:
                    line_id = next(line_ids)
                try:
                    got = _claim_one(product.id, line_id)  # type: ignore[arg-type]
                except InsufficientStock as exc:
                    refusals.append(exc)
                    return
                claims.extend((line_id, k) for k in got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(refusals) == n_threads  # every thread ran out, none gave up early
    key_ids = [k for _, k in claims]
    assert len(key_ids) == n_keys
    assert len(set(key_ids)) == n_keys, "a key was handed out twice"
    assert len({line for line, _ in claims}) == n_keys  # one key per line
    assert refusals[0].data["shortfalls"] == {product.id: 1}

    with pytest.raises(InsufficientStock):
        _claim_one(product.id, next(line_ids))

    with session_scope(write=False) as s:
        by_status = {
            status: n
            for status, n in s.connection().execute(
                select(locking.KEYS.c.status, func.count()).group_by(locking.KEYS.c.status)
            )
        }
        assert by_status == {KeyStatus.RESERVED: n_keys}
        rows = s.connection().execute(select(Key.id, Key.order_line_id)).all()
    assert {r.id for r in rows} == set(key_ids)
    stored = {r.id: r.order_line_id for r in rows}
    assert all(stored[k] == line for line, k in claims)  # as the claimer was told
    per_line = Counter(r.order_line_id for r in rows)
    assert max(per_line.values()) == 1


# -- deterministic races ----------------------------------------------------------------


def _two_lines(session: Session, n_keys: int) -> tuple[Product, list[Key], int, int]:
    product = make_product(session)
    keys = sorted(make_keys(session, product, n_keys), key=lambda k: k.id)
    order = make_order(session, [(product, 1), (product, 1)])
    first_line, second_line = (line.id for line in order_lines(session, order))
    session.commit()  # end the fixture's transaction: on SQLite it would hold the write lock
    assert first_line is not None and second_line is not None
    return product, keys, first_line, second_line


def _race(
    product_id: int,
    first_line: int,
    second_line: int,
    claim_first: Any = None,
    wait: float | None = None,
) -> dict[str, Any]:
    """The first claimer reserves a key; right after its claim statement — keys chosen
    and taken, nothing committed — a competitor claims for another line in its own
    thread and transaction. On PostgreSQL we wait for the competitor at that point (it
    must not block: SKIP LOCKED); on SQLite it cannot run before we commit (one writer),
    so we check it is still waiting, then join it after the commit."""
    competitor: Competitor[list[uuid.UUID]] = Competitor(
        lambda: _claim_one(product_id, second_line)
    )
    seen: dict[str, Any] = {}

    def let_competitor_run(*_args: Any, **_kwargs: Any) -> None:
        competitor.start()
        if wait is not None:
            seen["finished_during_first"] = competitor.join(wait)
        else:
            seen["finished_during_first"] = competitor.join(30 if is_postgres_run() else 0.5)

    with race_condition(CLAIM_POINT, after=let_competitor_run) as hook:
        try:
            with session_scope() as s:
                if claim_first is None:
                    seen["first"] = [
                        k.id
                        for k in inventory.claim_keys(
                            session=s, product_id=product_id, quantity=1, line_id=first_line
                        )
                    ]
                else:
                    seen["first"] = claim_first(s, product_id, first_line)
        except Exception as exc:  # the first transaction rolled back
            seen["first_error"] = exc
    assert hook.call_count >= 1
    seen["finished_at_all"] = competitor.join(30)
    seen["competitor"] = competitor.result
    seen["competitor_error"] = competitor.error
    return seen


def test_a_competing_claim_never_gets_the_key_being_claimed(session: Session) -> None:
    product, keys, first_line, second_line = _two_lines(session, 3)
    seen = _race(product.id, first_line, second_line)  # type: ignore[arg-type]

    assert seen["competitor_error"] is None
    assert seen["first"] == [keys[0].id]  # oldest first
    assert seen["competitor"] == [keys[1].id]  # the next one, never the same
    if is_postgres_run():
        # SKIP LOCKED: the competitor passed over the locked row without waiting.
        assert seen["finished_during_first"]
    else:
        # One writer: the competitor waited for the first transaction to commit.
        assert not seen["finished_during_first"]
    with session_scope(write=False) as s:
        rows = {
            r.id: r.order_line_id for r in s.connection().execute(select(Key.id, Key.order_line_id))
        }
    assert rows == {keys[0].id: first_line, keys[1].id: second_line, keys[2].id: None}


def test_the_last_key_goes_to_one_of_two_simultaneous_buyers(session: Session) -> None:
    product, keys, first_line, second_line = _two_lines(session, 1)
    seen = _race(product.id, first_line, second_line)  # type: ignore[arg-type]

    assert seen["first"] == [keys[0].id]
    assert isinstance(seen["competitor_error"], InsufficientStock)
    assert seen["competitor"] is None
    with session_scope(write=False) as s:
        rows = s.connection().execute(select(Key.id, Key.order_line_id, Key.status)).all()
    assert [tuple(r) for r in rows] == [(keys[0].id, first_line, KeyStatus.RESERVED)]


def test_a_rolled_back_claim_leaves_its_keys_to_the_competitor(session: Session) -> None:
    product, keys, first_line, second_line = _two_lines(session, 1)

    class Abandon(Exception):
        pass

    def claim_then_abandon(s: Session, product_id: int, line_id: int) -> list[uuid.UUID]:
        inventory.claim_keys(session=s, product_id=product_id, quantity=1, line_id=line_id)
        raise Abandon

    seen = _race(product.id, first_line, second_line, claim_first=claim_then_abandon)  # type: ignore[arg-type]
    assert isinstance(seen["first_error"], Abandon)
    if is_postgres_run():
        # The competitor skipped the key the first claimer held (no other stock)...
        assert isinstance(seen["competitor_error"], InsufficientStock)
        expected = (keys[0].id, None, KeyStatus.AVAILABLE)  # ...and the rollback freed it.
    else:
        # It waited for the write lock, then found the key available again.
        assert seen["competitor"] == [keys[0].id]
        expected = (keys[0].id, second_line, KeyStatus.RESERVED)
    with session_scope(write=False) as s:
        rows = s.connection().execute(select(Key.id, Key.order_line_id, Key.status)).all()
    assert [tuple(r) for r in rows] == [expected]


# -- the harness catches missing locks (PostgreSQL: SQLite has a single writer) ---------


def _unlocked_claim(s: Session, product_id: int, line_id: int) -> list[uuid.UUID]:
    """What LMFWC-style code does: pick a key, then take it, with no lock between."""
    key_id = _pick_candidate(s, product_id)
    s.connection().execute(
        update(locking.KEYS)
        .where(locking.KEYS.c.id == key_id)
        .values(status=KeyStatus.RESERVED, order_line_id=line_id)
    )
    return [key_id]


def _pick_candidate(s: Session, product_id: int) -> uuid.UUID:
    return (
        s.connection()
        .execute(
            select(locking.KEYS.c.id)
            .where(locking.KEYS.c.product_id == product_id, locking.KEYS.c.status == "available")
            .order_by(locking.KEYS.c.id)
            .limit(1)
        )
        .scalar_one()
    )


@pytest.mark.postgres_only
def test_race_harness_catches_an_unlocked_claim(session: Session) -> None:
    product, keys, first_line, second_line = _two_lines(session, 3)

    def competitor_claim() -> list[uuid.UUID]:
        with session_scope() as s:
            return _unlocked_claim(s, product.id, second_line)  # type: ignore[arg-type]

    competitor: Competitor[list[uuid.UUID]] = Competitor(competitor_claim)

    def let_competitor_run(*_a: Any, **_k: Any) -> None:
        competitor.start()
        assert competitor.join(30)

    target = f"{__name__}._pick_candidate"
    with race_condition(target, after=let_competitor_run), session_scope() as s:
        first = _unlocked_claim(s, product.id, first_line)  # type: ignore[arg-type]
    assert competitor.result == first == [keys[0].id]  # the same key, twice: caught


@pytest.mark.postgres_only
def test_race_harness_catches_a_claim_without_skip_locked(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    product, _keys, first_line, second_line = _two_lines(session, 3)
    k = locking.KEYS
    candidates = (  # the claim's subquery without FOR UPDATE SKIP LOCKED
        select(k.c.id)
        .where(k.c.product_id == bindparam("b_product"), k.c.status == "available")
        .order_by(k.c.id)
        .limit(bindparam("b_quantity"))
    )
    picked = candidates.cte("candidates").prefix_with("MATERIALIZED")
    unlocked = (
        update(k)
        .where(k.c.id == picked.c.id, k.c.status == "available")
        .values(
            status="reserved", order_line_id=bindparam("b_line"), reserved_at=bindparam("b_now")
        )
        .returning(k.c.id)
    )
    monkeypatch.setattr(locking, "CLAIM_STATEMENT", unlocked)
    seen = _race(product.id, first_line, second_line, wait=1.0)  # type: ignore[arg-type]
    # The competitor queued behind the first claimer's row lock instead of skipping it,
    # then found "its" key taken and came back empty although two keys were in stock.
    assert not seen["finished_during_first"]
    assert isinstance(seen["competitor_error"], InsufficientStock)


def test_claims_for_many_lines_take_product_order(session: Session) -> None:
    """Locks are taken product by product in id order, whatever the request order."""
    p1, p2 = make_product(session), make_product(session)
    make_keys(session, p1, 2)
    make_keys(session, p2, 2)
    order = make_order(session, [(p2, 1), (p1, 1)])
    l_p2, l_p1 = (line.id for line in order_lines(session, order))
    session.commit()
    calls: list[int] = []
    original = locking.claim_available

    def spy(s: Session, **kw: Any) -> list[uuid.UUID]:
        calls.append(kw["product_id"])
        return original(s, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(locking, "claim_available", spy)
        with session_scope() as s:
            got = inventory.claim_for_lines(
                session=s,
                requests=[(l_p2, p2.id, 1), (l_p1, p1.id, 1)],  # type: ignore[list-item]
            )
    assert calls == sorted([p1.id, p2.id])  # type: ignore[type-var]
    assert set(got) == {l_p1, l_p2}
    assert list(itertools.chain.from_iterable(got.values()))
