"""Customer accounts: sign-up, sign-in, sessions, password reset, order history."""

from __future__ import annotations

import hashlib
import threading
import time
import types
import uuid
from datetime import timedelta
from email.message import EmailMessage

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlmodel import Session, col, select

from core.config import load_settings
from core.errors import ConfigError, InvalidInput
from core.mail import MailError, list_outbox, read_outbox_message
from core.models import (
    AuditEvent,
    Customer,
    CustomerSession,
    OrderStatus,
    RateLimitCounter,
)
from core.models.base import utcnow
from core.services import accounts, passwords, ratelimit
from core.services.accounts import (
    InvalidCredentials,
    InvalidResetLink,
    create_account,
    customer_for_token,
    order_history,
    request_password_reset,
    reset_password,
    sign_in,
    sign_out,
)
from core.services.notifications import order_access_token
from core.services.ratelimit import RateLimited
from tests.factories import fresh, make_order, make_product

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple grape violin 42"


@pytest.fixture(autouse=True)
def mail_like_a_worker(account_mail):
    """The reset e-mail is queued; here the queue runs it at once (tasks/jobs.py)."""


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    """Cheap argon2id parameters for the suite (production keeps the recommended ones,
    proven below), and a rate-limit clock that stays in one window for the whole test."""
    monkeypatch.setattr(test_settings, "password_hashing", "fast")
    frozen = time.time()
    monkeypatch.setattr(
        ratelimit, "time", types.SimpleNamespace(time=lambda: frozen, monotonic=time.monotonic)
    )


def new_email(tag: str = "ann") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def mails_to(outbox_dir, address: str) -> list[EmailMessage]:
    return [read_outbox_message(i.path) for i in list_outbox(outbox_dir) if i.to == address]


def body(message: EmailMessage) -> str:
    return "\n".join(
        part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
    )


def reset_token_from(message: EmailMessage) -> str:
    text_part = message.get_body(preferencelist=("plain",))
    assert text_part is not None
    line = next(w for w in text_part.get_content().split() if "/reset-password?token=" in w)
    return line.split("token=", 1)[1]


def counts(session: Session) -> dict[str, int]:
    fresh(session)
    return {
        table: session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
        for table in ("customers", "customer_sessions", "audit_events", "rate_limit_counters")
    }


# -- sign-up ------------------------------------------------------------------------------


def test_sign_up_creates_an_account_and_signs_in(session: Session) -> None:
    result = create_account(
        email="  Ann.Lee@Example.COM ",
        password=PASSWORD,
        display_name=" Ann ",
        ip="203.0.113.5",
        user_agent="Firefox",
    )
    assert result.email == "ann.lee@example.com"
    assert result.display_name == "Ann"
    assert len(result.token) >= 40
    assert result.token not in repr(result)

    info = customer_for_token(token=result.token)
    assert info is not None
    assert (info.id, info.email, info.display_name, info.verified) == (
        result.customer_id,
        "ann.lee@example.com",
        "Ann",
        False,
    )
    customer = session.get(Customer, result.customer_id)
    assert customer is not None and customer.password_hash is not None
    assert customer.password_hash.startswith("$argon2id$")
    assert PASSWORD not in customer.password_hash
    row = session.exec(select(CustomerSession)).one()
    assert row.token_hash == hashlib.sha256(result.token.encode()).digest()
    assert (row.ip, row.user_agent) == ("203.0.113.5", "Firefox")
    assert row.expires_at - row.created_at == timedelta(days=30)
    audit = session.exec(select(AuditEvent)).one()
    assert (audit.action, audit.actor_id, audit.ip) == (
        "customer.signed_up",
        str(result.customer_id),
        "203.0.113.5",
    )


