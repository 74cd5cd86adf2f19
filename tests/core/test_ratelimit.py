"""Rate limits: fixed windows in the database, atomic under concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, select

from core.errors import DomainError
from core.models import RateLimitCounter
from core.services import ratelimit
from core.services.ratelimit import RateLimited, check_rate, hits, purge_old_counters

T0 = 1_800_000_000.0  # a multiple of 900 and 60: windows start here


def test_limit_allows_then_refuses_with_retry_after(engine) -> None:
    for _ in range(3):
        check_rate(
            scope="sign-in", subject="a@example.com", limit=3, window_seconds=900, now=T0 + 10
        )
    with pytest.raises(RateLimited) as caught:
        check_rate(
            scope="sign-in", subject="a@example.com", limit=3, window_seconds=900, now=T0 + 720
        )
    err = caught.value
    assert isinstance(err, DomainError)
    assert err.http_status == 429
    assert err.code == "rate_limited"
    assert err.retry_after == 180
    assert err.message == "Too many attempts; try again in 3 minutes"
    assert err.to_dict()["data"]["retry_after"] == 180


def test_subjects_and_scopes_are_counted_apart(engine) -> None:
    check_rate(scope="sign-in", subject="a@example.com", limit=1, window_seconds=60, now=T0)
    check_rate(scope="sign-in", subject="b@example.com", limit=1, window_seconds=60, now=T0)
    check_rate(scope="reset", subject="a@example.com", limit=1, window_seconds=60, now=T0)
    with pytest.raises(RateLimited):
        check_rate(scope="sign-in", subject="a@example.com", limit=1, window_seconds=60, now=T0 + 1)


def test_next_window_starts_afresh(engine) -> None:
    check_rate(scope="s", subject="x", limit=1, window_seconds=60, now=T0 + 59)
    with pytest.raises(RateLimited) as caught:
        check_rate(scope="s", subject="x", limit=1, window_seconds=60, now=T0 + 59.5)
    assert caught.value.retry_after == 1
    assert caught.value.message == "Too many attempts; try again in 1 second"
    check_rate(scope="s", subject="x", limit=1, window_seconds=60, now=T0 + 60)
    assert hits(scope="s", subject="x", window_seconds=60, now=T0 + 60) == 1


def test_refused_hits_are_counted(engine) -> None:
    for _ in range(2):
        check_rate(scope="s", subject="x", limit=2, window_seconds=60, now=T0)
    for _ in range(3):
        with pytest.raises(RateLimited):
            check_rate(scope="s", subject="x", limit=2, window_seconds=60, now=T0)
    assert hits(scope="s", subject="x", window_seconds=60, now=T0) == 5


def test_long_subject_is_hashed(session: Session) -> None:
    long_subject = "agent/" + "x" * 1000
    check_rate(scope="ua", subject=long_subject, limit=1, window_seconds=60, now=T0)
    with pytest.raises(RateLimited):
        check_rate(scope="ua", subject=long_subject, limit=1, window_seconds=60, now=T0)
    other = "agent/" + "x" * 999 + "y"
    check_rate(scope="ua", subject=other, limit=1, window_seconds=60, now=T0)
    stored = session.exec(select(RateLimitCounter.subject)).all()
    assert len(stored) == 2
    assert all(s.startswith("sha256:") and len(s) == 71 for s in stored)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scope": "", "limit": 1, "window_seconds": 60},
        {"scope": "s" * 41, "limit": 1, "window_seconds": 60},
        {"scope": "s", "limit": 0, "window_seconds": 60},
        {"scope": "s", "limit": 1, "window_seconds": 0},
        {"scope": "s", "limit": 1, "window_seconds": 86_401},
    ],
)
def test_bad_limits_are_refused_and_count_nothing(session: Session, kwargs) -> None:
    with pytest.raises(ValueError):
        check_rate(subject="x", now=T0, **kwargs)
    assert session.exec(select(RateLimitCounter)).all() == []


def test_purge_removes_only_old_windows(session: Session) -> None:
    now = T0 + 100_000
    check_rate(scope="s", subject="old", limit=5, window_seconds=60, now=T0)
    check_rate(scope="s", subject="new", limit=5, window_seconds=60, now=now)
    assert purge_old_counters(now=now) == 1
    assert [r.subject for r in session.exec(select(RateLimitCounter)).all()] == ["new"]


def test_check_rate_purges_old_windows_now_and_then(session: Session, monkeypatch) -> None:
    check_rate(scope="s", subject="old", limit=5, window_seconds=60, now=T0)
    monkeypatch.setattr(ratelimit, "_last_purge", None)
    check_rate(scope="s", subject="new", limit=5, window_seconds=60, now=T0 + 100_000)
    assert [r.subject for r in session.exec(select(RateLimitCounter)).all()] == ["new"]
    # within ten minutes of that purge, no other purge runs
    check_rate(scope="s", subject="old", limit=5, window_seconds=60, now=T0)
    check_rate(scope="s", subject="new", limit=5, window_seconds=60, now=T0 + 100_000)
    session.rollback()  # end the read snapshot (SQLite WAL) before reading again
    assert len(session.exec(select(RateLimitCounter)).all()) == 2


def test_concurrent_hits_are_all_counted_and_exactly_limit_pass(engine) -> None:
    """16 threads, 10 hits each, limit 100: every hit is counted once and exactly 100 of
    the 160 pass (a lost update would let more through)."""
    threads, per_thread, limit = 16, 10, 100
    barrier = threading.Barrier(threads)
    passed: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def hammer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            try:
                check_rate(scope="race", subject="victim", limit=limit, window_seconds=3600, now=T0)
                outcome = passed
            except RateLimited:
                outcome = refused
            except BaseException as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)
                return
            with lock:
                outcome.append(1)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    assert len(passed) == limit
    assert len(refused) == threads * per_thread - limit
    assert hits(scope="race", subject="victim", window_seconds=3600, now=T0) == threads * per_thread
