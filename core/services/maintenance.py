"""Scheduled upkeep (run by periodic tasks, one scheduler per deployment):

- :func:`reconcile`: paid orders not fulfilled after ``KEYSHOP_RECONCILE_AFTER_SECONDS``
  and purchases left ``requested``/``unknown``/``pending`` are handed to fulfilment again
  (which asks the providers by our reference before anything else); a paid order still
  not fulfilled after ``KEYSHOP_ATTENTION_AFTER_MINUTES`` with nothing on its way goes to
  ``needs_attention`` — so a paid order always ends fulfilled or in front of an operator
  within a bounded time (invariant 2), even if its worker died.
  Authenticated webhooks left unprocessed (their hand-over to the queue was lost, or
  their worker died) are queued again (:func:`core.services.webhooks.requeue_unprocessed`).
- :func:`expire_unpaid_orders`: ``pending_payment`` orders older than
  ``KEYSHOP_UNPAID_ORDER_MINUTES`` are cancelled — never one with a payment record
  (``payment_reference``) or an authenticated payment webhook naming it that is not yet
  acted on: reconciliation acts on that first. The cancellation gives back the keys
  and partner units their checkout reserved (``orders.transition_order``), so this
  setting is the reservation's lifetime.
- :func:`low_stock_alerts` and :func:`balance_alerts` (with a forecast: warn when the
  balance covers less than ``KEYSHOP_BALANCE_WARN_HOURS`` of the last day's spend, or is
  below ``KEYSHOP_BALANCE_FLOOR_MINOR``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from core import jobs, metrics
from core.config import get_settings
from core.db import session_scope
from core.errors import ConcurrentUpdate, InvalidTransition
from core.jobs import Job
from core.models import (
    Alert,
    AlertKind,
    Order,
    OrderLine,
    OrderStatus,
    ProviderPurchase,
    PurchaseStatus,
    utcnow,
)
from core.money import format_money
from core.providers.base import ProviderClient, ProviderError
from core.providers.nowpayments import NowPaymentsError
from core.services import nowpayments, webhooks
from core.services.alerts import is_open, raise_alert, resolve_alerts
from core.services.audit import Actor
from core.services.low_stock import low_stock_products
from core.services.orders import transition_order

log = logging.getLogger(__name__)
S = OrderStatus
P = PurchaseStatus
SYSTEM = Actor.system("scheduler")


@dataclass
class ReconcileReport:
    requeued: list[int] = field(default_factory=list)
    to_attention: list[int] = field(default_factory=list)
    webhooks: list[int] = field(default_factory=list)  # unprocessed webhooks queued again
    crypto: list[str] = field(default_factory=list)  # crypto payments looked up at NOWPayments


def reconcile(*, now: datetime | None = None) -> ReconcileReport:
    settings = get_settings()
    now = now or utcnow()
    stale = now - timedelta(seconds=settings.reconcile_after_seconds)
    overdue = now - timedelta(minutes=settings.attention_after_minutes)
    report = ReconcileReport()
    with session_scope() as session:
        report.webhooks = webhooks.requeue_unprocessed(session=session, now=now)
    with session_scope() as session:
        paid = session.exec(
            select(Order)
            .where(
                Order.status == S.PAID,
                col(Order.paid_at) < stale,
                (col(Order.fulfilment_lease_until).is_(None))
                | (col(Order.fulfilment_lease_until) < now),
            )
            .order_by(col(Order.id))
            .limit(500)
        ).all()
        open_purchase_orders = set(
            session.exec(
                select(OrderLine.order_id)
                .join(ProviderPurchase, col(ProviderPurchase.order_line_id) == OrderLine.id)
                .where(
                    col(ProviderPurchase.status).in_([P.REQUESTED, P.UNKNOWN, P.PENDING]),
                    col(ProviderPurchase.updated_at) < stale,
                )
            ).all()
        )
        waiting = set(
            session.exec(
                select(OrderLine.order_id)
                .join(ProviderPurchase, col(ProviderPurchase.order_line_id) == OrderLine.id)
                .where(ProviderPurchase.status == P.PENDING)
            ).all()
        )
        for order in paid:
            assert order.id is not None and order.paid_at is not None
            if order.paid_at < overdue and order.id not in waiting:
                reason = (
                    f"paid {int((now - order.paid_at).total_seconds() // 60)} minutes ago and still not "
                    "fulfilled; check its provider purchases and retry or assign keys by hand"
                )
                try:
                    transition_order(
                        session=session,
                        order_id=order.id,
                        to_status=S.NEEDS_ATTENTION,
                        actor=SYSTEM,
                        reason=reason,
                        expected_from=S.PAID,
                    )
                except (ConcurrentUpdate, InvalidTransition):
                    continue
                raise_alert(
                    session=session,
                    kind=AlertKind.NEEDS_ATTENTION,
                    subject=f"order:{order.number}",
                    message=reason,
                )
                report.to_attention.append(order.id)
            else:
                report.requeued.append(order.id)
        for order_id in sorted(
            open_purchase_orders - set(report.requeued) - set(report.to_attention)
        ):
            report.requeued.append(order_id)
        for order_id in report.requeued:
            jobs.enqueue_after_commit(session, Job.FULFIL_ORDER, order_id)
    report.crypto = look_up_crypto_payments(now=now)
    if report.requeued or report.to_attention or report.webhooks:
        log.info(
            "reconcile: requeued %s, needs attention %s, webhooks queued again %s",
            report.requeued,
            report.to_attention,
            report.webhooks,
        )
    return report


def look_up_crypto_payments(*, now: datetime) -> list[str]:
    """Ask NOWPayments about crypto payments no IPN has moved for a while, and pass each
    answer through the webhook inbox like an IPN (signed with our IPN secret; the same
    answer as a later IPN is the same event), so a lost IPN never strands a paid order.
    Returns the payment ids asked about."""
    with session_scope() as session:
        due = nowpayments.payments_to_look_up(session=session, now=now)
    for payment_id in due:
        try:
            signed = nowpayments.signed_lookup(payment_id)
        except NowPaymentsError as exc:
            log.warning("could not look up crypto payment %s: %s", payment_id, exc)
            continue
        if signed is None:
            break
        body, headers = signed
        try:
            webhooks.receive_webhook(
                source=nowpayments.SOURCE, headers=headers, body=body, remote_addr="status-lookup"
            )
        except webhooks.WebhookRejected as exc:
            log.warning("crypto payment %s: NOWPayments' answer refused: %s", payment_id, exc)
    return due


def expire_unpaid_orders(*, now: datetime | None = None) -> list[int]:
    """Cancel orders left unpaid for ``KEYSHOP_UNPAID_ORDER_MINUTES`` (their reservation
    goes back), except one whose payment is stored but not yet acted on, or whose crypto
    payment is still under way (:func:`nowpayments.orders_with_live_crypto_payments`)."""
    settings = get_settings()
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.unpaid_order_minutes)
    expired = []
    with session_scope() as session:
        waiting_payments = webhooks.unprocessed_payment_subjects(session=session)
        crypto_under_way = nowpayments.orders_with_live_crypto_payments(session=session, now=now)
        rows = session.exec(
            select(Order.id, Order.number)
            .where(
                Order.status == S.PENDING_PAYMENT,
                col(Order.created_at) < cutoff,
                col(Order.payment_reference).is_(None),
            )
            .order_by(col(Order.id))
            .limit(1000)
        ).all()
        ids = [
            order_id
            for order_id, number in rows
            if number not in waiting_payments and order_id not in crypto_under_way
        ]
        for order_id in ids:
            assert order_id is not None
            try:
                with session.begin_nested():
                    transition_order(
                        session=session,
                        order_id=order_id,
                        to_status=S.CANCELLED,
                        actor=SYSTEM,
                        reason=f"not paid within {settings.unpaid_order_minutes} minutes",
                        expected_from=S.PENDING_PAYMENT,
                    )
                expired.append(order_id)
            except (ConcurrentUpdate, InvalidTransition):
                continue  # paid meanwhile
    return expired


def low_stock_alerts() -> int:
    """Raise a low_stock alert for each product below its threshold, and close the open
    ones of products no longer low (restocked, threshold lowered)."""
    with session_scope() as session:
        low = low_stock_products(session=session)
        still_low = {f"product:{item.product_id}" for item in low}
        for (subject,) in session.execute(
            select(Alert.subject).where(
                Alert.kind == "low_stock",
                is_open(),
            )
        ).all():
            if subject not in still_low:
                resolve_alerts(
                    session=session,
                    subject=subject,
                    kinds=("low_stock",),
                    resolution="stock is back above the threshold",
                )
        for item in low:
            raise_alert(
                session=session,
                kind=AlertKind.LOW_STOCK,
                subject=f"product:{item.product_id}",
                message=f"{item.title} ({item.slug}): {item.available} keys left, threshold {item.threshold}",
            )
        return len(low)


@dataclass
class BalanceCheck:
    provider: str
    balance_minor: int | None
    currency: str | None
    spend_per_hour_minor: float
    hours_left: float | None
    alert: str | None


def balance_alerts(
    *, clients: Mapping[str, ProviderClient], now: datetime | None = None
) -> list[BalanceCheck]:
    settings = get_settings()
    now = now or utcnow()
    since = now - timedelta(hours=24)
    checks = []
    for name, client in clients.items():
        with session_scope(write=False) as session:
            spent = session.exec(
                select(
                    func.coalesce(
                        func.sum(
                            col(ProviderPurchase.unit_cost_minor) * col(ProviderPurchase.quantity)
                        ),
                        0,
                    )
                ).where(
                    ProviderPurchase.provider == name,
                    ProviderPurchase.status == P.COMPLETED,
                    col(ProviderPurchase.updated_at) >= since,
                )
            ).one()
        per_hour = float(spent or 0) / 24.0
        try:
            balance = client.balance()
        except ProviderError as exc:
            with session_scope() as session:
                raise_alert(
                    session=session,
                    kind=AlertKind.PROVIDER_DOWN,
                    subject=f"provider:{name}",
                    message=f"{name} did not answer a balance check: {exc.message}",
                    severity="error",
                )
            checks.append(
                BalanceCheck(name, None, None, per_hour, None, f"unreachable: {exc.code}")
            )
            continue
        with session_scope() as session:
            resolve_alerts(
                session=session,
                subject=f"provider:{name}",
                kinds=("provider_down",),
                resolution=f"{name} answered a balance check",
            )
        hours_left = balance.amount_minor / per_hour if per_hour > 0 else None
        metrics.PROVIDER_BALANCE.labels(name, balance.currency).set(balance.amount_minor)
        if hours_left is not None:
            metrics.PROVIDER_HOURS_LEFT.labels(name).set(hours_left)
        alert = None
        shown = format_money(balance.amount_minor, balance.currency, style="code")
        if balance.amount_minor < settings.balance_floor_minor:
            alert = f"{name} balance {shown} is below the floor"
        elif hours_left is not None and hours_left < settings.balance_warn_hours:
            alert = (
                f"{name} balance {shown} covers about "
                f"{hours_left:.1f} hours at the last day's spend"
            )
        with session_scope() as session:
            if alert:
                raise_alert(
                    session=session,
                    kind=AlertKind.LOW_BALANCE,
                    subject=f"provider:{name}",
                    message=alert,
                )
            else:
                resolve_alerts(
                    session=session,
                    subject=f"provider:{name}",
                    kinds=("low_balance",),
                    resolution=f"{name} balance {shown} is enough again",
                )
        checks.append(
            BalanceCheck(name, balance.amount_minor, balance.currency, per_hour, hours_left, alert)
        )
    return checks


def refresh_stock_flags() -> int:
    """Correct every product's ``in_stock`` listing flag that differs from its keys and
    offers (run every minute by the scheduler): a claim that takes a product's last key
    leaves the flag set (claims are the hot path), so a sold-out product stays in "in
    stock" listings for at most about a minute. Returns how many flags changed."""
    from core.services import catalogue

    with session_scope() as session:
        return catalogue.refresh_stock_flags(session=session)