def test_passwords_and_tokens_are_never_stored_in_plain_text(session: Session, engine) -> None:
    email = new_email()
    first = create_account(email=email, password=PASSWORD, ip="203.0.113.5")
    with pytest.raises(InvalidCredentials):
        sign_in(email=email, password="wrong password 123", ip="203.0.113.5")
    second = sign_in(email=email, password=PASSWORD, ip="203.0.113.5")
    with engine.connect() as conn:
        dump = " ".join(
            repr(tuple(row))
            for table in (
                "customers",
                "customer_sessions",
                "audit_events",
                "rate_limit_counters",
            )
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    for secret in (PASSWORD, "wrong password 123", first.token, second.token):
        assert secret not in dump


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"email": "not-an-address"}, "email", "e-mail"),
        ({"email": ""}, "email", "e-mail"),
        ({"password": "12345678901"}, "password", "at least 12"),
        ({"password": "password1234"}, "password", "too easy to guess"),
        ({"password": "qwertyuiop123"}, "password", "too easy to guess"),
        ({"password": "aaaaaaaaaaaaaaaa"}, "password", "too easy to guess"),
        (
            {"email": "margaret.hamilton@example.com", "password": "margaret.hamilton1"},
            "password",
            "too easy to guess",
        ),
        ({"password": "x" * 257}, "password", "at most 256"),
        ({"password": ""}, "password", "choose a password"),
        ({"password": None}, "password", "choose a password"),
        (
            {"email": "averylongname@example.com", "password": "averylongname@example.com"},
            "password",
            "e-mail",
        ),
        ({"email": "averylongname@example.com", "password": "AveryLongName"}, "password", "e-mail"),
        ({"display_name": "Ann\nAdmin"}, "display_name", "one line"),
        ({"display_name": "A" * 121}, "display_name", "at most 120"),
    ],
)
def test_sign_up_refuses_bad_input_and_writes_nothing(
    session: Session, kwargs, field, words
) -> None:
    args = {"email": new_email(), "password": PASSWORD, "display_name": "Ann", "ip": "203.0.113.5"}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as caught:
        create_account(**args)
    assert caught.value.data["field"] == field
    assert words in caught.value.message
    assert "x" * 20 not in caught.value.message  # the password is never echoed
    assert counts(session) == {
        "customers": 0,
        "customer_sessions": 0,
        "audit_events": 0,
        "rate_limit_counters": 0,
    }


def test_password_length_bounds_are_inclusive(session: Session) -> None:
    create_account(email=new_email(), password="Lx9#vQ2@mT7!")  # 12 characters
    create_account(email=new_email(), password="staple grape violin " * 12 + "pqrs7890w2x")
    assert counts(session)["customers"] == 2


def test_the_password_policy_is_checked_offline_and_never_echoes(monkeypatch) -> None:
    """12 characters at least, and not a common password or an easy pattern (zxcvbn's
    own lists, in the package: no network)."""
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the password policy must not use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for weak in ("iloveyou1234", "1q2w3e4r5t6y", "abcdefghijkl"):
        with pytest.raises(InvalidInput) as caught:
            passwords.check_password_policy(weak, "someone@example.com")
        assert weak not in caught.value.message
    assert passwords.check_password_policy(PASSWORD, "someone@example.com") == PASSWORD


def test_an_address_signs_up_once(session: Session) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    before = counts(session)
    with pytest.raises(InvalidInput) as caught:
        create_account(email=email.upper(), password="another password 1")
    assert caught.value.data == {"field": "email"}
    assert "already exists" in caught.value.message
    assert counts(session) == before


def test_simultaneous_sign_ups_with_one_address_make_one_account(session: Session) -> None:
    email = new_email()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            create_account(email=email, password=PASSWORD)
            outcomes.append("ok")
        except InvalidInput as exc:
            outcomes.append(exc.data["field"])

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["email", "email", "email", "ok"]
    assert counts(session)["customers"] == 1


def test_sign_ups_are_rate_limited_per_address(session: Session) -> None:
    for _ in range(20):
        create_account(email=new_email(), password=PASSWORD, ip="198.51.100.9")
    with pytest.raises(RateLimited):
        create_account(email=new_email(), password=PASSWORD, ip="198.51.100.9")
    create_account(email=new_email(), password=PASSWORD, ip="198.51.100.10")
    assert counts(session)["customers"] == 21


