"""Console reads for one customer, found from any of their orders: the account (or that
they bought as a guest), every order under their address or account, the keys of those
orders (masked), how often each was revealed and from where last, their faulty-key
reports and their store credit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from core.models import (
    AuditEvent,
    Customer,
    CustomerSession,
    Key,
    KeyReport,
    Order,
    OrderLine,
    row_id,
    utcnow,
)
from core.services.console_reads.inventory import mask_key_id
from core.services.console_reads.orders import OrderRow, _order_row
from core.services.credit import customer_balances

ORDERS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class CustomerKeyRow:
    order_number: str
    masked: str
    title: str
    status: str
    delivered_at: datetime | None
    revealed_at: datetime | None  # the customer's first reveal
    reveals: int  # reveals by the customer (operator reveals not counted)
    last_reveal_from: str  # address of the last reveal, "-" if none


@dataclass(frozen=True, slots=True)
class CustomerReportRow:
    id: int
    order_number: str
    masked: str
    status: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class CustomerProfile:
    """``customer_id`` None: a guest (orders under ``email`` only)."""

    email: str
    customer_id: int | None
    display_name: str
    created_at: datetime | None
    verified: bool
    two_factor: bool
    active_sessions: int
    credit: dict[str, int]  # store credit by currency, minor units
    orders: list[OrderRow]
    keys: list[CustomerKeyRow]
    reports: list[CustomerReportRow]

    @property
    def account_state(self) -> str:
        if self.customer_id is None:
            return "guest (no account)"
        parts = ["verified" if self.verified else "not verified"]
        parts.append("2FA on" if self.two_factor else "no 2FA")
        parts.append(f"{self.active_sessions} session(s) signed in")
        return ", ".join(parts)


def customer_of_order(*, session: Session, order_id: int) -> CustomerProfile | None:
    """The customer who placed order ``order_id`` (None: no such order)."""
    order = session.get(Order, order_id)
    if order is None:
        return None
    customer = (
        session.get(Customer, order.customer_id)
        if order.customer_id is not None
        else session.exec(select(Customer).where(Customer.email == order.email.lower())).first()
    )
    who = col(Order.email) == order.email
    if customer is not None:
        who = or_(who, col(Order.customer_id) == customer.id, col(Order.email) == customer.email)
    orders = list(
        session.exec(select(Order).where(who).order_by(col(Order.id).desc()).limit(ORDERS_SHOWN))
    )
    numbers = {row_id(o.id): o.number for o in orders}
    keys = list(
        session.exec(
            select(Key, OrderLine.order_id, OrderLine.title)
            .join(OrderLine, col(OrderLine.id) == col(Key.order_line_id))
            .where(col(OrderLine.order_id).in_(list(numbers)))
            .order_by(col(OrderLine.order_id).desc(), col(Key.id))
        )
    )
    reveals = _customer_reveals(session, [k.id for k, _, _ in keys])
    sessions = 0
    if customer is not None:
        sessions = session.exec(
            select(func.count())
            .select_from(CustomerSession)
            .where(
                CustomerSession.customer_id == customer.id,
                col(CustomerSession.revoked_at).is_(None),
                col(CustomerSession.expires_at) > utcnow(),
            )
        ).one()
    return CustomerProfile(
        email=customer.email if customer is not None else order.email,
        customer_id=None if customer is None else row_id(customer.id),
        display_name="" if customer is None else customer.display_name,
        created_at=None if customer is None else customer.created_at,
        verified=customer is not None and customer.verified_at is not None,
        two_factor=customer is not None and customer.totp_enabled_at is not None,
        active_sessions=sessions,
        credit={}
        if customer is None
        else customer_balances(session, customer_id=row_id(customer.id)),
        orders=[_order_row(o) for o in orders],
        keys=[
            CustomerKeyRow(
                order_number=numbers[order_id],
                masked=mask_key_id(k.id),
                title=title,
                status=k.status,
                delivered_at=k.delivered_at,
                revealed_at=k.revealed_at,
                reveals=reveals.get(str(k.id), (0, "-"))[0],
                last_reveal_from=reveals.get(str(k.id), (0, "-"))[1],
            )
            for k, order_id, title in keys
        ],
        reports=[
            CustomerReportRow(
                id=row_id(r.id),
                order_number=numbers.get(r.order_id, "?"),
                masked=mask_key_id(r.key_id),
                status=r.status,
                message=r.message,
                created_at=r.created_at,
            )
            for r in session.exec(
                select(KeyReport)
                .where(col(KeyReport.order_id).in_(list(numbers)))
                .order_by(col(KeyReport.id).desc())
            )
        ],
    )


def _customer_reveals(session: Session, key_ids: list[uuid.UUID]) -> dict[str, tuple[int, str]]:
    """By key id: how many times the customer revealed it, and the last one's address."""
    if not key_ids:
        return {}
    found: dict[str, tuple[int, str]] = {}
    for e in session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.object_type == "key",
            AuditEvent.action == "key.reveal",
            col(AuditEvent.object_id).in_([str(k) for k in key_ids]),
        )
        .order_by(col(AuditEvent.id))
    ):
        count, _ = found.get(e.object_id, (0, "-"))
        found[e.object_id] = (count + 1, e.ip or "unknown")
    return found
