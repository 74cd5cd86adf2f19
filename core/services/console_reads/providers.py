"""Console reads for providers: health from what the shop already records, offers and
their mapping, and balances asked of every provider at once (bounded by a timeout)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.errors import DomainError
from core.models import (
    Alert,
    AlertKind,
    Product,
    ProviderOffer,
    ProviderPurchase,
    PurchaseStatus,
    row_id,
    utcnow,
)
from core.providers.base import ProviderClient


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One call to a provider whose outcome the shop knows: ``what`` (purchase, sync,
    balance check, alert), when, and the error (None: it succeeded)."""

    what: str
    at: datetime
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def provider_health(calls: Sequence[ProviderCall | None]) -> tuple[str, ProviderCall | None]:
    """A provider's health is what its most recent call says: ``ok`` when it succeeded,
    ``failing`` when it did not, ``unknown`` with no call at all. Returns the health and
    the call it comes from (show its time with it). The one rule for the console."""
    known = [c for c in calls if c is not None]
    if not known:
        return "unknown", None
    latest = max(known, key=lambda c: c.at)
    return ("ok" if latest.ok else "failing"), latest


@dataclass(frozen=True, slots=True)
class ProviderStatusRow:
    provider: str
    health: str  # from the recorded calls only: "ok", "failing", "unknown"
    last_success: datetime | None  # last completed purchase or sync
    last_error_at: datetime | None
    last_error: str | None
    last_sync: datetime | None
    offers: int
    mapped: int
    in_stock: int  # mapped offers with stock
    calls: tuple[ProviderCall, ...] = ()  # the latest recorded call of each kind

    @property
    def unmapped(self) -> int:
        return self.offers - self.mapped