# -- sign-in ------------------------------------------------------------------------------


def test_sign_in_opens_a_new_session(session: Session) -> None:
    email = new_email()
    up = create_account(email=email, password=PASSWORD, display_name="Ann")
    result = sign_in(email=email.upper(), password=PASSWORD, ip="203.0.113.7", user_agent="Edge")
    assert (result.customer_id, result.email, result.display_name) == (up.customer_id, email, "Ann")
    assert result.token != up.token
    assert customer_for_token(token=result.token) is not None
    assert customer_for_token(token=up.token) is not None  # other sessions stay
    actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["customer.signed_up", "customer.signed_in"]


def test_unknown_address_and_wrong_password_get_the_same_answer(
    session: Session, monkeypatch
) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self, stored, password):
        verified.append(stored)
        return real_verify(self, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    with pytest.raises(InvalidCredentials) as wrong:
        sign_in(email=email, password="not the password")
    with pytest.raises(InvalidCredentials) as unknown:
        sign_in(email=new_email("nobody"), password="not the password")
    assert wrong.value.message == unknown.value.message
    assert wrong.value.http_status == unknown.value.http_status == 401
    assert wrong.value.to_dict() == unknown.value.to_dict()
    # the unknown address still cost a password check (against a dummy hash)
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)
    assert counts(session)["customer_sessions"] == 1  # only sign-up's
    failed = session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.sign_in_failed")
    ).all()
    assert len(failed) == 1


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not an address", PASSWORD, "email"),
        ("a@example.com", "", "password"),
        ("a@example.com", None, "password"),
    ],
)
def test_sign_in_refuses_bad_input_and_writes_nothing(
    session: Session, email, password, field
) -> None:
    with pytest.raises(InvalidInput) as caught:
        sign_in(email=email, password=password, ip="203.0.113.5")
    assert caught.value.data["field"] == field
    assert sum(counts(session).values()) == 0


def test_failures_per_email_and_address_are_refused_after_ten(session: Session) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    for n in range(10):
        with pytest.raises(InvalidCredentials):
            sign_in(email=email, password=f"guess number {n}", ip="203.0.113.7")
    with pytest.raises(RateLimited) as caught:
        sign_in(email=email, password=PASSWORD, ip="203.0.113.7")  # even the right one
    assert caught.value.http_status == 429
    assert caught.value.message.startswith("Too many attempts; try again in ")
    assert 0 < caught.value.retry_after <= 900
    # the owner, from their own address, is not locked out by that
    assert sign_in(email=email, password=PASSWORD, ip="198.51.100.4").email == email


def test_nobody_can_lock_a_known_email_out(session: Session, monkeypatch) -> None:
    """Failures from many addresses slow sign-in for that e-mail down; they never refuse
    the right password from a new address."""
    waits: list[float] = []
    monkeypatch.setattr(accounts, "slow_down", waits.append)
    email = new_email()
    create_account(email=email, password=PASSWORD)
    for n in range(40):
        with pytest.raises(InvalidCredentials):
            sign_in(email=email, password=f"guess number {n}", ip=f"203.0.113.{n}")
    assert waits and waits == sorted(waits) and 0 < waits[-1] <= accounts.SLOW_DOWN_MAX
    assert len(waits) == 40 - accounts.SIGN_IN_LIMITS["email"][1]
    assert sign_in(email=email, password=PASSWORD, ip="198.51.100.4").email == email
    assert len(waits) == 41 - accounts.SIGN_IN_LIMITS["email"][1]  # slowed, not refused


