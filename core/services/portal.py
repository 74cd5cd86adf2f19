"""The customer's order page and key portal.

Who may open an order (DESIGN §4 invariant 6): whoever holds the order's access token
(the signed ``order-access`` token of :func:`core.services.notifications.order_access_token`,
sent in the order e-mail and returned by checkout), or the signed-in customer the order
belongs to. Every other attempt -- an unknown number, a wrong, expired or someone else's
token, another customer's order -- raises the same :class:`OrderNotFound` (404), so the
answer tells nobody whether an order number exists.

What the portal shows never includes a key: :class:`KeyView` carries an id, a kind, a
status and a fixed mask. The code leaves the vault only through
:func:`reveal_order_key` -- ownership checked, rate limited, audited through
:func:`core.services.keys.reveal_key` -- and is returned to the caller, never logged.
"""

from __future__ import annotations

import hmac
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select

from core.db import session_scope
from core.errors import DomainError, InvalidInput, InvalidKeyState, NotFound
from core.i18n import N_, gettext
from core.models import (
    AlertKind,
    Key,
    KeyReport,
    KeyReportStatus,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    row_id,
)
from core.services import credit, locking, nowpayments, promos
from core.services.alerts import raise_alert
from core.services.audit import Actor, record_audit
from core.services.catalogue.covers import cover_src
from core.services.consent import require_consent
from core.services.keys import reveal_key
from core.services.notifications import ORDER_ACCESS_PURPOSE, portal_url
from core.services.ratelimit import check_rate
from core.services.storefront import activation_url
from core.signing import InvalidToken, check_token

S = OrderStatus

#: Reveals allowed per order in a window: generous for a customer copying a few keys,
#: tight enough to stop a script.
REVEAL_LIMIT: Final = 30
REVEAL_WINDOW_SECONDS: Final = 600
REPORT_MESSAGE_MAX: Final = 2000
MAX_NUMBER_LENGTH: Final = 24

TEXT_MASK: Final = "XXXXX-XXXXX-•••••"
IMAGE_MASK: Final = "Image key (hidden)"

# (label, progress stage) per status; the stages run 1 (ordered) to 4 (delivered), 0 for
# an order that left the normal path for good.
STAGES: Final = 4
_STATUS: Final[dict[str, tuple[str, int]]] = {
    S.PENDING_PAYMENT: (N_("Waiting for payment"), 1),
    S.PAID: (N_("Paid"), 2),
    S.FULFILLED: (N_("Delivered"), 4),
    S.NEEDS_ATTENTION: (N_("Needs our attention"), 3),
    S.CANCELLED: (N_("Cancelled"), 0),
    S.REFUNDED: (N_("Refunded"), 0),
    S.DISPUTED: (N_("Payment disputed"), 0),
}
DELIVERING: Final = (N_("Delivering your keys"), 3)


class OrderNotFound(NotFound):
    """The one answer to every order the caller may not open (unknown, wrong token,
    someone else's)."""

    code = "order_not_found"

    def __init__(self) -> None:
        super().__init__("We could not find that order. Check the link in your e-mail.")


class KeyNotFound(NotFound):
    code = "key_not_found"

    def __init__(self) -> None:
        super().__init__("That key is not part of this order.")


def _actor(order: Order, customer_id: int | None, ip: str | None, user_agent: str | None) -> Actor:
    who: int | str = customer_id if customer_id is not None else f"guest:{order.number}"
    return Actor.customer(who, ip=ip, user_agent=user_agent)


def token_opens(number: str, access_token: str | None) -> bool:
    """Whether ``access_token`` is a valid order-access token for order ``number``."""
    if not access_token or not isinstance(access_token, str) or len(access_token) > 512:
        return False
    try:
        payload = check_token(ORDER_ACCESS_PURPOSE, access_token)
    except InvalidToken:
        return False
    return hmac.compare_digest(payload.encode(), number.encode())


def _normalised_number(number: str) -> str:
    if not isinstance(number, str):
        raise OrderNotFound()
    value = number.strip().upper()
    if not value or len(value) > MAX_NUMBER_LENGTH:
        raise OrderNotFound()
    return value


