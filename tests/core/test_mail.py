"""E-mail: the notices, the outbox, and SMTP against a real server (aiosmtpd) on loopback."""

from __future__ import annotations

import datetime as dt
import html
import inspect
import ipaddress
import re
import socket
import ssl
import stat
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.config import Settings
from core.errors import InvalidInput
from core.mail import (
    NEVER_BY_MAIL,
    InvalidRecipient,
    Mailer,
    MailError,
    OutboxMailer,
    SmtpMailer,
    attention_notice,
    check_address,
    delivery_notice,
    get_mailer,
    list_outbox,
    order_message,
    preorder_notice,
    read_outbox_message,
    render,
)

FROM = "keyshop <shop@keyshop.test>"
PORTAL = "https://shop.example/portal/orders/KS-AB12-CD34?access=tok_123&x=<y>"
KEY_PATTERN = re.compile(r"\b[A-Z0-9]{5}(?:-[A-Z0-9]{5}){2,}\b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """An aiosmtpd handler that keeps every envelope; some recipients are refused."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if b"REJECT-ME" in (envelope.original_content or b""):
            return "554 5.7.1 message refused by policy"
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Collector]]:
    handler = Collector()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), server_hostname="localhost"
    )
    controller.start()
    yield controller, handler
    controller.stop()


def make_notice(**overrides: Any) -> EmailMessage:
    args: dict[str, Any] = {
        "order_number": "KS-AB12-CD34",
        "to": "buyer@example.com",
        "portal_url": PORTAL,
        "lines": [("Half-Life 3 (Steam, GLOBAL)", 2), ("Portal <3> & Friends", 1)],
        "mail_from": FROM,
    }
    args.update(overrides)
    return delivery_notice(**args)


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


# -- the notices -----------------------------------------------------------------------------


@pytest.mark.parametrize("builder", [delivery_notice, preorder_notice, attention_notice])
def test_notices_take_no_key_at_all(builder: Callable[..., EmailMessage]) -> None:
    params = set(inspect.signature(builder).parameters)
    assert not {p for p in params if re.search(r"key|code|secret|serial|image|blob", p)}
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY
        for p in inspect.signature(builder).parameters.values()
    )


def test_delivery_notice_links_to_the_portal_and_never_holds_a_key(test_settings: Settings) -> None:
    msg = make_notice()
    assert msg["Subject"] == "Your keys for order KS-AB12-CD34 are ready"
    assert msg["To"] == "buyer@example.com"
    assert msg["From"] == FROM
    assert msg["Message-ID"].endswith("@keyshop.test>")
    assert msg["Date"] is not None
    text, html = bodies(msg)
    assert PORTAL in text
    assert "KS-AB12-CD34" in text and "KS-AB12-CD34" in html
    assert "2 x Half-Life 3 (Steam, GLOBAL)" in text
    # HTML is escaped: the URL in the attribute, titles in the text.
    assert (
        'href="https://shop.example/portal/orders/KS-AB12-CD34?access=tok_123&amp;x=&lt;y&gt;"'
        in html
    )
    assert "Portal &lt;3&gt; &amp; Friends" in html
    assert "<3>" not in html
    assert "never send keys by e-mail" in text
    whole = msg.as_string()
    assert not KEY_PATTERN.search(whole)


def test_preorder_and_attention_notices(test_settings: Settings) -> None:
    pre = preorder_notice(
        order_number="KS-PRE1-0001",
        to="fan@example.com",
        portal_url="https://shop.example/portal",
        lines=[("Elden Ring 2", 1)],
        release_date=dt.date(2031, 2, 3),
        mail_from=FROM,
    )
    assert "KS-PRE1-0001" in pre["Subject"] and "release" in pre["Subject"]
    text, html = bodies(pre)
    assert "03 Feb 2031" in text and "https://shop.example/portal" in html

    att = attention_notice(
        order_number="KS-ATT1-0001",
        to="fan@example.com",
        portal_url="https://shop.example/portal",
        mail_from=FROM,
    )
    assert "KS-ATT1-0001" in att["Subject"] and "on it" in att["Subject"]
    text, _ = bodies(att)
    assert "follow up" in text and "https://shop.example/portal" in text
    for msg in (pre, att):
        assert not KEY_PATTERN.search(msg.as_string())


TEMPLATES = Path(__file__).resolve().parents[2] / "core" / "mail" / "templates"