def test_unknown_emails_are_slowed_down_like_known_ones(session: Session, monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(accounts, "slow_down", waits.append)
    email = new_email()
    for n in range(12):
        with pytest.raises(InvalidCredentials):
            sign_in(email=email, password=f"guess number {n}", ip=f"203.0.113.{n}")
    assert len(waits) == 12 - accounts.SIGN_IN_LIMITS["email"][1]


def test_sign_in_is_rate_limited_per_client_address(session: Session) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    for n in range(30):
        with pytest.raises(InvalidCredentials):
            sign_in(email=new_email(f"probe{n}"), password="whatever 123", ip="192.0.2.1")
    with pytest.raises(RateLimited):
        sign_in(email=email, password=PASSWORD, ip="192.0.2.1")
    assert sign_in(email=email, password=PASSWORD, ip="192.0.2.2").email == email


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(
    session: Session, test_settings, monkeypatch
) -> None:
    email = new_email()
    up = create_account(email=email, password=PASSWORD)
    old = session.get(Customer, up.customer_id).password_hash
    assert "m=1024,t=1,p=1" in old
    monkeypatch.setattr(test_settings, "password_hashing", "recommended")
    sign_in(email=email, password=PASSWORD)
    new = fresh(session).get(Customer, up.customer_id).password_hash
    assert new.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert sign_in(email=email, password=PASSWORD).customer_id == up.customer_id
    rehashed = (
        fresh(session)
        .exec(
            select(AuditEvent)
            .where(AuditEvent.action == "customer.signed_in")
            .order_by(col(AuditEvent.id))
        )
        .all()
    )
    assert [e.data for e in rehashed] == [{"rehashed": True}, {}]


def test_production_uses_the_librarys_recommended_parameters() -> None:
    assert load_settings().password_hashing == "recommended"
    recommended = passwords._hasher_for("recommended")
    default = PasswordHasher()
    assert (recommended.time_cost, recommended.memory_cost, recommended.parallelism) == (
        default.time_cost,
        default.memory_cost,
        default.parallelism,
    )
    assert recommended.type == default.type
    with pytest.raises(ConfigError) as caught:
        load_settings(KEYSHOP_ENV="production", KEYSHOP_PASSWORD_HASHING="fast")
    assert caught.value.setting == "KEYSHOP_PASSWORD_HASHING"


# -- sessions -------------------------------------------------------------------------------


def test_sign_out_ends_the_session(session: Session) -> None:
    up = create_account(email=new_email(), password=PASSWORD)
    other = sign_in(email=up.email, password=PASSWORD)
    sign_out(token=up.token)
    assert customer_for_token(token=up.token) is None
    assert customer_for_token(token=other.token) is not None
    sign_out(token=up.token)  # again: nothing to do
    sign_out(token="not a token")
    sign_out(token="")
    actions = [e.action for e in fresh(session).exec(select(AuditEvent))]
    assert actions.count("customer.signed_out") == 1


@pytest.mark.parametrize(
    "token",
    [
        "",
        "short",
        "x" * 43 + "!",
        "a" * 500,
        None,
        12345,
        "ü" * 43,
        "abc def ghi jkl mno pqr stu vwx",
    ],
)
def test_malformed_tokens_sign_nobody_in(session: Session, token) -> None:
    create_account(email=new_email(), password=PASSWORD)
    assert customer_for_token(token=token) is None


def test_unknown_expired_and_revoked_tokens_sign_nobody_in(session: Session) -> None:
    up = create_account(email=new_email(), password=PASSWORD)
    assert customer_for_token(token="A" * 43) is None
    row = session.exec(select(CustomerSession)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.commit()
    assert customer_for_token(token=up.token) is None
    row.expires_at = utcnow() + timedelta(days=1)
    row.revoked_at = utcnow()
    session.add(row)
    session.commit()
    assert customer_for_token(token=up.token) is None


def test_use_slides_the_session_at_most_once_a_minute(session: Session) -> None:
    up = create_account(email=new_email(), password=PASSWORD)
    row = session.exec(select(CustomerSession)).one()
    long_ago = utcnow() - timedelta(days=20)
    row.last_seen_at, row.expires_at = long_ago, long_ago + timedelta(days=30)
    session.add(row)
    session.commit()

    assert customer_for_token(token=up.token) is not None
    slid = fresh(session).exec(select(CustomerSession)).one()
    assert utcnow() - slid.last_seen_at < timedelta(seconds=30)
    assert slid.expires_at - slid.last_seen_at == timedelta(days=30)

    assert customer_for_token(token=up.token) is not None
    again = fresh(session).exec(select(CustomerSession)).one()
    assert again.last_seen_at == slid.last_seen_at  # within the minute: no write


# -- password reset -------------------------------------------------------------------------


def test_reset_link_is_mailed_only_when_the_account_exists(session: Session, var_dir) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    nobody = new_email("nobody")
    assert request_password_reset(email=nobody, ip="203.0.113.5") is None
    assert request_password_reset(email=email.upper(), ip="203.0.113.5") is None
    assert mails_to(var_dir / "outbox", nobody) == []
    [message] = mails_to(var_dir / "outbox", email)
    content = body(message)
    assert "http://127.0.0.1:3000/reset-password?token=" in content
    assert PASSWORD not in content
    assert "password" in str(message["Subject"]).lower()
    events = session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.password_reset_requested")
    ).all()
    assert [(e.ip, e.data) for e in events] == [("203.0.113.5", {"sent": True})]


def test_reset_request_refuses_a_non_address_and_writes_nothing(session: Session) -> None:
    with pytest.raises(InvalidInput):
        request_password_reset(email="nope", ip="203.0.113.5")
    assert sum(counts(session).values()) == 0


def test_reset_requests_are_rate_limited_whether_or_not_the_account_exists(
    session: Session,
) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    for address in (email, new_email("nobody")):
        for _ in range(5):
            request_password_reset(email=address)
        with pytest.raises(RateLimited):
            request_password_reset(email=address)
    # per client address: 20 pass, the 21st is refused
    for _ in range(20):
        request_password_reset(email=new_email("x"), ip="192.0.2.50")
    with pytest.raises(RateLimited):
        request_password_reset(email=new_email("x"), ip="192.0.2.50")


def test_the_reset_request_only_queues_the_mail(session: Session, monkeypatch) -> None:
    """The request does the same for every address: it queues a job, and a mail failure
    is the job's (retried by the queue), never the caller's."""
    from core import jobs
    from core.services.signup import send_account_email

    jobs.set_dispatcher(None)  # keep the job instead of running it
    email = new_email()
    create_account(email=email, password=PASSWORD)

    class Broken:
        def send(self, message):
            raise MailError("relay down", transient=True)

    monkeypatch.setattr(accounts, "get_mailer", lambda: Broken())
    assert request_password_reset(email=email) is None
    assert request_password_reset(email=new_email("nobody")) is None
    [(name, args, kwargs), _other] = jobs.pending
    assert name == "send_account_email" and kwargs == {
        "kind": "password-reset",
        "email": email,
        "ip": None,
        "language": "en",  # the page's language (core.i18n), for the e-mail
    }
    with pytest.raises(MailError):  # on the worker: retried
        send_account_email(*args, **kwargs)
    assert not session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.password_reset_requested")
    ).all()


