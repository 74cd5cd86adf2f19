"""Customer e-mails about an order. They link to the key portal; they never contain a key
(invariant 5: the notice builders in core.mail.notices take no key at all).

Each notice is sent at most once per order, kind and ``ref`` (the report or key it is
about) in the normal course: the sending is recorded as an order event and a second call
finds it. (A crash between the SMTP answer and that record can send one duplicate; never
a key.) An operator can send any of them again (:func:`resend_order_email`, audited).

Besides the order notices, an operator's action tells the customer what happened
(issue #17): refunded, cancelled, replaced, revoked, report_rejected.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import Session

from core import tracing
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.i18n import N_, current_language, format_date, localised_path, use_language
from core.i18n import gettext as _
from core.mail import (
    AFTERCARE_TEMPLATES,
    aftercare_notice,
    attention_notice,
    delivery_notice,
    get_mailer,
    order_links_notice,
    placed_notice,
    preorder_notice,
)
from core.models import Order, OrderEvent, OrderLine, Product, utcnow
from core.money import format_money
from core.services.audit import Actor, record_audit
from core.signing import make_token

KINDS = ("placed", "delivered", "waiting", "attention", *AFTERCARE_TEMPLATES)
SENT = "e-mail sent: "
SENT_AGAIN = "e-mail sent again: "
#: "Find my order": requests per client address and per e-mail address in a window.
ORDER_LINKS_LIMITS: Final = {"ip": (10, 3600), "email": (3, 3600)}
MAX_LINKED_ORDERS: Final = 20
PORTAL_LINK_DAYS = 365


ORDER_ACCESS_PURPOSE = "order-access"


def order_access_token(order_number: str) -> str:
    """The unguessable token that opens one order (and its key portal) without signing
    in: signed for purpose ``order-access`` over the order number, valid for a year.
    ``core.services.portal.open_order`` checks it."""
    return make_token(ORDER_ACCESS_PURPOSE, order_number, ttl_seconds=PORTAL_LINK_DAYS * 86400)


def portal_url(order_number: str, token: str | None = None, *, language: str | None = None) -> str:
    """The link a guest (or a customer) follows to the order and its keys: signed, so it
    cannot be guessed from the order number; the order page in ``language`` (default:
    the one in force, core.i18n)."""
    token = token or order_access_token(order_number)
    path = localised_path(f"/orders/{order_number}", language)
    return f"{get_settings().public_url}{path}?token={token}"


_O = Order.__table__  # type: ignore[attr-defined]
_L = OrderLine.__table__  # type: ignore[attr-defined]
_E = OrderEvent.__table__  # type: ignore[attr-defined]
# The order, whether this notice was already sent, and its lines: one statement.
_READ = (
    select(
        _O.c.number,
        _O.c.email,
        _O.c.status,
        _O.c.total_minor,
        _O.c.currency,
        _O.c.vat_minor,
        _O.c.vat_rate_bp,
        _O.c.country,
        _O.c.language,
        exists().where(_E.c.order_id == _O.c.id, _E.c.reason == bindparam("marker")).label("sent"),
        _L.c.title,
        _L.c.platform,
        _L.c.region,
        _L.c.quantity,
        _L.c.product_id,
    )
    .select_from(_O.outerjoin(_L, _L.c.order_id == _O.c.id))
    .where(_O.c.id == bindparam("order_id"))
    .order_by(_L.c.id)
)


def _marker(kind: str, ref: str) -> str:
    return f"{kind} ({ref})" if ref else kind


@tracing.traced("order e-mail", "order_id", "kind")
def send_order_email(
    *, order_id: int, kind: str, ref: str = "", again_by: Actor | None = None
) -> str:
    """Send the ``kind`` notice of an order once (``ref``: what it is about, so two
    replaced keys are two notices). ``again_by``: an operator sends it again whatever
    was sent before; recorded as its own order event and audited as
    ``order.email_resend``. Owns its transactions; the mail goes out between them."""
    if kind not in KINDS:
        raise InvalidInput(f"no e-mail of kind {kind!r}")
    if len(ref) > 60:
        raise InvalidInput("the e-mail reference is too long")
    marker = SENT + _marker(kind, ref)
    with session_scope(write=False) as session:
        rows = session.execute(_READ, {"order_id": order_id, "marker": marker}).all()
        if not rows:
            raise NotFound(f"order {order_id} does not exist")
        first = rows[0]
        number, email, status, sent = first.number, first.email, first.status, first.sent
        language = first.language
        totals = order_totals(
            total_minor=first.total_minor,
            currency=first.currency,
            vat_minor=first.vat_minor,
            vat_rate_bp=first.vat_rate_bp,
            country=first.country,
            language=language,
        )
        if sent and again_by is None:
            return f"{kind} e-mail for {number} was already sent"
        if kind == "placed" and status == "cancelled" and again_by is None:
            return f"placed e-mail for {number} not sent: the checkout was called off"
        lines = [row for row in rows if row.title is not None]
        items = [(f"{ln.title} ({ln.platform}, {ln.region})", ln.quantity) for ln in lines]
        release = None
        if kind == "waiting":
            products = Product.__table__  # type: ignore[attr-defined]
            dates = session.scalars(
                select(products.c.release_date).where(
                    products.c.id.in_([ln.product_id for ln in lines])
                )
            ).all()
            release = max((d for d in dates if d), default=None)
    link = portal_url(number, language=language)
    common: dict[str, Any] = {
        "order_number": number,
        "to": email,
        "portal_url": link,
        "lines": items,
        "mail_from": get_settings().mail_from,
        "language": language,
    }
    if kind == "placed":
        message = placed_notice(totals=totals, **common)
    elif kind == "delivered":
        message = delivery_notice(totals=totals, **common)
    elif kind == "waiting":
        message = preorder_notice(release_date=release, **common)
    elif kind == "attention":
        message = attention_notice(**common)
    else:
        message = aftercare_notice(kind, **common)
    message_id = get_mailer().send(message)
    with session_scope() as session:
        session.execute(
            insert(_E).values(
                order_id=order_id,
                from_status=status,
                to_status=status,
                reason=marker if again_by is None else SENT_AGAIN + _marker(kind, ref),
                actor="system:mail" if again_by is None else str(again_by),
                data={"message_id": message_id, "to": email},
                created_at=utcnow(),
            )
        )
        if again_by is not None:
            record_audit(
                session=session,
                actor=again_by,
                action="order.email_resend",
                object_type="order",
                object_id=number,
                data={"kind": kind, "ref": ref or None, "message_id": message_id},
            )
    return f"{kind} e-mail for {number} sent" + (" again" if again_by is not None else "")


def sent_order_emails(*, session: Session, order_id: int) -> list[tuple[str, str]]:
    """The notices sent for an order, oldest first, as (kind, ref), each once."""
    found: list[tuple[str, str]] = []
    for (reason,) in session.execute(
        select(_E.c.reason)
        .where(_E.c.order_id == order_id, _E.c.reason.like(SENT + "%"))
        .order_by(_E.c.id)
    ):
        text = str(reason).removeprefix(SENT)
        kind, _, rest = text.partition(" (")
        entry = (kind, rest.removesuffix(")"))
        if kind in KINDS and entry not in found:
            found.append(entry)
    return found


def resend_order_email(*, order_id: int, kind: str, actor: Actor, ref: str = "") -> str:
    """Operator action: send an order's ``kind`` notice again (a customer lost it, or
    the address was fixed). Audited as ``order.email_resend``. Owns its transactions."""
    return send_order_email(order_id=order_id, kind=kind, ref=ref, again_by=actor)


TOTAL_LABEL = N_("Total")
VAT_LABEL = N_("Includes VAT (%(rate)s, %(country)s)")


def order_totals(
    *,
    total_minor: int,
    currency: str,
    vat_minor: int,
    vat_rate_bp: int,
    country: str | None,
    language: str | None = None,
) -> list[tuple[str, str]]:
    """The totals an order e-mail shows: what was paid, and the VAT it includes, in
    ``language`` (core.i18n; money through core.money)."""
    from core.services.vat import rate_text

    with use_language(language) as code:
        rows = [(_(TOTAL_LABEL), format_money(total_minor, currency, language=code))]
        if country:
            label = _(VAT_LABEL) % {"rate": rate_text(vat_rate_bp, code), "country": country}
            rows.append((label, format_money(vat_minor, currency, language=code)))
    return rows


# -- "find my order" -----------------------------------------------------------------------


def request_order_links(*, email: str, ip: str | None = None) -> None:
    """ "Find my order": queue an e-mail with the links to every order of ``email``. The
    same answer and the same work whether or not there are any (the queued job looks
    them up). InvalidInput only for something that is not an e-mail address;
    RateLimited after too many requests from the client or for the address."""
    from core.jobs import Job, dispatch
    from core.services.customers import normalise_email
    from core.services.ratelimit import check_rate

    address = normalise_email(email)
    if ip:
        limit, window = ORDER_LINKS_LIMITS["ip"]
        check_rate(scope="order-links-ip", subject=ip, limit=limit, window_seconds=window)
    limit, window = ORDER_LINKS_LIMITS["email"]
    check_rate(scope="order-links-email", subject=address, limit=limit, window_seconds=window)
    dispatch(
        Job.SEND_ACCOUNT_EMAIL,
        kind="order-links",
        email=address,
        ip=ip,
        language=current_language(),
    )


def send_order_links(*, email: str) -> bool:
    """The queued half of :func:`request_order_links`: e-mail the links to the newest
    MAX_LINKED_ORDERS orders of ``email`` (True), or nothing when it has none (False)."""
    with session_scope(write=False) as session:
        rows = session.execute(
            select(_O.c.number, _O.c.created_at, _O.c.total_minor, _O.c.currency)
            .where(_O.c.email == email)
            .order_by(_O.c.created_at.desc(), _O.c.id.desc())
            .limit(MAX_LINKED_ORDERS)
        ).all()
    if not rows:
        return False
    orders = [
        (
            row.number,
            format_date(row.created_at),
            format_money(row.total_minor, row.currency, language=current_language()),
            portal_url(row.number),
        )
        for row in rows
    ]
    settings = get_settings()
    get_mailer().send(order_links_notice(to=email, orders=orders, mail_from=settings.mail_from))
    return True