def provider_overview(*, session: Session, providers: list[str]) -> list[ProviderStatusRow]:
    """Per provider: the latest recorded calls (completed purchase, sync, failed
    purchase, provider_down alert), the health they give (:func:`provider_health`), the
    last sync, and its offers mapped, unmapped and in stock."""
    offers = {
        name: (int(n), int(mapped or 0), int(stocked or 0), last)
        for name, n, mapped, stocked, last in session.execute(
            sa_select(
                col(ProviderOffer.provider),
                func.count(),
                func.count(col(ProviderOffer.product_id)),
                func.sum(
                    case(
                        (
                            (col(ProviderOffer.product_id).is_not(None))
                            & (col(ProviderOffer.stock) > 0),
                            1,
                        ),
                        else_=0,
                    )
                ),
                func.max(ProviderOffer.last_synced_at),
            )
            .where(col(ProviderOffer.provider).in_(providers))
            .group_by(ProviderOffer.provider)
        )
    }
    rows = []
    for name in providers:
        n, mapped, stocked, last_sync = offers.get(name, (0, 0, 0, None))
        bought = session.exec(
            select(func.max(ProviderPurchase.updated_at)).where(
                ProviderPurchase.provider == name,
                ProviderPurchase.status == PurchaseStatus.COMPLETED,
            )
        ).one()
        failed = session.exec(
            select(ProviderPurchase.updated_at, ProviderPurchase.error)
            .where(
                ProviderPurchase.provider == name,
                ProviderPurchase.status == PurchaseStatus.FAILED,
            )
            .order_by(col(ProviderPurchase.updated_at).desc())
            .limit(1)
        ).first()
        alert = session.exec(
            select(Alert)
            .where(Alert.kind == AlertKind.PROVIDER_DOWN, Alert.subject == f"provider:{name}")
            .order_by(col(Alert.id).desc())
            .limit(1)
        ).first()
        calls = tuple(
            call
            for call in (
                ProviderCall("purchase", bought) if bought is not None else None,
                ProviderCall("sync", last_sync) if last_sync is not None else None,
                ProviderCall("purchase", failed[0], failed[1] or "purchase failed")
                if failed is not None
                else None,
                ProviderCall("alert", alert.created_at, alert.message)
                if alert is not None
                else None,
            )
            if call is not None
        )
        errors = [c for c in calls if not c.ok]
        last_error = max(errors, key=lambda c: c.at) if errors else None
        successes = [c.at for c in calls if c.ok]
        last_success = max(successes) if successes else None
        health, _ = provider_health(calls)
        rows.append(
            ProviderStatusRow(
                provider=name,
                health=health,
                last_success=last_success,
                last_error_at=last_error.at if last_error else None,
                last_error=last_error.error if last_error else None,
                last_sync=last_sync,
                offers=n,
                mapped=mapped,
                in_stock=stocked,
                calls=calls,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: int
    external_id: str
    name: str
    product: str | None
    cost_minor: int | None
    currency: str
    stock: int
    last_synced_at: datetime | None


def provider_offers(
    *, session: Session, provider: str, after_id: int | None = None, limit: int = 100
) -> list[OfferRow]:
    """One page of a provider's offers (by id) with the product each is mapped to."""
    query = (
        select(ProviderOffer, Product.title)
        .join(Product, col(Product.id) == col(ProviderOffer.product_id), isouter=True)
        .where(ProviderOffer.provider == provider)
    )
    if after_id is not None:
        query = query.where(col(ProviderOffer.id) > after_id)
    return [
        OfferRow(
            id=row_id(o.id),
            external_id=o.external_id,
            name=o.name,
            product=title,
            cost_minor=o.cost_minor,
            currency=o.currency,
            stock=o.stock,
            last_synced_at=o.last_synced_at,
        )
        for o, title in session.exec(query.order_by(col(ProviderOffer.id)).limit(limit))
    ]


@dataclass(frozen=True, slots=True)
class BalanceRow:
    provider: str
    amount_minor: int | None
    currency: str | None
    error: str | None  # why there is no balance: the provider's error or the timeout
    checked_at: datetime | None = None

    @property
    def call(self) -> ProviderCall | None:
        """The balance check as a provider call (for :func:`provider_health`)."""
        if self.checked_at is None:
            return None
        return ProviderCall("balance check", self.checked_at, self.error)


def provider_balances(
    clients: Mapping[str, ProviderClient],
    *,
    timeout: float = 5.0,
    now: Callable[[], datetime] = utcnow,
) -> list[BalanceRow]:
    """Ask every provider for its balance at once and wait at most ``timeout`` seconds
    in all. Never raises: a failure or a provider that did not answer in time is a row
    with ``error``. Each row is stamped ``checked_at`` by ``now``. Calls the providers;
    touches no database."""
    if not clients:
        return []
    checked_at = now()
    pool = ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="balance")
    futures = {name: pool.submit(client.balance) for name, client in clients.items()}
    wait_futures(list(futures.values()), timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    rows = []
    for name, future in futures.items():
        if not future.done():
            rows.append(BalanceRow(name, None, None, f"no answer in {timeout:g} s", checked_at))
            continue
        exc = future.exception()
        if exc is None:
            balance = future.result()
            rows.append(BalanceRow(name, balance.amount_minor, balance.currency, None, checked_at))
        elif isinstance(exc, DomainError):
            rows.append(BalanceRow(name, None, None, exc.message, checked_at))
        else:
            rows.append(BalanceRow(name, None, None, f"{type(exc).__name__}", checked_at))
    return rows


def provider_balances_from(
    get_clients: Callable[[], Mapping[str, ProviderClient]],
    *,
    providers: Sequence[str],
    timeout: float = 5.0,
    now: Callable[[], datetime] = utcnow,
) -> list[BalanceRow]:
    """:func:`provider_balances` for clients that still have to be built: when building
    them fails (missing credentials, say), every provider gets a row with that error."""
    try:
        clients = get_clients()
    except DomainError as exc:
        checked_at = now()
        return [BalanceRow(p, None, None, exc.message, checked_at) for p in providers]
    return provider_balances(clients, timeout=timeout, now=now)