def open_order(
    *,
    session: Session,
    number: str,
    access_token: str | None = None,
    customer_id: int | None = None,
) -> Order:
    """The order ``number`` if the caller may see it: a valid access token for that
    number, or a signed-in customer it belongs to. OrderNotFound otherwise."""
    value = _normalised_number(number)
    by_token = token_opens(value, access_token)
    if not by_token and customer_id is None:
        raise OrderNotFound()
    order = session.exec(select(Order).where(Order.number == value)).first()
    if order is None:
        raise OrderNotFound()
    if by_token or (customer_id is not None and order.customer_id == customer_id):
        return order
    raise OrderNotFound()


# -- the order page ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyView:
    """One delivered key as the portal lists it: never the code."""

    id: str
    kind: str  # text | image
    status: str  # delivered | faulty | revoked
    masked: str
    revealed: bool
    reported: bool  # an open faulty-key report exists

    @property
    def can_reveal(self) -> bool:
        return self.status == KeyStatus.DELIVERED

    @property
    def can_report(self) -> bool:
        return self.status == KeyStatus.DELIVERED and not self.reported


@dataclass(frozen=True, slots=True)
class LineView:
    id: int
    slug: str | None  # None when the product was removed from the catalogue
    title: str
    platform: str
    region: str
    quantity: int
    unit_price_minor: int
    line_total_minor: int
    currency: str
    cover_url: str | None
    activation_url: str | None
    activation_instructions: str
    delivered: int
    pending: int  # ordered but not delivered yet
    keys: list[KeyView]
    is_preorder: bool = False
    discount_minor: int = 0  # what promo codes took off the line (line_total_minor is after it)


@dataclass(frozen=True, slots=True)
class OrderView:
    number: str
    status: str
    status_label: str
    stage: int  # 0 (left the normal path) or 1..stages
    stages: int
    email: str
    created_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    total_minor: int
    currency: str
    lines: list[LineView]
    delivered: int
    pending: int
    consent_given: bool = False  # agreed to immediate delivery (core.services.consent)
    country: str | None = None
    vat_rate_bp: int = 0
    vat_minor: int = 0
    #: The payment's own state when the order page should show it (a crypto payment
    #: on its way through the blockchain), else None.
    payment_note: str | None = None
    #: What gift cards and store credit paid of ``total_minor`` (the card paid the rest).
    paid_from_balances_minor: int = 0
    #: What promo codes took off the order (``total_minor`` is after it), and the codes.
    discount_minor: int = 0
    promo_codes: tuple[str, ...] = ()

    @property
    def is_final(self) -> bool:
        """Nothing will change on its own any more (the page may stop watching)."""
        return self.status in (S.FULFILLED, S.CANCELLED, S.REFUNDED)