def _reset_token(var_dir, email: str) -> str:
    request_password_reset(email=email)
    return reset_token_from(mails_to(var_dir / "outbox", email)[0])


def test_reset_sets_the_password_revokes_sessions_verifies_and_signs_in(
    session: Session, var_dir
) -> None:
    email = new_email()
    up = create_account(email=email, password=PASSWORD)
    other = sign_in(email=email, password=PASSWORD)
    token = _reset_token(var_dir, email)

    result = reset_password(
        token=token, new_password=NEW_PASSWORD, ip="203.0.113.8", user_agent="Safari"
    )
    assert (result.customer_id, result.email) == (up.customer_id, email)
    assert customer_for_token(token=up.token) is None
    assert customer_for_token(token=other.token) is None
    info = customer_for_token(token=result.token)
    assert info is not None and info.verified
    with pytest.raises(InvalidCredentials):
        sign_in(email=email, password=PASSWORD)
    assert sign_in(email=email, password=NEW_PASSWORD).customer_id == up.customer_id
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.password_reset")
    ).one()
    assert (event.ip, event.data["sessions_revoked"]) == ("203.0.113.8", 2)
    customer = fresh(session).get(Customer, up.customer_id)
    assert NEW_PASSWORD not in customer.password_hash


def test_a_reset_link_works_once(session: Session, var_dir) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    token = _reset_token(var_dir, email)
    reset_password(token=token, new_password=NEW_PASSWORD)
    with pytest.raises(InvalidResetLink) as caught:
        reset_password(token=token, new_password="a third password!")
    assert "already used" in caught.value.message
    assert sign_in(email=email, password=NEW_PASSWORD).email == email


