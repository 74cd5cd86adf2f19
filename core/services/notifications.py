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

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlmodel import Session as SQLModelSession

from core import jobs, tracing
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.i18n import N_, current_language, format_date, localised_path, use_language
from core.i18n import gettext as _
from core.jobs import Job
from core.mail import (
    AFTERCARE_TEMPLATES,
    MailError,
    RawMessage,
    get_mailer,
    order_links_notice,
    order_message,
)
from core.models import MailOutbox, Order, OrderEvent, OrderLine, Product, utcnow
from core.money import format_money
from core.services import locking
from core.services.audit import Actor, record_audit
from core.signing import make_token

log = logging.getLogger(__name__)
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
_P = Product.__table__  # type: ignore[attr-defined]
_MX = MailOutbox.__table__  # type: ignore[attr-defined]
# The orders of a batch of notices with their lines: one statement.
_READ = (
    select(
        _O.c.id,
        _O.c.number,
        _O.c.email,
        _O.c.status,
        _O.c.total_minor,
        _O.c.currency,
        _O.c.vat_minor,
        _O.c.vat_rate_bp,
        _O.c.country,
        _O.c.language,
        _L.c.title,
        _L.c.platform,
        _L.c.region,
        _L.c.quantity,
        _L.c.product_id,
    )
    .select_from(_O.outerjoin(_L, _L.c.order_id == _O.c.id))
    .where(_O.c.id.in_(bindparam("order_ids", expanding=True)))
    .order_by(_O.c.id, _L.c.id)
)
# Which of these notices were already sent: one statement.
_SENT = select(_E.c.order_id, _E.c.reason).where(
    _E.c.order_id.in_(bindparam("order_ids", expanding=True)),
    _E.c.reason.in_(bindparam("markers", expanding=True)),
)
#: A batch of due e-mails (send_due_order_emails): how many at most, how long a batch
#: holds them before another may take them, and after how many attempts one is dropped.
_QUEUE = insert(_MX)
MAIL_BATCH = 50
MAIL_LEASE = timedelta(minutes=5)
MAIL_MAX_ATTEMPTS = 8


def _marker(kind: str, ref: str) -> str:
    return f"{kind} ({ref})" if ref else kind


@dataclass(frozen=True, slots=True)
class _Due:
    order_id: int
    kind: str
    ref: str = ""

    @property
    def marker(self) -> str:
        return SENT + _marker(self.kind, self.ref)


@dataclass(slots=True)
class _Notice:
    """One due notice, read: the order's number, address and status; ``skip`` says why
    it is not sent (already sent, a checkout called off); else ``message``."""

    number: str
    email: str
    status: str
    skip: str | None = None
    message: RawMessage | None = None