def order_view(*, session: Session, order: Order) -> OrderView:
    """The order page: status in customer words, lines with their keys (masked) and what
    is still pending. Reads only; the caller has opened the order with open_order."""
    order_id = row_id(order.id)
    lines = session.exec(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(col(OrderLine.id))
    ).all()
    line_ids = [row_id(ln.id) for ln in lines]
    products = {
        p.id: p
        for p in session.exec(
            select(Product).where(col(Product.id).in_({ln.product_id for ln in lines}))
        )
    }
    keys: dict[int, list[Key]] = defaultdict(list)
    reported: set[uuid.UUID] = set()
    if line_ids:
        shown = (KeyStatus.DELIVERED, KeyStatus.FAULTY, KeyStatus.REVOKED)
        for key in session.exec(
            select(Key)
            .where(col(Key.order_line_id).in_(line_ids), col(Key.status).in_(shown))
            .order_by(col(Key.delivered_at), col(Key.id))
        ):
            keys[row_id(key.order_line_id)].append(key)
        reported = set(
            session.exec(
                select(KeyReport.key_id).where(
                    KeyReport.order_id == order_id, KeyReport.status == KeyReportStatus.OPEN
                )
            )
        )
    views: list[LineView] = []
    for line in lines:
        product = products.get(line.product_id)
        line_keys = keys.get(row_id(line.id), [])
        delivered = sum(1 for k in line_keys if k.status == KeyStatus.DELIVERED)
        views.append(
            LineView(
                id=row_id(line.id),
                slug=product.slug if product is not None else None,
                title=line.title,
                platform=line.platform,
                region=line.region,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                line_total_minor=line.unit_price_minor * line.quantity - line.discount_minor,
                discount_minor=line.discount_minor,
                currency=line.currency,
                cover_url=cover_src(product) if product is not None else None,
                activation_url=activation_url(line.platform),
                activation_instructions=product.activation_instructions if product else "",
                is_preorder=line.is_preorder,
                delivered=delivered,
                pending=max(0, line.quantity - delivered)
                if order.status in (S.PAID, S.NEEDS_ATTENTION, S.FULFILLED)
                else 0,
                keys=[
                    KeyView(
                        id=str(k.id),
                        kind=k.kind,
                        status=k.status,
                        masked=IMAGE_MASK if k.kind == "image" else TEXT_MASK,
                        revealed=k.revealed_at is not None,
                        reported=k.id in reported,
                    )
                    for k in line_keys
                ],
            )
        )
    label, stage = _STATUS.get(order.status, (order.status.replace("_", " ").capitalize(), 0))
    if order.status == S.PAID and (
        order.fulfilment_attempts > 0
        or order.fulfilment_lease_until is not None
        or any(v.delivered for v in views)
    ):
        label, stage = DELIVERING
    return OrderView(
        number=order.number,
        status=order.status,
        status_label=gettext(label),  # in the language in force (core.i18n)
        stage=stage,
        stages=STAGES,
        email=order.email,
        created_at=order.created_at,
        paid_at=order.paid_at,
        fulfilled_at=order.fulfilled_at,
        total_minor=order.total_minor,
        currency=order.currency,
        lines=views,
        delivered=sum(v.delivered for v in views),
        pending=sum(v.pending for v in views),
        consent_given=order.delivery_consent_at is not None,
        country=order.country,
        vat_rate_bp=order.vat_rate_bp,
        vat_minor=order.vat_minor,
        payment_note=nowpayments.payment_note(session=session, order_id=order_id),
        paid_from_balances_minor=credit.covered_minor(session, order_id=order_id),
        discount_minor=order.discount_minor,
        promo_codes=tuple(r.code for r in promos.order_codes(session=session, order_id=order_id)),
    )


def view_order(
    *, number: str, access_token: str | None = None, customer_id: int | None = None
) -> OrderView:
    """Open order ``number`` for the caller and build its view, in one read-only
    transaction: the one way the storefront's order and payment pages and the store API
    show an order. OrderNotFound for anything the caller may not open (see
    :func:`open_order`)."""
    with session_scope(write=False) as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        return order_view(session=session, order=order)


def order_page_url(
    number: str, access_token: str | None = None, *, language: str | None = None
) -> str:
    """The order page's address (with its access token), in ``language``."""
    return portal_url(number, access_token, language=language)


# -- revealing and reporting keys --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevealedKey:
    """A revealed key. ``code`` is the plaintext (text keys) -- show it to its owner and
    drop it; never log it. ``image_url`` is a signed link that expires (image keys)."""

    key_id: str
    kind: str
    code: str | None
    image_url: str | None

    def __repr__(self) -> str:  # never print the code
        return f"RevealedKey(key_id={self.key_id!r}, kind={self.kind!r})"


def _key_id(key_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(key_id))
    except (ValueError, TypeError, AttributeError):
        raise KeyNotFound() from None


def _order_key(session: Session, order: Order, key_id: uuid.UUID, *, lock: bool) -> Key:
    """The key if it is delivered to one of ``order``'s lines; KeyNotFound otherwise."""
    key = locking.lock_key(session, key_id) if lock else session.get(Key, key_id)
    if key is None or key.order_line_id is None:
        raise KeyNotFound()
    line_order = session.exec(
        select(OrderLine.order_id).where(OrderLine.id == key.order_line_id)
    ).first()
    if line_order != order.id:
        raise KeyNotFound()
    return key


def _not_revealable(key: Key) -> InvalidKeyState:
    reason = {
        KeyStatus.FAULTY: "this key was reported faulty and replaced",
        KeyStatus.REVOKED: "this key was withdrawn (the order was refunded or cancelled)",
    }.get(KeyStatus(key.status), "this key is not delivered yet")
    return InvalidKeyState(f"This key cannot be shown: {reason}.", key_id=str(key.id))


