"""What keyshop's e-mails say: one Jinja2 template per notice, rendered twice.

Each template in ``templates/`` is written once against a small layout of macros
(``p``, ``link``, ``lines``, ``page``) and rendered with the HTML layout under
autoescaping (every value escaped, the link in its attribute too) and with the
plain-text layout without it, so the two parts of a message cannot say different things.
The subject is the template's ``subject`` variable.

The order notices (:func:`delivery_notice`, :func:`preorder_notice`,
:func:`attention_notice`) never contain a key (DESIGN §4 invariant 5): they take no key
argument at all and link to the key portal instead, where the owner reveals the key
behind a login and an audit event. Every value is checked before rendering: one line of
text, an http(s) link; a bad one raises :class:`~core.errors.InvalidInput`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from email import charset as _charset
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, formatdate, getaddresses, make_msgid
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from core import i18n
from core.config import get_settings
from core.errors import InvalidInput
from core.i18n import N_
from core.mail.transport import RawMessage, check_address, sender_domain

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The parts of a raw message: UTF-8, quoted-printable (the portal link stays readable).
_UTF8_QP = _charset.Charset("utf-8")
_UTF8_QP.header_encoding = _charset.QP
_UTF8_QP.body_encoding = _charset.QP
_LOADER = PackageLoader("core.mail", "templates")
# Two environments over the same templates: autoescaping on for HTML, off for text.
# Both translate through core.i18n (``_("... %(number)s", number=...)``, Jinja2's
# "newstyle" gettext: in the HTML part the values are escaped, the message is not).
_HTML = Environment(
    loader=_LOADER,
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
_TEXT = Environment(
    loader=_LOADER,
    autoescape=False,  # noqa: S701 (the plain-text part: nothing in it is read as markup)
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
for _env in (_HTML, _TEXT):
    _env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
NEVER_BY_MAIL = N_(
    "For your security we never send keys by e-mail. Sign in to the key portal to "
    "reveal them; keep them private until you redeem them."
)


def _plain(text: str) -> str:
    """Paragraphs separated by exactly one blank line, no trailing spaces."""
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def render(
    template: str, values: Mapping[str, Any], *, language: str | None = None
) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of ``template`` with ``values``, in ``language``
    (``core.i18n``; default English)."""
    with i18n.use_language(language):
        return _render(template, values)


def _render(template: str, values: Mapping[str, Any]) -> tuple[str, str, str]:
    text_module = _TEXT.get_template(template).make_module({**values, "layout": "_text.j2"})
    html_module = _HTML.get_template(template).make_module({**values, "layout": "_html.j2"})
    subject = str(getattr(text_module, "subject"))  # noqa: B009 (a template variable)
    return subject, _plain(str(text_module)), str(html_module).strip() + "\n"


def compose(
    template: str,
    *,
    to: str,
    mail_from: str | None = None,
    language: str | None = None,
    **values: Any,
) -> EmailMessage:
    """The message ``template`` renders for ``to`` in ``language`` (default: the one in
    force, core.i18n): plain text with an HTML alternative."""
    address = check_address(to)
    sender = mail_from or get_settings().mail_from
    values.setdefault("shop", "keyshop")
    code = i18n.normalise_language(language or i18n.current_language())
    subject, text, body_html = render(template, values, language=code)
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = address
    msg["Message-ID"] = make_msgid(domain=sender_domain(sender))
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg.set_content(text)
    msg.add_alternative(body_html, subtype="html")
    msg["Content-Language"] = code  # after the parts: set_content drops Content-* headers
    return msg


