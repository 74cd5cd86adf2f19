"""Operator actions on orders that need a human (the console's attention queue): retry,
buy from a chosen provider, assign from stock, refund, cancel, replace a faulty key; and
customers' faulty-key reports.

Every action is audited (invariant 7) and goes through the same services as the
automatic paths. Each action owns its transaction, as fulfilment does: the console never
opens a write transaction itself. Helpers that run inside one start with ``_`` and never
commit. Actions that call providers or payment services do so outside any transaction.

A key taken away from a fulfilled order (revoked on a faulty-key report or by hand)
leaves its line short: the order goes back to ``needs_attention`` with the reason, so an
operator replaces the key or refunds (issue #17, defect 1).
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlmodel import Session, col, select

from core import jobs
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.jobs import Job
from core.models import (
    Key,
    KeyReport,
    KeyReportStatus,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    row_id,
    utcnow,
)
from core.services import credit, locking
from core.services.audit import Actor, record_audit
from core.services.fulfilment import (
    FulfilmentResult,
    deliver_missing_from_stock,
    fulfil_order,
    line_needs,
)
from core.services.inventory import claim_keys, deliver_lines, mark_faulty, revoke_key
from core.services.key_returns import return_eligible
from core.services.keys import reveal_key
from core.services.orders import transition_order
from core.services.payment_methods import method_for_provider
from core.services.payments import amount_due, take_back_keys, take_money_back

S = OrderStatus


def _order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def retry_fulfilment(*, order_id: int, actor: Actor) -> None:
    """needs_attention → paid, and fulfilment queued after the commit."""
    with session_scope() as session:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason="operator retried fulfilment",
            expected_from=S.NEEDS_ATTENTION,
        )
        jobs.enqueue_after_commit(session, Job.FULFIL_ORDER, order_id)


def buy_from_provider(
    *, order_id: int, provider: str, actor: Actor, ignore_margin: bool = False
) -> FulfilmentResult:
    """Buy what the order lacks from ``provider`` now (the operator's choice; with
    ``ignore_margin`` even at a loss, up to twice our price)."""
    if provider not in get_settings().providers:
        raise InvalidInput(f"{provider} is not a configured provider")
    with session_scope() as session:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason=f"operator buys from {provider}",
            expected_from=S.NEEDS_ATTENTION,
        )
        record_audit(
            session=session,
            actor=actor,
            action="order.buy_from_provider",
            object_type="order",
            object_id=_order(session, order_id).number,
            data={"provider": provider, "ignore_margin": ignore_margin},
        )
    return fulfil_order(
        order_id=order_id, buy_from=provider, min_margin_percent=-100.0 if ignore_margin else None
    )


def _complete_if_whole(session: Session, order: Order, actor: Actor, reason: str) -> bool:
    if any(n.missing or n.on_the_way for n in line_needs(session, row_id(order.id))):
        return False
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.FULFILLED,
        actor=actor,
        reason=reason,
    )
    jobs.enqueue_after_commit(session, Job.SEND_ORDER_EMAIL, order.id, "delivered")
    return True


def assign_from_stock(*, order_id: int, actor: Actor) -> int:
    """Deliver what the order lacks from stock, each key audited as ``key.assign``; the
    order is fulfilled when nothing is missing any more. Returns how many keys. Owns its
    transaction."""
    with session_scope() as session:
        return _assign_from_stock(session, order_id, actor)


def _assign_from_stock(session: Session, order_id: int, actor: Actor) -> int:
    order = _order(session, order_id)
    if order.status not in (S.NEEDS_ATTENTION, S.PAID):
        raise InvalidInput(f"order {order.number} is {order.status}; nothing to assign")
    assigned = 0
    for line_id, keys in deliver_missing_from_stock(session=session, order_id=order_id).items():
        for key in keys:
            record_audit(
                session=session,
                actor=actor,
                action="key.assign",
                object_type="key",
                object_id=str(key.id),
                data={"order": order.number, "order_line_id": line_id},
            )
        assigned += len(keys)
    if assigned == 0:
        raise InvalidInput(f"no keys in stock for what order {order.number} lacks")
    if order.status == S.NEEDS_ATTENTION:
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.PAID,
            actor=actor,
            reason=f"operator assigned {assigned} keys from stock",
        )
    _complete_if_whole(session, order, actor, f"operator assigned {assigned} keys from stock")
    return assigned


def refund_order(
    *, order_id: int, actor: Actor, reason: str, to: Literal["source", "credit"] = "source"
) -> str:
    """Give an order's money back. Each part goes back to where it came from
    (``to="source"``), in this order:

    1. the card part, through the payment method that took it
       (:func:`core.services.payment_methods.method_for_provider`): with Stripe, a
       refund is created and Stripe's ``charge.refunded`` webhook does the rest (with the
       built-in test payments the same Stripe-format event goes through the same webhook
       path); a crypto payment is refunded by hand in the NOWPayments dashboard and
       recorded here;
    2. then, in the transaction that marks the order refunded (the webhook's, or this
       one when no card paid), each gift card gets back what it paid and the customer's
       credit what credit paid (:func:`core.services.credit.return_order_tenders`).

    ``to="credit"`` (a signed-in customer's order only) refunds everything — card part,
    gift cards and credit — as store credit at once, without calling the payment
    provider. Either way the keys never revealed come back (DESIGN §5.5), and no part
    ever goes back twice (the ledger's idempotency keys)."""
    if not reason.strip():
        raise InvalidInput("a refund needs a reason")
    if to not in ("source", "credit"):
        raise InvalidInput("refund to 'source' or 'credit'", field="to")
    with session_scope() as session:
        order = _order(session, order_id)
        if order.status not in (S.PAID, S.NEEDS_ATTENTION, S.FULFILLED, S.DISPUTED):
            raise InvalidInput(
                f"order {order.number} is {order.status}; there is no payment to refund"
            )
        number = order.number
        card_part = amount_due(session, order)
        if to == "credit" or card_part == 0:
            if to == "credit" and order.customer_id is None:
                raise InvalidInput(
                    f"order {number} was placed by a guest: there is no account to credit; "
                    "refund it to its card"
                )
            record_audit(
                session=session,
                actor=actor,
                action="order.refund",
                object_type="order",
                object_id=number,
                data={"reason": reason, "payment": order.payment_reference, "to": to},
            )
            if to == "credit":
                credit.return_order_tenders(
                    session=session,
                    order=order,
                    reason=credit.Reason.REFUND_TO_CREDIT,
                    actor=actor,
                    to_credit=True,
                )
                credit.card_part_to_credit(session=session, order=order, actor=actor)
            what = "refund to store credit" if to == "credit" else "refund"
            return take_money_back(session, order, S.REFUNDED, what, f"{to}:{number}", actor)
        if not order.payment_reference:
            raise InvalidInput(f"order {order.number} has no payment reference")
        reference = order.payment_reference
        paid_with = method_for_provider(order.payment_provider)
        record_audit(
            session=session,
            actor=actor,
            action="order.refund",
            object_type="order",
            object_id=number,
            data={"reason": reason, "payment": reference, "to": to},
        )
    return paid_with.refund(number=number, reference=reference, actor=actor)


def cancel_order(*, order_id: int, actor: Actor, reason: str) -> Order:
    """Cancel an order that needs attention (fraud, a customer's request): keys never
    revealed come back, revealed ones are flagged. Money already taken is refunded
    separately (refund_order); cancelling does not move money. Owns its transaction."""
    if not reason.strip():
        raise InvalidInput("a cancellation needs a reason")
    with session_scope() as session:
        order = _order(session, order_id)
        counts = take_back_keys(
            session=session, order=order, actor=actor, reason=f"cancelled: {reason}"
        )
        cancelled = transition_order(
            session=session,
            order_id=order_id,
            to_status=S.CANCELLED,
            actor=actor,
            reason=reason,
            data=counts,
        )
        jobs.enqueue_after_commit(session, Job.SEND_ORDER_EMAIL, order_id, "cancelled")
        return cancelled


def replace_faulty_key(*, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    """Quarantine a key reported faulty and deliver a replacement from stock to the same
    order line (both audited). Raises InsufficientStock, changing nothing, when stock has
    none: buy one with buy_from_provider after marking the key faulty yourself. Owns its
    transaction."""
    with session_scope() as session:
        return _replace_faulty_key(session, key_id, actor, reason)


def _replace_faulty_key(session: Session, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    key = session.get(Key, key_id)
    if key is None or key.order_line_id is None:
        raise NotFound(f"key {key_id} is not delivered to any order")
    line = session.get(OrderLine, key.order_line_id)
    assert line is not None
    [replacement] = claim_keys(
        session=session, product_id=line.product_id, quantity=1, line_id=row_id(line.id)
    )
    mark_faulty(session=session, key_id=key_id, actor=actor, reason=reason)
    deliver_lines(session=session, line_ids=[row_id(line.id)])
    record_audit(
        session=session,
        actor=actor,
        action="key.assign",
        object_type="key",
        object_id=str(replacement.id),
        data={"replaces": str(key_id), "order_line_id": line.id},
    )
    jobs.enqueue_after_commit(
        session, Job.SEND_ORDER_EMAIL, line.order_id, "replaced", _mask(key_id)
    )
    return session.exec(select(Key).where(col(Key.id) == replacement.id)).one()


def revoke_delivered_key(*, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    """Revoke a key delivered to an order (chargeback, a key found bad): it becomes
    ``revoked`` and never returns to stock (``key.revoke`` audited). When that leaves a
    fulfilled order short, the order moves to ``needs_attention`` with the reason, so an
    operator replaces the key or refunds. An empty reason is InvalidInput and changes
    nothing. Owns its transaction."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("revoking a key needs a reason")
    with session_scope() as session:
        return _revoke_delivered_key(session, key_id, actor, reason)


def _revoke_delivered_key(session: Session, key_id: uuid.UUID, actor: Actor, reason: str) -> Key:
    key = revoke_key(session=session, key_id=key_id, actor=actor, reason=reason)
    if key.order_line_id is not None:
        _attention_if_short(session, key, actor, f"key {_mask(key_id)} revoked: {reason}")
        line = session.get(OrderLine, key.order_line_id)
        assert line is not None
        jobs.enqueue_after_commit(
            session, Job.SEND_ORDER_EMAIL, line.order_id, "revoked", _mask(key_id)
        )
    return key


def _mask(key_id: uuid.UUID) -> str:
    text = str(key_id)
    return f"{text[:4]}…{text[-4:]}"


def _attention_if_short(session: Session, key: Key, actor: Actor, what: str) -> bool:
    """A fulfilled order whose lines lack keys after ``what`` goes to needs_attention,
    the reason naming the product and what it lacks. Runs in the caller's transaction."""
    line = session.get(OrderLine, key.order_line_id)
    assert line is not None
    order = _order(session, line.order_id)
    if order.status != S.FULFILLED:
        return False
    lacking = sum(n.missing for n in line_needs(session, row_id(order.id)))
    if lacking == 0:
        return False
    transition_order(
        session=session,
        order_id=row_id(order.id),
        to_status=S.NEEDS_ATTENTION,
        actor=actor,
        reason=(f"{what}; {line.title} lacks {lacking} key(s): replace from stock, buy or refund"),
        expected_from=S.FULFILLED,
    )
    return True


def reveal_key_for_operator(*, key_id: uuid.UUID, actor: Actor) -> str:
    """Show an operator a delivered key's code. Audited as ``key.operator_reveal``; it
    never counts as the customer's reveal (``revealed_at`` is left as it is), so the key
    can still go back to stock on a refund if the customer never saw it. Owns its
    transaction (the audit event lands with the reveal)."""
    with session_scope() as session:
        return reveal_key(session=session, key_id=key_id, actor=actor)


def revealable_keys(*, session: Session, order_id: int) -> list[Key]:
    lines = [
        row_id(ln.id)
        for ln in session.exec(select(OrderLine).where(OrderLine.order_id == order_id))
    ]
    return list(
        session.exec(
            select(Key).where(col(Key.order_line_id).in_(lines), Key.status == KeyStatus.DELIVERED)
        )
    )


# -- faulty-key reports ---------------------------------------------------------------------

REPORT_ACTIONS = ("replace", "revoke", "reject")


def resolve_key_report(*, report_id: int, action: str, actor: Actor, note: str) -> KeyReport:
    """Close an open faulty-key report, with the operator's ``note``:

    - ``replace``: the key is quarantined as faulty and a key from stock is delivered to
      the same order line (:func:`replace_faulty_key`; InsufficientStock, changing
      nothing, when stock has none) → ``replaced``; a Kinguin key never revealed and
      within Kinguin's 24-hour return window is then returned to Kinguin for a refund
      (the ``return_faulty_key`` job, :mod:`core.services.key_returns`);
    - ``revoke``: the key is revoked (:func:`core.services.inventory.revoke_key`), for a
      refund or when no replacement will come → ``revoked``;
    - ``reject``: the operator found the key good; nothing happens to it → ``rejected``.

    The report gets its status, ``resolution`` (what was done, and the note),
    ``resolved_at`` and ``resolved_by``; ``key_report.resolve`` is audited. A report that
    is not open any more, an unknown action or an empty note is refused (InvalidInput)
    and nothing changes. A revoke that leaves the order short moves it to
    ``needs_attention`` (:func:`revoke_delivered_key`). Owns its transaction.
    """
    if action not in REPORT_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: one of {', '.join(REPORT_ACTIONS)}")
    note = note.strip()
    if not note:
        raise InvalidInput("resolving a report needs a note")
    with session_scope() as session:
        return _resolve_key_report(session, report_id, action, actor, note)


def _resolve_key_report(
    session: Session, report_id: int, action: str, actor: Actor, note: str
) -> KeyReport:
    report = locking.lock_key_report(session, report_id)
    if report is None:
        raise NotFound(f"faulty-key report #{report_id} does not exist")
    if report.status != KeyReportStatus.OPEN:
        raise InvalidInput(
            f"faulty-key report #{report_id} is already {report.status}", status=report.status
        )
    reason = f"faulty-key report #{report_id}: {note}"
    data: dict[str, object] = {"action": action, "key_id": str(report.key_id), "note": note}
    if action == "replace":
        new = _replace_faulty_key(session, report.key_id, actor, reason)
        report.status = KeyReportStatus.REPLACED
        report.resolution = f"replaced by key {new.id}: {note}"
        data["replacement_key_id"] = str(new.id)
        if return_eligible(session=session, key_id=report.key_id) is not None:
            # never revealed, bought from Kinguin within 24 h: claimed back after the commit
            jobs.enqueue_after_commit(session, Job.RETURN_FAULTY_KEY, str(report.key_id))
            data["returned_to_supplier"] = True
    elif action == "revoke":
        _revoke_delivered_key(session, report.key_id, actor, reason)
        report.status = KeyReportStatus.REVOKED
        report.resolution = f"key revoked: {note}"
    else:
        report.status = KeyReportStatus.REJECTED
        report.resolution = f"rejected: {note}"
        jobs.enqueue_after_commit(
            session, Job.SEND_ORDER_EMAIL, report.order_id, "report_rejected", f"#{report_id}"
        )
    report.resolved_at = utcnow()
    report.resolved_by = actor.id
    session.add(report)
    record_audit(
        session=session,
        actor=actor,
        action="key_report.resolve",
        object_type="key_report",
        object_id=report_id,
        data={**data, "status": report.status, "order_id": report.order_id},
    )
    session.flush()
    return report