def _read_notices(session: Session, dues: list[_Due], *, again: bool) -> dict[_Due, _Notice]:
    """Read the orders of ``dues`` (two statements, three with a pre-order) and build each
    notice that is to be sent; an order that does not exist is left out."""
    order_ids = sorted({d.order_id for d in dues})
    rows = session.execute(_READ, {"order_ids": order_ids}).all()
    sent = {
        (int(order_id), str(reason))
        for order_id, reason in session.execute(
            _SENT, {"order_ids": order_ids, "markers": sorted({d.marker for d in dues})}
        )
    }
    by_order: dict[int, list[Any]] = {}
    for row in rows:
        by_order.setdefault(row.id, []).append(row)
    releases: dict[int, date | None] = {}
    waiting = [d.order_id for d in dues if d.kind == "waiting" and d.order_id in by_order]
    if waiting:
        product_ids = {r.product_id for oid in waiting for r in by_order[oid] if r.product_id}
        dates: dict[int, date | None] = dict(
            session.execute(
                select(_P.c.id, _P.c.release_date).where(_P.c.id.in_(sorted(product_ids)))
            ).all()
        )
        for oid in waiting:
            found = [dates.get(r.product_id) for r in by_order[oid]]
            releases[oid] = max((d for d in found if d), default=None)
    settings = get_settings()
    notices: dict[_Due, _Notice] = {}
    for due in dues:
        order_rows = by_order.get(due.order_id)
        if not order_rows:
            continue
        first = order_rows[0]
        notice = _Notice(number=first.number, email=first.email, status=first.status)
        notices[due] = notice
        if (due.order_id, due.marker) in sent and not again:
            notice.skip = f"{due.kind} e-mail for {first.number} was already sent"
            continue
        if due.kind == "placed" and first.status == "cancelled" and not again:
            notice.skip = f"placed e-mail for {first.number} not sent: the checkout was called off"
            continue
        lines = [r for r in order_rows if r.title is not None]
        language = first.language
        notice.message = order_message(
            due.kind,
            order_number=first.number,
            to=first.email,
            portal_url=portal_url(first.number, language=language),
            lines=[(f"{ln.title} ({ln.platform}, {ln.region})", ln.quantity) for ln in lines],
            totals=order_totals(
                total_minor=first.total_minor,
                currency=first.currency,
                vat_minor=first.vat_minor,
                vat_rate_bp=first.vat_rate_bp,
                country=first.country,
                language=language,
            ),
            release_date=releases.get(due.order_id),
            mail_from=settings.mail_from,
            language=language,
        )
    return notices


def _sent_event(
    due: _Due, notice: _Notice, message_id: str, again_by: Actor | None = None
) -> dict[str, Any]:
    return {
        "order_id": due.order_id,
        "from_status": notice.status,
        "to_status": notice.status,
        "reason": due.marker if again_by is None else SENT_AGAIN + _marker(due.kind, due.ref),
        "actor": "system:mail" if again_by is None else str(again_by),
        "data": {"message_id": message_id, "to": notice.email},
        "created_at": utcnow(),
    }


def _check_kind(kind: str, ref: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"no e-mail of kind {kind!r}")
    if len(ref) > 60:
        raise InvalidInput("the e-mail reference is too long")


@tracing.traced("order e-mail", "order_id", "kind")
def send_order_email(
    *, order_id: int, kind: str, ref: str = "", again_by: Actor | None = None
) -> str:
    """Send the ``kind`` notice of an order once (``ref``: what it is about, so two
    replaced keys are two notices). ``again_by``: an operator sends it again whatever
    was sent before; recorded as its own order event and audited as
    ``order.email_resend``. Owns its transactions; the mail goes out between them."""
    _check_kind(kind, ref)
    due = _Due(order_id, kind, ref)
    with session_scope(write=False) as session:
        notice = _read_notices(session, [due], again=again_by is not None).get(due)
    if notice is None:
        raise NotFound(f"order {order_id} does not exist")
    if notice.skip is not None:
        return notice.skip
    assert notice.message is not None
    message_id = get_mailer().send_raw(notice.message)
    with session_scope() as session:
        session.execute(insert(_E).values(**_sent_event(due, notice, message_id, again_by)))
        if again_by is not None:
            record_audit(
                session=session,
                actor=again_by,
                action="order.email_resend",
                object_type="order",
                object_id=notice.number,
                data={"kind": kind, "ref": ref or None, "message_id": message_id},
            )
    return f"{kind} e-mail for {notice.number} sent" + (" again" if again_by is not None else "")


# -- e-mails sent in batches, from the outbox ------------------------------------------


def queue_order_email(*, session: SQLModelSession, order_id: int, kind: str, ref: str = "") -> None:
    """Make the ``kind`` notice of an order due in the caller's transaction (a
    ``mail_outbox`` row) and ask for a batch to send it once that transaction commits.
    Runs inside the caller's transaction and never commits. The row, not the queue, is
    what says the e-mail is owed: a lost job or a worker that dies mid-batch leaves it
    for the next batch (the periodic one at the latest)."""
    _check_kind(kind, ref)
    session.connection().execute(
        _QUEUE, {"order_id": order_id, "kind": kind, "ref": ref, "attempts": 0, "due_at": utcnow()}
    )
    jobs.enqueue_after_commit(session, Job.SEND_DUE_ORDER_EMAILS, once=True)