def reveal_order_key(
    *,
    number: str,
    key_id: str,
    access_token: str | None = None,
    customer_id: int | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    second_factor: str | None = None,
) -> RevealedKey:
    """Show one delivered key of an order to its owner. Owns its transactions.

    When the order belongs to an account with two-factor sign-in on, every reveal needs
    a code again (``second_factor``; core.services.twofactor), however the order was
    opened: SecondFactorRequired, InvalidSecondFactor.

    The customer must have agreed to immediate delivery first
    (:mod:`core.services.consent`: ConsentRequired, 409).

    Ownership through :func:`open_order` (OrderNotFound), the key must be delivered to
    that order (KeyNotFound, InvalidKeyState), at most REVEAL_LIMIT reveals per order in
    REVEAL_WINDOW_SECONDS (RateLimited, 429). The reveal itself is
    :func:`core.services.keys.reveal_key`: it sets ``revealed_at`` on the first reveal
    and writes the ``key.reveal`` audit event with the customer's address and browser,
    in the same transaction. Image keys answer with a signed, expiring link."""
    kid = _key_id(key_id)
    with session_scope(write=False) as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        key = _order_key(session, order, kid, lock=False)
        if key.status != KeyStatus.DELIVERED:
            raise _not_revealable(key)
        require_consent(order)
        order_number = order.number
        owner_id = order.customer_id
    if owner_id is not None:
        from core.services.twofactor import verify_second_factor

        verify_second_factor(customer_id=owner_id, code=second_factor)
    # Counted only for callers who own the order, so nobody else can use up its limit.
    check_rate(
        scope="key-reveal",
        subject=order_number,
        limit=REVEAL_LIMIT,
        window_seconds=REVEAL_WINDOW_SECONDS,
    )
    with session_scope() as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        key = _order_key(session, order, kid, lock=True)
        if key.status != KeyStatus.DELIVERED:
            raise _not_revealable(key)
        kind = key.kind
        plaintext = reveal_key(
            session=session, key_id=kid, actor=_actor(order, customer_id, ip, user_agent)
        )
    if kind == "image":
        from core.blobs import get_blob_store

        return RevealedKey(
            key_id=str(kid), kind=kind, code=None, image_url=get_blob_store().link(plaintext)
        )
    return RevealedKey(key_id=str(kid), kind=kind, code=plaintext, image_url=None)


class AlreadyReported(DomainError):
    code = "already_reported"
    http_status = 409


def report_faulty_key(
    *,
    number: str,
    key_id: str,
    message: str,
    access_token: str | None = None,
    customer_id: int | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> KeyReport:
    """ "This key does not work": open a case for the operators. Owns its transaction.

    The key must be delivered to the caller's order. One open report per key: reporting
    it again returns the open report unchanged. A new report raises an operator alert
    and leaves a ``key.report`` audit event; the order's status does not change (its
    other keys are fine) -- the operator replaces, revokes or rejects from the console.
    The message is required and at most REPORT_MESSAGE_MAX characters."""
    kid = _key_id(key_id)
    text = message.strip() if isinstance(message, str) else ""
    if not text:
        raise InvalidInput("Tell us what went wrong with this key.", field="message")
    if len(text) > REPORT_MESSAGE_MAX:
        raise InvalidInput(
            f"Please keep the message under {REPORT_MESSAGE_MAX} characters.", field="message"
        )
    with session_scope() as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        key = _order_key(session, order, kid, lock=True)  # the lock serialises reports
        existing = session.exec(
            select(KeyReport).where(
                KeyReport.key_id == kid, KeyReport.status == KeyReportStatus.OPEN
            )
        ).first()
        if existing is not None:
            return existing
        if key.status != KeyStatus.DELIVERED:
            raise AlreadyReported(
                "This key was already replaced or withdrawn; nothing to report.",
                key_id=str(kid),
            )
        line = session.get(OrderLine, key.order_line_id)
        assert line is not None
        report = KeyReport(
            key_id=kid,
            order_id=row_id(order.id),
            customer_id=order.customer_id,
            email=order.email,
            message=text,
        )
        session.add(report)
        session.flush()
        raise_alert(
            session=session,
            kind=AlertKind.NEEDS_ATTENTION,
            subject=f"key-report:{report.id}",
            message=(
                f"customer reports a faulty key on order {order.number} "
                f"({line.title}, {line.platform}, {line.region}); key {kid}"
            ),
        )
        record_audit(
            session=session,
            actor=_actor(order, customer_id, ip, user_agent),
            action="key.report",
            object_type="key",
            object_id=str(kid),
            data={"order": order.number, "report_id": report.id},
        )
        return report