def compose_raw(
    template: str,
    *,
    to: str,
    mail_from: str | None = None,
    language: str | None = None,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> RawMessage:
    """What :func:`compose` builds, serialised at once: the same headers and the same two
    parts, built with the standard library's legacy (``compat32``) MIME classes. About a
    tenth of the cost of building and serialising an ``EmailMessage`` (mostly its
    per-header parsing and folding), which made the order e-mail the largest cost of an
    order (issue #20; bench/NOTES.md)."""
    address = check_address(to)
    sender = mail_from or get_settings().mail_from
    name, envelope = next(iter(getaddresses([sender])), ("", ""))
    if not envelope or _CONTROL.search(sender):
        raise InvalidInput("the sender must be an e-mail address", field="mail_from")
    values.setdefault("shop", "keyshop")
    code = i18n.normalise_language(language or i18n.current_language())
    subject, text, body_html = render(template, values, language=code)
    if _CONTROL.search(subject):
        raise InvalidInput("the subject must be one line", field="subject")
    message_id = make_msgid(domain=sender_domain(sender))
    msg = MIMEMultipart("alternative")
    msg["Subject"] = subject
    msg["From"] = formataddr((name, envelope))
    msg["To"] = address
    msg["Message-ID"] = message_id
    msg["Date"] = formatdate(usegmt=True)
    msg["Content-Language"] = code
    for header, value in (headers or {}).items():
        msg[header] = value
    msg.attach(MIMEText(text, "plain", _UTF8_QP))  # type: ignore[arg-type]
    msg.attach(MIMEText(body_html, "html", _UTF8_QP))  # type: ignore[arg-type]
    return RawMessage(
        sender=envelope, recipients=(address,), message_id=message_id, data=msg.as_bytes()
    )


# -- checks ------------------------------------------------------------------------------


def check_text(name: str, value: str, *, max_len: int = 200) -> str:
    """``value`` stripped, if it is one line of at most ``max_len`` characters."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or _CONTROL.search(value)
        or len(value) > max_len
    ):
        raise InvalidInput(f"{name} must be one line of text", field=name)
    return value.strip()


def check_url(url: str, *, name: str = "portal_url") -> str:
    """``url`` if it is an absolute http(s) URL without spaces or control characters."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or _CONTROL.search(url)
        or any(c.isspace() for c in url)
    ):
        raise InvalidInput(f"{name} must be an http:// or https:// URL", field=name)
    return url


