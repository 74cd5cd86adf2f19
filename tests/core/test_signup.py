"""Sign-up and password reset without account enumeration, and e-mail verification
(core.services.signup, core.services.accounts).

The timing tests compare 200 requests for addresses with an account against 200 for
addresses without one, interleaved, after a warm-up: the medians must agree within a
quarter, and a request of one kind must be slower than one of the other about as often
as not (the probability of superiority between 0.25 and 0.75). Before the fix a reset
for a known address took about twice as long (the e-mail was sent in the request).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from core.errors import InvalidInput
from core.mail import list_outbox, read_outbox_message
from core.models import AuditEvent, Customer, CustomerSession
from core.services import accounts
from core.services.accounts import (
    InvalidCredentials,
    create_account,
    request_password_reset,
    sign_in,
)
from core.services.signup import (
    InvalidVerificationLink,
    send_account_email,
    sign_up,
    verify_email,
)
from tests.factories import fresh, make_order, make_product

PASSWORD = "correct horse battery"
SAMPLES = 200


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")


def new_email(tag: str = "ann") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def outbox(var_dir, address: str):
    return [read_outbox_message(i.path) for i in list_outbox(var_dir / "outbox") if i.to == address]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def run_jobs(queued: list) -> None:
    while queued:
        name, args, kwargs = queued.pop(0)
        assert name == "send_account_email"
        send_account_email(*args, **kwargs)


# -- the same answer ------------------------------------------------------------------------


def test_sign_up_of_a_known_address_answers_the_same_and_tells_the_owner(
    session: Session, var_dir, queued_jobs
) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD, display_name="Owner")
    assert sign_up(email=email.upper(), password="another password 99", display_name="X") is None
    assert sign_up(email=new_email(), password="another password 99") is None
    assert len(fresh(session).exec(select(Customer)).all()) == 2  # the known one unchanged
    run_jobs(queued_jobs)
    [notice] = outbox(var_dir, email)
    assert str(notice["Subject"]) == "Someone tried to create a keyshop account with your address"
    assert "/forgot-password" in text_of(notice) and "another password" not in text_of(notice)
    # nothing changed for the owner: the old password works, the attempt's does not
    assert sign_in(email=email, password=PASSWORD).display_name == "Owner"
    with pytest.raises(InvalidCredentials):
        sign_in(email=email, password="another password 99")
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.sign_up_attempted")
    ).one()


def test_sign_up_refuses_bad_input_whatever_the_address(session: Session, queued_jobs) -> None:
    known = new_email()
    create_account(email=known, password=PASSWORD)
    for email in (known, new_email()):
        with pytest.raises(InvalidInput) as caught:
            sign_up(email=email, password="short")
        assert caught.value.data["field"] == "password"
    assert queued_jobs == []


def test_a_new_account_is_verified_by_its_link_once(session: Session, var_dir, queued_jobs) -> None:
    email = new_email()
    product = make_product(session)
    guest_order = make_order(session, [(product, 1)], email=email)
    sign_up(email=email, password=PASSWORD, display_name="Nia", ip="203.0.113.4")
    customer = fresh(session).exec(select(Customer).where(Customer.email == email)).one()
    assert customer.verified_at is None
    assert session.exec(select(CustomerSession)).all() == []  # nobody signed in by sign-up
    run_jobs(queued_jobs)
    [message] = outbox(var_dir, email)
    link = next(w for w in text_of(message).split() if "/api/account/verify?token=" in w)
    token = link.split("token=", 1)[1]
    signed = verify_email(token=token, ip="203.0.113.4")
    assert signed.customer_id == customer.id
    assert accounts.customer_for_token(token=signed.token).verified
    assert fresh(session).get(type(guest_order), guest_order.id).customer_id == customer.id
    with pytest.raises(InvalidVerificationLink):
        verify_email(token=token)  # once
    with pytest.raises(InvalidVerificationLink):
        verify_email(token=token[:-2] + "xx")


# -- the same time -----------------------------------------------------------------------------


def timings(
    call: Callable[[str], object], known: list[str], unknown: list[str]
) -> tuple[list[float], list[float]]:
    warm = min(20, len(known) // 4)
    for i in range(warm):
        call(known[i])
        call(unknown[i])
    a: list[float] = []
    b: list[float] = []
    for k, u in zip(known[warm:], unknown[warm:], strict=True):
        for address, into in ((k, a), (u, b)) if len(a) % 2 else ((u, b), (k, a)):
            start = time.perf_counter()
            call(address)
            into.append(time.perf_counter() - start)
    return a, b


def assert_indistinguishable(known: list[float], unknown: list[float]) -> None:
    mk, mu = statistics.median(known), statistics.median(unknown)
    assert abs(mk - mu) <= 0.25 * max(mk, mu), f"medians {mk * 1e3:.2f} ms vs {mu * 1e3:.2f} ms"
    slower = sum(1 for x in known for y in unknown if x > y) / (len(known) * len(unknown))
    assert 0.25 <= slower <= 0.75, f"a known address was slower {slower:.0%} of the time"


def test_reset_requests_take_the_same_time_for_known_and_unknown_addresses(
    session: Session, queued_jobs
) -> None:
    known = [new_email("k") for _ in range(SAMPLES + 20)]
    for email in known:
        create_account(email=email, password=PASSWORD)
    unknown = [new_email("u") for _ in range(SAMPLES + 20)]
    a, b = timings(lambda e: request_password_reset(email=e), known, unknown)
    assert len(a) == len(b) == SAMPLES
    assert_indistinguishable(a, b)


def test_sign_ups_take_the_same_time_for_known_and_unknown_addresses(
    session: Session, queued_jobs
) -> None:
    known = [new_email("k") for _ in range(SAMPLES + 20)]
    for email in known:
        create_account(email=email, password=PASSWORD)
    unknown = [new_email("u") for _ in range(SAMPLES + 20)]
    a, b = timings(lambda e: sign_up(email=e, password=PASSWORD), known, unknown)
    assert_indistinguishable(a, b)
