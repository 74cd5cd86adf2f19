"""E-mail transport: two ways to send a message, and the outbox the console reads.

- :class:`SmtpMailer` speaks SMTP to any relay (SES, SendGrid, Postmark, a local
  Postfix) from ``SMTP_URL``: ``smtp://`` plain (port 25), ``smtp+starttls://`` upgraded
  with STARTTLS (port 587), ``smtps://`` implicit TLS (port 465). A user and password in
  the URL (percent-encoded) are used for AUTH. TLS certificates are verified.
- :class:`OutboxMailer` is the embedded default: each message becomes one ``.eml`` file
  in ``var/outbox/``, written atomically, named so that names sort by time. The operator
  console lists them with :func:`list_outbox`.

Both check every recipient before anything leaves the process, add ``Message-ID`` and
``Date`` when missing, and return the Message-ID. Failures raise :class:`MailError`
(``transient`` tells a task whether retrying can help); its message names the server,
the SMTP status and the recipients, never the message body.

What a message says is built in :mod:`core.mail.notices`. A portal link in a message may
carry an access token: the outbox folder is created with mode 0700 and its files with
mode 0600 for that reason.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from core.config import Settings, get_settings, reveal
from core.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 15.0
_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_RECIPIENT_HEADERS = ("To", "Cc", "Bcc")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BARE_LF = re.compile(rb"(?<!\r)\n")


class MailError(DomainError):
    """A message could not be handed to the mail server (or the outbox).

    ``transient`` is True when the same message may well go through later (server down,
    timeout, a 4xx reply) and False when retrying cannot help (a 5xx reply, bad
    credentials, a refused recipient).
    """

    code = "mail_error"
    http_status = 502

    def __init__(self, message: str, *, transient: bool, **data: object) -> None:
        super().__init__(message, transient=transient, **data)
        self.transient = transient


class InvalidRecipient(MailError):
    """A recipient address is malformed, or the server refused it."""

    code = "invalid_recipient"
    http_status = 422

    def __init__(self, message: str, *, transient: bool = False, **data: object) -> None:
        super().__init__(message, transient=transient, **data)


@dataclass(frozen=True)
class RawMessage:
    """A message already serialised (:func:`core.mail.notices.compose_raw`), with its
    envelope: what a batch of order e-mails hands to :meth:`Mailer.send_raw`, skipping
    the standard library's modern-policy parsing and folding of every header."""

    sender: str  # the envelope sender (a bare address)
    recipients: tuple[str, ...]
    message_id: str
    data: bytes

    def __repr__(self) -> str:  # never the body (it holds a portal link)
        return f"RawMessage({self.message_id}, to {len(self.recipients)} recipient(s))"


