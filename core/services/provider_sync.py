"""Provider catalogue, price and stock: the offers we may buy from.

- :func:`sync_offers` pulls a provider's offers (Kinguin with ``updatedSince``; the
  CodesWholesale price list whole) and upserts them by (provider, external id).
- :func:`apply_stock_change` applies one push notification (Kinguin ``product.update``,
  CodesWholesale ``STOCK``). Notifications may arrive out of order: a change whose
  ``updatedAt`` is older than what we hold is ignored.
- New offers are mapped to our product when the offer's name equals a product's title
  (case and spacing ignored); anything else waits for an operator to map it. A wrong
  automatic mapping would sell the wrong game, so nothing fuzzier is attempted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from core.db import session_scope
from core.models import Product, ProviderOffer, utcnow
from core.providers.base import Offer, ProviderClient

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    provider: str
    seen: int = 0
    created: int = 0
    updated: int = 0
    mapped: int = 0
    stale_ignored: int = 0


def _title_key(text: str) -> str:
    return " ".join(text.lower().split())


def _product_ids_by_title(session: Session) -> dict[str, int]:
    rows = session.exec(select(Product.id, Product.title).where(Product.active == True)).all()  # noqa: E712
    return {_title_key(title): pid for pid, title in rows if pid is not None}


def upsert_offer(
    session: Session,
    offer: Offer,
    *,
    titles: dict[str, int] | None = None,
    report: SyncReport | None = None,
) -> ProviderOffer:
    """Insert or refresh one offer. Runs in the caller's transaction."""
    row = session.exec(
        select(ProviderOffer).where(
            ProviderOffer.provider == offer.provider, ProviderOffer.external_id == offer.external_id
        )
    ).first()
    now = utcnow()
    if row is None:
        row = ProviderOffer(provider=offer.provider, external_id=offer.external_id)
        if report:
            report.created += 1
    else:
        if (
            offer.updated_at
            and row.provider_updated_at
            and offer.updated_at < row.provider_updated_at
        ):
            if report:
                report.stale_ignored += 1
            return row
        if report:
            report.updated += 1
    row.name = offer.name[:300]
    row.cost_minor = offer.cost_minor
    row.currency = offer.currency
    row.stock = max(0, offer.stock)
    row.is_preorder = offer.is_preorder
    row.release_date = offer.release_date
    row.provider_updated_at = offer.updated_at or row.provider_updated_at
    row.last_synced_at = now
    if row.product_id is None:
        titles = titles if titles is not None else _product_ids_by_title(session)
        product_id = titles.get(_title_key(offer.name))
        if product_id is not None:
            row.product_id = product_id
            if report:
                report.mapped += 1
    session.add(row)
    return row


def sync_offers(
    *, client: ProviderClient, updated_since: datetime | None = None, batch: int = 500
) -> SyncReport:
    """Pull offers from ``client`` and store them, committing every ``batch`` offers.
    Owns its transactions."""
    report = SyncReport(provider=client.name)
    pending: list[Offer] = []

    def flush() -> None:
        with session_scope() as session:
            titles = _product_ids_by_title(session)
            for item in pending:
                upsert_offer(session, item, titles=titles, report=report)
        pending.clear()

    for offer in client.list_offers(updated_since=updated_since):
        report.seen += 1
        pending.append(offer)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    log.info("synced %s: %s", client.name, report)
    return report


def last_synced(*, session: Session, provider: str) -> datetime | None:
    return session.exec(
        select(func.max(ProviderOffer.last_synced_at)).where(ProviderOffer.provider == provider)
    ).one()


def apply_stock_change(
    *,
    session: Session,
    provider: str,
    external_id: str,
    stock: int | None,
    cost_minor: int | None = None,
    updated_at: datetime | None = None,
) -> str:
    """Apply one pushed stock/price change. Older than what we hold → ignored. Runs in the
    caller's transaction."""
    row = session.exec(
        select(ProviderOffer).where(
            ProviderOffer.provider == provider, ProviderOffer.external_id == external_id
        )
    ).first()
    if row is None:
        return f"{provider} {external_id}: not an offer we know yet (the next sync picks it up)"
    if updated_at and row.provider_updated_at and updated_at <= row.provider_updated_at:
        return f"{provider} {external_id}: ignored, older than what we hold"
    changes: dict[str, Any] = {}
    if stock is not None:
        row.stock = max(0, stock)
        changes["stock"] = row.stock
    if cost_minor is not None:
        row.cost_minor = cost_minor
        changes["cost_minor"] = cost_minor
    if updated_at:
        row.provider_updated_at = updated_at
    row.last_synced_at = utcnow()
    session.add(row)
    return f"{provider} {external_id}: {changes}"