def test_two_requests_racing_with_one_link_change_the_password_once(
    session: Session, var_dir
) -> None:
    email = new_email()
    create_account(email=email, password=PASSWORD)
    token = _reset_token(var_dir, email)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(password: str) -> None:
        barrier.wait()
        try:
            reset_password(token=token, new_password=password)
            outcomes.append(password)
        except InvalidResetLink:
            outcomes.append("used")

    threads = [
        threading.Thread(target=attempt, args=(p,))
        for p in ("first password 1", "second password 2")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("used") == 1
    [winner] = [o for o in outcomes if o != "used"]
    assert sign_in(email=email, password=winner).email == email


def test_tampered_expired_and_foreign_tokens_are_refused(session: Session, var_dir) -> None:
    email = new_email()
    up = create_account(email=email, password=PASSWORD)
    token = _reset_token(var_dir, email)
    payload, expires, mac = token.split(".")
    tampered = [
        f"{payload}.{int(expires) + 3600}.{mac}",  # longer life
        f"{payload}.{expires}.{mac[:-2]}AA",  # forged signature
        "garbage",
        "",
        order_access_token("KS-AAAA-BBBB"),  # a token for another purpose
        "x" * 5000,
    ]
    for bad in tampered:
        with pytest.raises(InvalidResetLink) as caught:
            reset_password(token=bad, new_password=NEW_PASSWORD)
        assert caught.value.message == "This password reset link is not valid."
    customer = session.get(Customer, up.customer_id)
    expired = accounts.reset_link(
        up.customer_id, customer.password_hash, now=time.time() - 2 * 3600
    )
    with pytest.raises(InvalidResetLink) as caught:
        reset_password(token=expired.split("token=", 1)[1], new_password=NEW_PASSWORD)
    assert "expired" in caught.value.message
    # nothing changed: the old password works, the session lives, the link still works
    assert customer_for_token(token=up.token) is not None
    assert sign_in(email=email, password=PASSWORD).email == email
    assert reset_password(token=token, new_password=NEW_PASSWORD).email == email


def test_a_refused_new_password_changes_nothing(session: Session, var_dir) -> None:
    email = new_email()
    up = create_account(email=email, password=PASSWORD)
    token = _reset_token(var_dir, email)
    before = counts(session)
    with pytest.raises(InvalidInput) as caught:
        reset_password(token=token, new_password="short")
    assert caught.value.data == {"field": "password"}
    assert counts(session) == before
    assert customer_for_token(token=up.token) is not None
    assert fresh(session).get(Customer, up.customer_id).verified_at is None
    assert reset_password(token=token, new_password=NEW_PASSWORD).customer_id == up.customer_id


# -- order history ----------------------------------------------------------------------------


def test_order_history_lists_the_accounts_orders_newest_first(session: Session) -> None:
    ann = create_account(email=new_email("ann"), password=PASSWORD)
    bob = create_account(email=new_email("bob"), password=PASSWORD)
    game, dlc = make_product(session, price_minor=1000), make_product(session, price_minor=250)
    now = utcnow()
    first = make_order(
        session,
        [(game, 1)],
        email=ann.email,
        customer_id=ann.customer_id,
        status=OrderStatus.FULFILLED,
        created_at=now - timedelta(days=2),
    )
    second = make_order(
        session,
        [(game, 2), (dlc, 3)],
        email=ann.email,
        customer_id=ann.customer_id,
        status=OrderStatus.PAID,
        fulfilment_attempts=1,
        created_at=now - timedelta(days=1),
    )
    third = make_order(
        session,
        [(dlc, 1)],
        email=ann.email,
        customer_id=ann.customer_id,
        status=OrderStatus.PENDING_PAYMENT,
        created_at=now,
    )
    make_order(session, [(game, 1)], email=bob.email, customer_id=bob.customer_id)

    history = order_history(customer_id=ann.customer_id)
    assert [o.number for o in history] == [third.number, second.number, first.number]
    assert [
        (o.status, o.status_label, o.item_count, o.total_minor, o.currency) for o in history
    ] == [
        ("pending_payment", "Waiting for payment", 1, 250, "EUR"),
        ("paid", "Delivering your keys", 5, 2750, "EUR"),
        ("fulfilled", "Delivered", 1, 1000, "EUR"),
    ]
    assert [o.number for o in order_history(customer_id=ann.customer_id, limit=2)] == [
        third.number,
        second.number,
    ]


def test_a_session_of_one_customer_never_lists_anothers_orders(session: Session) -> None:
    ann = create_account(email=new_email("ann"), password=PASSWORD)
    bob = create_account(email=new_email("bob"), password=PASSWORD)
    game = make_product(session)
    anns = make_order(session, [(game, 1)], email=ann.email, customer_id=ann.customer_id)
    bobs = make_order(session, [(game, 1)], email=bob.email, customer_id=bob.customer_id)
    as_bob = customer_for_token(token=bob.token)
    assert as_bob is not None and as_bob.id == bob.customer_id
    assert [o.number for o in order_history(customer_id=as_bob.id)] == [bobs.number]
    assert anns.number not in [o.number for o in order_history(customer_id=as_bob.id)]


def test_guest_orders_join_the_account_only_once_its_email_is_verified(
    session: Session, var_dir
) -> None:
    email = new_email("victim")
    game = make_product(session)
    guest = make_order(session, [(game, 1)], email=email)
    someone_else = make_order(session, [(game, 1)], email=new_email("other"))

    # someone signs up with the address before its owner: sees nothing
    squatter = create_account(email=email, password=PASSWORD)
    assert order_history(customer_id=squatter.customer_id) == []
    assert sign_in(email=email, password=PASSWORD).customer_id == squatter.customer_id
    assert order_history(customer_id=squatter.customer_id) == []

    # the address's owner follows a reset link: the address is proven, the order attached
    owner = reset_password(token=_reset_token(var_dir, email), new_password=NEW_PASSWORD)
    assert [o.number for o in order_history(customer_id=owner.customer_id)] == [guest.number]
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "customer.password_reset")
    ).one()
    assert event.data["guest_orders_attached"] == 1

    # a later guest order with the verified address joins at the next sign-in
    later = make_order(session, [(game, 1)], email=email)
    sign_in(email=email, password=NEW_PASSWORD)
    numbers = [o.number for o in order_history(customer_id=owner.customer_id)]
    assert sorted(numbers) == sorted([guest.number, later.number])
    assert someone_else.number not in numbers


@pytest.mark.parametrize("customer_id", ["1", None, True, 1.5])
def test_order_history_refuses_a_bad_customer_id(customer_id) -> None:
    with pytest.raises(InvalidInput):
        order_history(customer_id=customer_id)


def test_rate_limit_rows_do_not_hold_addresses_longer_than_a_day(session: Session) -> None:
    """The counters the account functions write are purged like any other."""
    create_account(email=new_email(), password=PASSWORD, ip="203.0.113.5")
    assert counts(session)["rate_limit_counters"] == 1
    ratelimit.purge_old_counters(now=time.time() + 2 * 86_400)
    assert fresh(session).exec(select(RateLimitCounter)).all() == []