def check_lines(lines: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    checked: list[tuple[str, int]] = []
    for title, quantity in lines:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput("each line needs a quantity of at least 1", field="lines")
        checked.append((check_text("line title", title), quantity))
    return checked


def _order_values(
    *,
    order_number: str,
    portal_url: str,
    lines: Iterable[tuple[str, int]],
    shop_name: str,
) -> dict[str, Any]:
    return {
        "number": check_text("order_number", order_number, max_len=64),
        "shop": check_text("shop_name", shop_name, max_len=80),
        "portal_url": check_url(portal_url),
        "lines": check_lines(lines),
        "never_by_mail": NEVER_BY_MAIL,
    }


def _order_notice(
    template: str,
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: Iterable[tuple[str, int]],
    shop_name: str,
    mail_from: str | None,
    language: str | None = None,
    **values: Any,
) -> EmailMessage:
    checked = _order_values(
        order_number=order_number, portal_url=portal_url, lines=lines, shop_name=shop_name
    )
    return compose(template, to=to, mail_from=mail_from, language=language, **checked, **values)


# -- the order notices -------------------------------------------------------------------


def check_totals(totals: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(label, formatted amount) rows: the total, the VAT it includes."""
    return [
        (check_text("total label", label), check_text("amount", amount)) for label, amount in totals
    ]


def delivery_notice(
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]],
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    totals: list[tuple[str, str]] | None = None,
    language: str | None = None,
) -> EmailMessage:
    """ "Your keys are ready": links to the key portal. Takes no key, by design.

    ``lines`` are (product title, quantity); ``totals`` (label, amount) rows such as the
    total and the VAT it includes.
    """
    return _order_notice(
        "delivery.j2",
        order_number=order_number,
        to=to,
        portal_url=portal_url,
        lines=lines,
        shop_name=shop_name,
        mail_from=mail_from,
        language=language,
        totals=check_totals(totals or []),
    )


def placed_notice(
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]],
    totals: list[tuple[str, str]],
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """The order confirmation, sent when the order is placed: lines, total and VAT, and
    the link to follow it. No key exists yet, and none would be in it."""
    return _order_notice(
        "placed.j2",
        order_number=order_number,
        to=to,
        portal_url=portal_url,
        lines=lines,
        shop_name=shop_name,
        mail_from=mail_from,
        language=language,
        totals=check_totals(totals),
    )


def order_links_notice(
    *,
    to: str,
    orders: list[tuple[str, str, str, str]],
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """ "Find my order": the links to every order of an address, as (number, placed
    date, total, order link)."""
    checked = [
        (
            check_text("order_number", number, max_len=64),
            check_text("placed", placed),
            check_text("total", total),
            check_url(url),
        )
        for number, placed, total, url in orders
    ]
    return compose(
        "order_links.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        shop=check_text("shop_name", shop_name, max_len=80),
        orders=checked,
    )


def preorder_notice(
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]],
    release_date: date | None = None,
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """Pre-order confirmed: the keys follow on release, in the key portal."""
    return _order_notice(
        "preorder.j2",
        order_number=order_number,
        to=to,
        portal_url=portal_url,
        lines=lines,
        shop_name=shop_name,
        mail_from=mail_from,
        language=language,
        release_date=i18n.format_date(release_date, language) if release_date else None,
    )


def attention_notice(
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]] | None = None,
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """Delivery is delayed and a person is on it (the reason stays with the operator)."""
    return _order_notice(
        "attention.j2",
        order_number=order_number,
        to=to,
        portal_url=portal_url,
        lines=lines or [],
        shop_name=shop_name,
        mail_from=mail_from,
        language=language,
    )


#: What an operator's action on an order tells its customer: notice kind → template.
AFTERCARE_TEMPLATES = {
    "refunded": "refunded.j2",
    "cancelled": "cancelled.j2",
    "replaced": "replaced.j2",
    "revoked": "revoked.j2",
    "report_rejected": "report_rejected.j2",
}


def aftercare_notice(
    kind: str,
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]] | None = None,
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """What happened to an order after delivery or payment (``kind``: refunded,
    cancelled, replaced, revoked, report_rejected). Takes no key and no operator note."""
    if kind not in AFTERCARE_TEMPLATES:
        raise InvalidInput(f"no notice of kind {kind!r}", field="kind")
    return _order_notice(
        AFTERCARE_TEMPLATES[kind],
        order_number=order_number,
        to=to,
        portal_url=portal_url,
        lines=lines or [],
        shop_name=shop_name,
        mail_from=mail_from,
        language=language,
    )


#: Every order notice: kind (as core/services/notifications.py names it) → template.
ORDER_TEMPLATES = {
    "placed": "placed.j2",
    "delivered": "delivery.j2",
    "waiting": "preorder.j2",
    "attention": "attention.j2",
    **AFTERCARE_TEMPLATES,
}


def order_message(
    kind: str,
    *,
    order_number: str,
    to: str,
    portal_url: str,
    lines: list[tuple[str, int]],
    totals: list[tuple[str, str]] | None = None,
    release_date: date | None = None,
    shop_name: str = "keyshop",
    mail_from: str | None = None,
    language: str | None = None,
) -> RawMessage:
    """The ``kind`` notice of an order, serialised (:func:`compose_raw`): what the
    notice builders above say, checked the same way, for the e-mails the shop sends in
    batches. Takes no key, by design."""
    if kind not in ORDER_TEMPLATES:
        raise InvalidInput(f"no notice of kind {kind!r}", field="kind")
    checked = _order_values(
        order_number=order_number, portal_url=portal_url, lines=lines, shop_name=shop_name
    )
    return compose_raw(
        ORDER_TEMPLATES[kind],
        to=to,
        mail_from=mail_from,
        language=language,
        totals=check_totals(totals or []),
        release_date=i18n.format_date(release_date, language) if release_date else None,
        **checked,
    )


# -- the account notices -----------------------------------------------------------------


def password_reset_notice(
    *, to: str, link: str, minutes: int, mail_from: str | None = None, language: str | None = None
) -> EmailMessage:
    """A one-time link to choose a new password, valid for ``minutes``."""
    return compose(
        "password_reset.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        link=check_url(link, name="link"),
        minutes=minutes,
    )


def verification_notice(
    *, to: str, link: str, mail_from: str | None = None, language: str | None = None
) -> EmailMessage:
    """Confirm a new account's address with a one-time link."""
    return compose(
        "verify_email.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        link=check_url(link, name="link"),
    )


def sign_up_attempt_notice(
    *, to: str, public_url: str, mail_from: str | None = None, language: str | None = None
) -> EmailMessage:
    """Someone tried to sign up with an address that already has an account."""
    return compose(
        "sign_up_attempt.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        public_url=check_url(public_url, name="public_url").rstrip("/"),
    )


# -- back-in-stock requests (core/services/stock_alerts.py) ------------------------------


def _one_click_unsubscribe(message: EmailMessage, url: str) -> EmailMessage:
    """RFC 8058: mail clients show an "Unsubscribe" button that POSTs to ``url``."""
    message["List-Unsubscribe"] = f"<{url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def stock_alert_confirm_notice(
    *, to: str, title: str, link: str, mail_from: str | None = None, language: str | None = None
) -> EmailMessage:
    """Double opt-in: the address confirms it wants the back-in-stock e-mail."""
    return compose(
        "stock_alert_confirm.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        title=check_text("title", title),
        link=check_url(link, name="link"),
    )


def back_in_stock_notice(
    *,
    to: str,
    title: str,
    product_url: str,
    unsubscribe_url: str,
    mail_from: str | None = None,
    language: str | None = None,
) -> EmailMessage:
    """The one e-mail a confirmed request gets, with one-click unsubscribe."""
    message = compose(
        "back_in_stock.j2",
        to=to,
        mail_from=mail_from,
        language=language,
        title=check_text("title", title),
        product_url=check_url(product_url, name="product_url"),
        unsubscribe_url=check_url(unsubscribe_url, name="unsubscribe_url"),
    )
    return _one_click_unsubscribe(message, unsubscribe_url)
