"""Console reads for the dashboard: paid orders and revenue, the fulfilment backlog,
attention, low stock, open alerts and reports, and each provider's open alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.models import (
    Alert,
    AlertKind,
    KeyReport,
    KeyReportStatus,
    Order,
    OrderStatus,
    utcnow,
)
from core.services.alerts import is_open
from core.services.low_stock import LowStock, low_stock_products

# Orders whose money counts as revenue.
_REVENUE = (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.NEEDS_ATTENTION)


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    provider: str
    problem: str | None  # the open provider_down or low_balance alert's message


@dataclass(frozen=True)
class DashboardFigures:
    orders_last_hour: int
    orders_last_day: int
    revenue_last_hour: dict[str, int]  # currency → minor units
    revenue_last_day: dict[str, int]
    awaiting_fulfilment: int  # paid, not yet fulfilled: the fulfilment backlog
    needs_attention: int
    low_stock: list[LowStock]
    open_alerts: int
    open_key_reports: int = 0
    providers: list[ProviderHealth] = field(default_factory=list)


def _orders_since(session: Session, since: datetime) -> tuple[int, dict[str, int]]:
    query = (
        select(col(Order.currency), func.count(), func.coalesce(func.sum(Order.total_minor), 0))
        .where(col(Order.paid_at) >= since, col(Order.status).in_(_REVENUE))
        .group_by(col(Order.currency))
    )
    count, revenue = 0, {}
    for currency, n, total in session.exec(query):
        count += int(n)
        revenue[currency] = int(total)
    return count, revenue


def dashboard_figures(
    *, session: Session, now: datetime | None = None, providers: list[str] | None = None
) -> DashboardFigures:
    """The dashboard's figures: paid orders and revenue in the last hour and day (by
    payment time), the fulfilment backlog, attention count, low stock, open alerts and
    faulty-key reports, and each of ``providers`` with its open provider alert."""
    now = now or utcnow()
    hour_n, hour_rev = _orders_since(session, now - timedelta(hours=1))
    day_n, day_rev = _orders_since(session, now - timedelta(days=1))
    by_status = dict(
        session.exec(
            select(col(Order.status), func.count())
            .where(col(Order.status).in_([OrderStatus.PAID, OrderStatus.NEEDS_ATTENTION]))
            .group_by(col(Order.status))
        ).all()
    )
    alerts = session.exec(select(func.count()).select_from(Alert).where(is_open())).one()
    reports = session.exec(
        select(func.count()).select_from(KeyReport).where(KeyReport.status == KeyReportStatus.OPEN)
    ).one()
    problems: dict[str, str] = {}
    if providers:
        for subject, message in session.exec(
            select(Alert.subject, Alert.message)
            .where(
                col(Alert.kind).in_([AlertKind.PROVIDER_DOWN, AlertKind.LOW_BALANCE]),
                col(Alert.subject).in_([f"provider:{p}" for p in providers]),
                is_open(),
            )
            .order_by(col(Alert.id))
        ):
            problems[subject.removeprefix("provider:")] = message
    return DashboardFigures(
        orders_last_hour=hour_n,
        orders_last_day=day_n,
        revenue_last_hour=hour_rev,
        revenue_last_day=day_rev,
        awaiting_fulfilment=int(by_status.get(OrderStatus.PAID, 0)),
        needs_attention=int(by_status.get(OrderStatus.NEEDS_ATTENTION, 0)),
        low_stock=low_stock_products(session=session),
        open_alerts=int(alerts),
        open_key_reports=int(reports),
        providers=[ProviderHealth(p, problems.get(p)) for p in providers or []],
    )