@dataclass(frozen=True, slots=True)
class MailBatch:
    """What one batch did: ``sent`` e-mails, ``skipped`` (already sent, order gone),
    ``failed`` (tried again later), ``dropped`` (failed MAIL_MAX_ATTEMPTS times)."""

    taken: int
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    dropped: int = 0

    @property
    def full(self) -> bool:
        return self.taken >= MAIL_BATCH


@tracing.traced("order e-mails due")
def send_due_order_emails(*, limit: int = MAIL_BATCH, now: datetime | None = None) -> MailBatch:
    """Send up to ``limit`` due order e-mails (oldest first): take them (one short
    transaction: no lock is held while mailing), read their orders (two statements),
    send each, then record every sent one and remove it from the outbox in one
    transaction. A failed one is tried again later, with a growing delay, and dropped
    with a log line after MAIL_MAX_ATTEMPTS. A worker that dies before the last
    transaction leaves its e-mails to the next batch once MAIL_LEASE has passed; an
    e-mail that left just before such a crash can then be sent twice (never a key)."""
    at = now or utcnow()
    with session_scope() as session:
        taken = locking.take_due_mail(session, at=at, limit=limit)
        if not taken:
            return MailBatch(taken=0)
        session.execute(
            update(_MX)
            .where(_MX.c.id.in_([row.id for row in taken]))
            .values(due_at=at + MAIL_LEASE, attempts=_MX.c.attempts + 1)
        )
    dues = {row.id: _Due(row.order_id, row.kind, row.ref) for row in taken}
    mailer = get_mailer()
    events: list[dict[str, Any]] = []
    done: list[int] = []
    failed: dict[int, str] = {}
    skipped = 0
    with session_scope(write=False) as session:
        notices = _read_notices(session, list(dict.fromkeys(dues.values())), again=False)
    sent_now: set[_Due] = set()
    for row_id, due in dues.items():
        notice = notices.get(due)
        if notice is None or notice.skip is not None or due in sent_now:
            skipped += 1
            done.append(row_id)
            continue
        assert notice.message is not None
        try:
            with tracing.span(
                "order e-mail", **{"keyshop.order_id": due.order_id, "keyshop.kind": due.kind}
            ):
                message_id = mailer.send_raw(notice.message)
        except MailError as exc:
            failed[row_id] = f"{type(exc).__name__}: {exc}"
            continue
        sent_now.add(due)
        events.append(_sent_event(due, notice, message_id))
        done.append(row_id)
    attempts = {row.id: row.attempts + 1 for row in taken}
    dropped = [i for i in failed if attempts[i] >= MAIL_MAX_ATTEMPTS]
    with session_scope() as session:
        if events:
            session.execute(insert(_E), events)
        if done or dropped:
            session.execute(delete(_MX).where(_MX.c.id.in_(done + dropped)))
        for row_id in failed:
            if row_id not in dropped:
                delay = timedelta(seconds=min(3600, 5 * 2 ** attempts[row_id]))
                session.execute(
                    update(_MX).where(_MX.c.id == row_id).values(due_at=utcnow() + delay)
                )
    for row_id, reason in failed.items():
        due = dues[row_id]
        level = logging.ERROR if row_id in dropped else logging.WARNING
        log.log(
            level,
            "order %s: %s e-mail %s (attempt %s): %s",
            due.order_id,
            due.kind,
            "dropped" if row_id in dropped else "to be tried again",
            attempts[row_id],
            reason,
        )
    return MailBatch(
        taken=len(taken),
        sent=len(events),
        skipped=skipped,
        failed=len(failed) - len(dropped),
        dropped=len(dropped),
    )


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