@runtime_checkable
class Mailer(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Send ``message``; return its Message-ID. Raises :class:`MailError`."""
        ...

    def send_raw(self, message: RawMessage) -> str:
        """Send a serialised message as it is; return its Message-ID. Raises
        :class:`MailError`."""
        ...


# -- addresses and headers ---------------------------------------------------------------


def check_address(address: str) -> str:
    """``address`` as a bare ``local@domain`` if it is one; InvalidRecipient otherwise.

    Deliberately strict: one address, no display name, ASCII local part, a domain with a
    dot (or ``localhost``). Customer addresses are normalised long before this point.
    """
    text = address.strip() if isinstance(address, str) else ""
    shown = _CONTROL.sub("?", text)[:120]
    if not text or _CONTROL.search(text):
        raise InvalidRecipient(f"{shown!r} is not an e-mail address", address=shown)
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, email_errors.MessageError):
        raise InvalidRecipient(f"{shown!r} is not an e-mail address", address=shown) from None
    domain = parsed.domain
    if (
        not parsed.username
        or not domain
        or not (
            ("." in domain and not domain.startswith(".") and not domain.endswith("."))
            or domain == "localhost"
        )
    ):
        raise InvalidRecipient(f"{shown!r} is not an e-mail address", address=shown)
    return parsed.addr_spec


def recipients_of(message: EmailMessage) -> list[str]:
    """Every envelope recipient (To, Cc, Bcc), checked; InvalidRecipient if any is bad or
    there is none."""
    found: list[str] = []
    for header in _RECIPIENT_HEADERS:
        for value in message.get_all(header, []):
            if getattr(value, "defects", None):
                raise InvalidRecipient(
                    f"the {header} header holds a malformed address", header=header
                )
            for addr in getattr(value, "addresses", ()):
                found.append(check_address(addr.addr_spec))
    if not found:
        raise InvalidRecipient("the message has no recipient")
    return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=64)
def sender_domain(sender: str) -> str:
    try:
        msg = EmailMessage()
        msg["From"] = sender
        domain = msg["From"].addresses[0].domain
    except (ValueError, IndexError, email_errors.MessageError):
        domain = ""
    return domain or "keyshop.localhost"


def _prepare(message: EmailMessage, default_sender: str) -> tuple[str, list[str], str]:
    """Fill in From, Message-ID and Date; return (envelope sender, recipients, id)."""
    recipients = recipients_of(message)
    if message["From"] is None:
        message["From"] = default_sender
    from_addresses = getattr(message["From"], "addresses", ())
    if not from_addresses:
        raise MailError("the message has no valid From address", transient=False)
    sender = from_addresses[0].addr_spec
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=sender_domain(str(message["From"])))
    if message["Date"] is None:
        message["Date"] = format_datetime(datetime.now(UTC))
    return sender, recipients, str(message["Message-ID"])


# -- SMTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never the password
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpTarget({self.scheme}://{user}{self.host}:{self.port})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidInput(
            "SMTP_URL must be smtp://[user:pass@]host[:port], smtp+starttls://… or smtps://…"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise InvalidInput("SMTP_URL has a bad port") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpTarget(scheme, parts.hostname, port, username, password)


class SmtpMailer:
    """Sends through an SMTP relay; one connection per message.

    ``ssl_context`` defaults to the system's verifying context; pass one that trusts a
    private CA if the relay uses one.
    """

    def __init__(
        self,
        url: str,
        *,
        mail_from: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.target = parse_smtp_url(url)
        self.mail_from = mail_from or get_settings().mail_from
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        # socket.getfqdn() (smtplib's default) can stall on a DNS lookup.
        self.local_hostname = local_hostname or socket.gethostname() or "localhost"

    def __repr__(self) -> str:
        return f"SmtpMailer({self.target!r})"

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        if t.scheme == "smtps":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                t.host,
                t.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        else:
            conn = smtplib.SMTP(
                t.host, t.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        try:
            conn.ehlo()
            if t.scheme == "smtp+starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if t.username is not None:
                _login(conn, t.username, t.password or "")
        except BaseException:
            _close(conn)
            raise
        return conn

    def send(self, message: EmailMessage) -> str:
        sender, recipients, message_id = _prepare(message, self.mail_from)
        return self._deliver(
            sender,
            recipients,
            message_id,
            lambda conn: conn.send_message(message, from_addr=sender, to_addrs=recipients),
        )

    def send_raw(self, message: RawMessage) -> str:
        recipients = [check_address(r) for r in message.recipients]
        return self._deliver(
            message.sender,
            recipients,
            message.message_id,
            # SMTP lines end in CRLF (the serialised message has bare LFs, as a file)
            lambda conn: conn.sendmail(
                message.sender, recipients, _BARE_LF.sub(b"\r\n", message.data)
            ),
        )

    def _deliver(
        self,
        sender: str,
        recipients: list[str],
        message_id: str,
        transmit: Callable[[smtplib.SMTP], dict[str, tuple[int, bytes]]],
    ) -> str:
        where = self.target.where
        try:
            conn = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"the SMTP server {where} refused the login for user {self.target.username!r} "
                f"({exc.smtp_code})",
                transient=False,
                server=where,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise MailError(
                f"the SMTP server {where} does not offer what SMTP_URL asks for (STARTTLS or AUTH)",
                transient=False,
                server=where,
            ) from None
        except ssl.SSLError as exc:
            raise MailError(
                f"TLS with the SMTP server {where} failed: {exc.reason or type(exc).__name__}",
                transient=False,
                server=where,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(
                where, exc.smtp_code, exc.smtp_error, "during the greeting"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(
                f"could not reach the SMTP server {where}: {_describe_os_error(exc)}",
                transient=True,
                server=where,
            ) from None
        try:
            refused = transmit(conn)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise InvalidRecipient(
                f"the SMTP server {where} refused every recipient: "
                + ", ".join(f"{addr} ({code})" for addr, (code, _) in exc.recipients.items()),
                transient=all(400 <= c < 500 for c in codes),
                server=where,
                recipients=list(exc.recipients),
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            raise MailError(
                f"the SMTP server {where} refused the sender {sender} ({exc.smtp_code})",
                transient=400 <= exc.smtp_code < 500,
                server=where,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(where, exc.smtp_code, exc.smtp_error, "for the message") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(
                f"the connection to the SMTP server {where} failed mid-message: "
                f"{_describe_os_error(exc)}",
                transient=True,
                server=where,
            ) from None
        finally:
            _close(conn)
        if refused:
            # Some recipients took it: raising would make a retry send it twice to them.
            log.warning(
                "SMTP server %s refused some recipients of %s: %s",
                where,
                message_id,
                ", ".join(f"{a} ({c})" for a, (c, _) in refused.items()),
            )
        return message_id


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    """One AUTH attempt with PLAIN (or LOGIN if that is all the server offers).

    smtplib's ``login()`` walks through every mechanism after a refusal, and servers that
    hang up after a failed attempt turn a clear 535 into a "disconnected" error.
    """
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("AUTH")
    offered = conn.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPNotSupportedError("AUTH PLAIN or LOGIN")
    conn.user, conn.password = username, password
    authobject = conn.auth_plain if mechanism == "PLAIN" else conn.auth_login
    conn.auth(mechanism, authobject)


def _close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def _reply_error(where: str, code: int, reply: bytes | str, context: str) -> MailError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    text = _CONTROL.sub(" ", text).strip()[:200]
    return MailError(
        f"the SMTP server {where} answered {code} {context}: {text}",
        transient=400 <= code < 500,
        server=where,
        smtp_code=code,
    )


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


# -- outbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxItem:
    path: Path
    to: str
    subject: str
    date: datetime


class OutboxMailer:
    """Writes each message to ``folder`` as ``<UTC time>-<random>.eml``, atomically."""

    def __init__(self, folder: Path | str, *, mail_from: str | None = None) -> None:
        self.folder = Path(folder)
        self.mail_from = mail_from or get_settings().mail_from

    def __repr__(self) -> str:
        return f"OutboxMailer({str(self.folder)!r})"

    def send(self, message: EmailMessage) -> str:
        _, _, message_id = _prepare(message, self.mail_from)
        self._write(message.as_bytes(policy=policy.default))
        return message_id

    def send_raw(self, message: RawMessage) -> str:
        for recipient in message.recipients:
            check_address(recipient)
        self._write(message.data)
        return message.message_id

    def _write(self, data: bytes) -> None:
        try:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            final = self.folder / f"{stamp}-{secrets.token_hex(4)}.eml"
            try:
                fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
            except FileNotFoundError:  # the first message (or someone removed the folder)
                self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise MailError(
                f"could not write to the outbox {self.folder}: {_describe_os_error(exc)}",
                transient=True,
            ) from None


def read_outbox_message(path: Path | str) -> EmailMessage:
    with open(path, "rb") as fh:
        msg = BytesParser(policy=policy.default).parse(fh)
    assert isinstance(msg, EmailMessage)
    return msg


def list_outbox(folder: Path | str, *, limit: int | None = None) -> list[OutboxItem]:
    """The ``.eml`` files in ``folder``, newest first (a missing folder is empty)."""
    base = Path(folder)
    try:
        names = sorted(
            (p.name for p in base.iterdir() if p.suffix == ".eml" and not p.name.startswith(".")),
            reverse=True,
        )
    except FileNotFoundError:
        return []
    items: list[OutboxItem] = []
    for name in names[:limit] if limit is not None else names:
        path = base / name
        try:
            with open(path, "rb") as fh:
                headers = BytesParser(policy=policy.default).parse(fh, headersonly=True)
            stat_time = path.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        when: datetime | None = None
        raw_date = headers.get("Date")
        if raw_date is not None:
            try:
                when = parsedate_to_datetime(str(raw_date))
            except (TypeError, ValueError):
                when = None
        items.append(
            OutboxItem(
                path=path,
                to=str(headers.get("To", "")),
                subject=str(headers.get("Subject", "")),
                date=when or datetime.fromtimestamp(stat_time, UTC),
            )
        )
    return items


# -- choosing ------------------------------------------------------------------------------


def get_mailer(settings: Settings | None = None) -> Mailer:
    """SMTP when ``SMTP_URL`` is set, the outbox folder otherwise."""
    s = settings or get_settings()
    if s.smtp_url:
        return SmtpMailer(reveal(s.smtp_url) or "", mail_from=s.mail_from)
    return OutboxMailer(s.outbox_dir, mail_from=s.mail_from)