@pytest.mark.parametrize(
    "template", sorted(p.name for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_"))
)
def test_plain_and_html_parts_come_from_one_template(template: str) -> None:
    """Every notice template renders both parts; each paragraph of the plain text is in the
    HTML (escaped there), so the two parts cannot drift apart."""
    hostile = "<b>&\"x'</b>"
    values = {
        "number": hostile,
        "shop": "keyshop",
        "portal_url": "https://shop.example/p?a=1&b=<2>",
        "link": "https://shop.example/reset?t=1&u=<2>",
        "public_url": "https://shop.example",
        "lines": [(hostile, 2)],
        "never_by_mail": NEVER_BY_MAIL,
        "release_date": "2031-02-03",
        "minutes": 30,
        "totals": [("Total", hostile), ("Includes VAT (19%, DE)", "€3.80")],
        "orders": [(hostile, "05 Dec 2026", "€23.80", "https://shop.example/o?t=<1>")],
        "title": hostile,
        "product_url": "https://shop.example/games/x?a=<1>",
        "unsubscribe_url": "https://shop.example/api/stock-alerts/unsubscribe?token=a&b=<2>",
    }
    subject, text, body = render(template, values)
    assert subject and "\n" not in subject
    assert "<b>" not in body  # every value escaped in the HTML part
    for paragraph in text.split("\n\n"):
        for line in paragraph.splitlines():
            words = line.strip().rstrip(":")
            assert html.escape(words, quote=False) in body.replace("&#34;", '"').replace(
                "&#39;", "'"
            ), (template, words)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"to": "not-an-address"}, InvalidRecipient),
        ({"to": "buyer@example.com\r\nBcc: spy@evil.test"}, InvalidRecipient),
        ({"to": "Joe <joe@example.com>"}, InvalidRecipient),
        ({"to": "a@b"}, InvalidRecipient),
        ({"order_number": "KS-1\r\nBcc: spy@evil.test"}, InvalidInput),
        ({"portal_url": "javascript:alert(1)"}, InvalidInput),
        ({"portal_url": "https://shop.example/a b"}, InvalidInput),
        ({"lines": [("Game", 0)]}, InvalidInput),
    ],
)
def test_notice_refuses_bad_input(
    test_settings: Settings, overrides: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make_notice(**overrides)


@pytest.mark.parametrize(
    "address", ["", "plain", "@example.com", "a@", "a b@example.com", "a@.example.com", "a@b..c"]
)
def test_check_address_refuses_malformed_addresses(address: str) -> None:
    with pytest.raises(InvalidRecipient):
        check_address(address)


def test_check_address_accepts_plain_addresses() -> None:
    assert check_address(" buyer+tag@mail.example.com ") == "buyer+tag@mail.example.com"
    assert check_address("ops@localhost") == "ops@localhost"


# -- the outbox ------------------------------------------------------------------------------


def test_outbox_writes_parseable_eml_files_newest_first(
    tmp_path: Path, test_settings: Settings
) -> None:
    folder = tmp_path / "outbox"
    mailer = OutboxMailer(folder, mail_from=FROM)
    assert isinstance(mailer, Mailer)
    ids = [mailer.send(make_notice(order_number=f"KS-0000-000{i}")) for i in range(3)]
    assert len(set(ids)) == 3

    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3  # no temporary files left behind
    assert all(re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{8}\.eml", f.name) for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    items = list_outbox(folder)
    assert [i.subject for i in items] == [
        f"Your keys for order KS-0000-000{i} are ready" for i in (2, 1, 0)
    ]
    assert all(i.to == "buyer@example.com" for i in items)
    assert items[0].date >= items[-1].date
    assert items[0].date.tzinfo is not None
    assert list_outbox(folder, limit=1) == items[:1]

    msg = read_outbox_message(items[0].path)
    assert msg["Message-ID"] == ids[2]
    text, _ = bodies(msg)
    assert PORTAL in text
    assert list_outbox(tmp_path / "missing") == []


def test_outbox_refuses_bad_recipients_without_writing(
    tmp_path: Path, test_settings: Settings
) -> None:
    msg = EmailMessage()
    msg["To"] = "not-an-address"
    msg["Subject"] = "hi"
    msg.set_content("body")
    with pytest.raises(InvalidRecipient):
        OutboxMailer(tmp_path, mail_from=FROM).send(msg)
    assert list(tmp_path.iterdir()) == []


def test_get_mailer_follows_smtp_url(test_settings: Settings) -> None:
    outbox = get_mailer(test_settings)
    assert isinstance(outbox, OutboxMailer) and outbox.folder == test_settings.outbox_dir
    smtp = get_mailer(
        test_settings.model_copy(update={"smtp_url": "smtps://u:p%40ss@mail.example:2465"})
    )
    assert isinstance(smtp, SmtpMailer)
    assert (smtp.target.scheme, smtp.target.host, smtp.target.port) == (
        "smtps",
        "mail.example",
        2465,
    )
    assert smtp.target.password == "p@ss"
    assert "p@ss" not in repr(smtp)


# -- SMTP against a real server ----------------------------------------------------------------


def test_smtp_delivers_the_notice(
    smtp_server: tuple[Controller, Collector], test_settings: Settings
) -> None:
    controller, handler = smtp_server
    msg = make_notice()
    message_id = SmtpMailer(f"smtp://127.0.0.1:{controller.port}", mail_from=FROM, timeout=5).send(
        msg
    )

    assert len(handler.envelopes) == 1
    env = handler.envelopes[0]
    assert env.mail_from == "shop@keyshop.test"
    assert env.rcpt_tos == ["buyer@example.com"]
    received = parse(env.original_content or b"")
    assert received["Message-ID"] == message_id
    assert received["Subject"] == "Your keys for order KS-AB12-CD34 are ready"
    text, _ = bodies(received)
    assert PORTAL in text


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_uses_the_credentials_from_the_url(test_settings: Settings) -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    def authenticator(
        server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append((mechanism, auth_data.login, auth_data.password))
        ok = auth_data.login == b"shop@relay" and auth_data.password == b"p@ss:w/rd"
        return AuthResult(success=ok, handled=False)

    handler = Collector()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="localhost",
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        base = f"127.0.0.1:{controller.port}"
        SmtpMailer(f"smtp://shop%40relay:p%40ss%3Aw%2Frd@{base}", mail_from=FROM, timeout=5).send(
            make_notice()
        )
        assert seen[-1][1:] == (b"shop@relay", b"p@ss:w/rd")
        assert len(handler.envelopes) == 1

        with pytest.raises(MailError) as info:
            SmtpMailer(f"smtp://shop%40relay:wrong-secret@{base}", mail_from=FROM, timeout=5).send(
                make_notice()
            )
        assert info.value.transient is False
        assert "wrong-secret" not in str(info.value)

        # Without credentials the server refuses the message.
        with pytest.raises(MailError):
            SmtpMailer(f"smtp://{base}", mail_from=FROM, timeout=5).send(make_notice())
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_smtp_over_tls(tmp_path: Path, test_settings: Settings, scheme: str) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    handler = Collector()
    tls: dict[str, Any] = (
        {"tls_context": server_ctx, "require_starttls": True}
        if scheme == "smtp+starttls"
        else {"ssl_context": server_ctx}
    )
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), server_hostname="localhost", **tls
    )
    controller.start()
    try:
        url = f"{scheme}://127.0.0.1:{controller.port}"
        SmtpMailer(url, mail_from=FROM, timeout=5, ssl_context=client_ctx).send(make_notice())
        assert len(handler.envelopes) == 1
        # The system trust store does not know this certificate: refused, not downgraded.
        with pytest.raises(MailError, match="TLS"):
            SmtpMailer(url, mail_from=FROM, timeout=5).send(make_notice())
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


def test_smtp_server_down_fails_fast_with_a_transient_error(test_settings: Settings) -> None:
    port = free_port()  # nothing listens there
    msg = make_notice()
    text, _ = bodies(msg)
    with pytest.raises(MailError) as info:
        SmtpMailer(f"smtp://127.0.0.1:{port}", mail_from=FROM, timeout=3).send(msg)
    assert info.value.transient is True
    assert f"127.0.0.1:{port}" in str(info.value)
    assert PORTAL not in str(info.value) and "Half-Life" not in str(info.value)
    assert text.splitlines()[2] not in str(info.value)


def test_smtp_rejection_of_the_message_names_no_body(
    smtp_server: tuple[Controller, Collector], test_settings: Settings
) -> None:
    controller, _ = smtp_server
    msg = make_notice(lines=[("REJECT-ME game", 1)])
    with pytest.raises(MailError) as info:
        SmtpMailer(f"smtp://127.0.0.1:{controller.port}", mail_from=FROM, timeout=5).send(msg)
    err = info.value
    assert err.transient is False and err.data["smtp_code"] == 554
    assert "REJECT-ME" not in str(err) and PORTAL not in str(err)
    assert "refused by policy" in str(err)


def test_smtp_bad_recipients(
    smtp_server: tuple[Controller, Collector], test_settings: Settings
) -> None:
    controller, handler = smtp_server
    mailer = SmtpMailer(f"smtp://127.0.0.1:{controller.port}", mail_from=FROM, timeout=5)

    # Malformed: refused before anything is sent.
    raw = EmailMessage()
    raw["To"] = "buyer@example.com, not-an-address"
    raw["Subject"] = "hello"
    raw.set_content("secret body text")
    with pytest.raises(InvalidRecipient) as info:
        mailer.send(raw)
    assert "secret body text" not in str(info.value)

    # Refused by the server: permanently (5xx) or for now (4xx).
    with pytest.raises(InvalidRecipient) as info:
        mailer.send(make_notice(to="nobody@example.com"))
    assert info.value.transient is False and "nobody@example.com" in str(info.value)
    with pytest.raises(InvalidRecipient) as info:
        mailer.send(make_notice(to="later@example.com"))
    assert info.value.transient is True

    # One refused, one accepted: delivered to the one (no retry that would send twice).
    both = make_notice()
    both.replace_header("To", "buyer@example.com, nobody@example.com")
    mailer.send(both)
    assert handler.envelopes[-1].rcpt_tos == ["buyer@example.com"]

    # Bcc recipients get the message but never see the header.
    bcc = make_notice()
    bcc["Bcc"] = "audit@example.com"
    mailer.send(bcc)
    assert handler.envelopes[-1].rcpt_tos == ["buyer@example.com", "audit@example.com"]
    assert b"audit@example.com" not in (handler.envelopes[-1].original_content or b"")
    assert len(handler.envelopes) == 2


def test_smtp_url_is_validated() -> None:
    with pytest.raises(InvalidInput):
        SmtpMailer("http://mail.example", mail_from=FROM)


# -- serialised at once: the order e-mails sent in batches (issue #20) ----------------------


@pytest.mark.parametrize(
    ("kind", "builder"),
    [("delivered", delivery_notice), ("waiting", preorder_notice), ("attention", attention_notice)],
)
def test_a_serialised_order_message_says_what_its_notice_says(
    kind: str, builder: Callable[..., EmailMessage]
) -> None:
    args: dict[str, Any] = {
        "order_number": "KS-AB12-CD34",
        "to": "buyer@example.com",
        "portal_url": PORTAL,
        "lines": [("Ünïcode Quest — Deluxe (Steam, GLOBAL)", 2), ("Portal <3> & Friends", 1)],
        "mail_from": "Schlüssel Laden <shop@keyshop.test>",
        "shop_name": "Schlüssel Laden",
    }
    raw = order_message(kind, **args)
    notice = builder(**args)
    received = parse(raw.data)
    for header in ("Subject", "From", "To"):
        assert str(received[header]) == str(notice[header]), header
    assert received["Message-ID"] == raw.message_id and received["Date"] is not None
    assert bodies(received) == bodies(notice)
    assert (raw.sender, raw.recipients) == ("shop@keyshop.test", ("buyer@example.com",))
    assert KEY_PATTERN.search(raw.data.decode()) is None
    assert "RawMessage(" in repr(raw) and "buyer" not in repr(raw) and PORTAL not in repr(raw)


def test_a_serialised_order_message_refuses_bad_input() -> None:
    good: dict[str, Any] = {
        "order_number": "KS-1",
        "to": "buyer@example.com",
        "portal_url": PORTAL,
        "lines": [("Game", 1)],
    }
    with pytest.raises(InvalidInput):
        order_message("delivered", **{**good, "portal_url": "javascript:alert(1)"})
    with pytest.raises(InvalidInput):
        order_message("delivered", **{**good, "order_number": "KS-1\r\nBcc: x@evil.test"})
    with pytest.raises(InvalidInput):
        order_message("surprise", **good)
    with pytest.raises(InvalidRecipient):
        order_message("delivered", **{**good, "to": "a@b.test, c@d.test"})


def test_serialised_messages_go_through_the_outbox_and_smtp(
    smtp_server: tuple[Controller, Collector], tmp_path: Path
) -> None:
    controller, handler = smtp_server
    raw = order_message(
        "delivered",
        order_number="KS-AB12-CD34",
        to="buyer@example.com",
        portal_url=PORTAL,
        lines=[("Game", 1)],
        mail_from=FROM,
    )
    outbox = OutboxMailer(tmp_path / "outbox", mail_from=FROM)
    assert outbox.send_raw(raw) == raw.message_id
    [item] = list_outbox(tmp_path / "outbox")
    assert item.path.read_bytes() == raw.data and item.to == "buyer@example.com"
    smtp = SmtpMailer(f"smtp://127.0.0.1:{controller.port}", mail_from=FROM, timeout=5)
    assert smtp.send_raw(raw) == raw.message_id
    [env] = handler.envelopes
    assert (env.mail_from, env.rcpt_tos) == ("shop@keyshop.test", ["buyer@example.com"])
    received = bodies(parse(env.original_content or b""))[0]
    assert received.replace("\r\n", "\n") == bodies(parse(raw.data))[0]
    refused = order_message(
        "delivered",
        order_number="KS-AB12-CD34",
        to="nobody@example.com",
        portal_url=PORTAL,
        lines=[("Game", 1)],
        mail_from=FROM,
    )
    with pytest.raises(InvalidRecipient) as caught:
        smtp.send_raw(refused)
    assert caught.value.transient is False and PORTAL not in str(caught.value)
