"""Provider catalogue, price and stock: the offers we may buy from.

- :func:`sync_offers` pulls a provider's offers (Kinguin with ``updatedSince``; the
  CodesWholesale price list whole) and upserts them by (provider, external id).
- :func:`apply_stock_change` applies one push notification (Kinguin ``product.update``,
  CodesWholesale ``STOCK``). Notifications may arrive out of order: a change whose
  ``updatedAt`` is older than what we hold is ignored.
- New offers are mapped to our product when the offer's title (Kinguin: ``originalName``,
  since its ``name`` ends with the platform, "... Steam CD Key") equals a product's title
  (case and spacing ignored) and, where the provider states them, its platform and region
  match too (``REGION FREE``/``WORLDWIDE`` count as ``GLOBAL``, ``EUROPE`` as ``EU``…).
  An offer without platform or region is mapped only when the title alone is unambiguous.
  Anything else waits for an operator to map it: a wrong automatic mapping would sell the
  wrong game, or a key locked to the wrong region, so nothing fuzzier is attempted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.db import session_scope
from core.models import AlertKind, Product, ProviderOffer, utcnow
from core.providers.base import Offer, ProviderClient, ProviderError
from core.services.alerts import raise_alert
from core.services.catalogue_alerts import check_catalogue
from core.services.pricing import reprice_after_sync

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    provider: str
    seen: int = 0
    created: int = 0
    updated: int = 0
    mapped: int = 0
    stale_ignored: int = 0


REGION_ALIASES = {
    "REGION FREE": "GLOBAL",
    "WORLDWIDE": "GLOBAL",
    "WORLD": "GLOBAL",
    "ROW": "GLOBAL",
    "EUROPE": "EU",
    "EUROPEAN UNION": "EU",
    "UNITED STATES": "US",
    "USA": "US",
    "NORTH AMERICA": "US",
    "UNITED KINGDOM": "UK",
    "GB": "UK",
    "LATIN AMERICA": "LATAM",
}


def _norm(text: str | None) -> str:
    return " ".join((text or "").upper().split())


def _region(text: str | None) -> str:
    value = _norm(text)
    return REGION_ALIASES.get(value, value)


class ProductIndex:
    """Active products by normalised (title, platform, region), for offer mapping."""

    def __init__(self, session: Session) -> None:
        rows = session.exec(
            select(Product.id, Product.title, Product.platform, Product.region).where(
                col(Product.active)
            )
        ).all()
        self.exact: dict[tuple[str, str, str], int] = {}
        self.by_title: dict[str, list[int]] = {}
        for pid, title, platform, region in rows:
            if pid is None:
                continue
            self.exact[(_norm(title), _norm(platform), _region(region))] = pid
            self.by_title.setdefault(_norm(title), []).append(pid)

    def match(self, offer: Offer) -> int | None:
        title = _norm(offer.title or offer.name)
        if offer.platform and offer.region:
            return self.exact.get((title, _norm(offer.platform), _region(offer.region)))
        candidates = self.by_title.get(title, [])
        return candidates[0] if len(candidates) == 1 else None


def upsert_offer(
    session: Session,
    offer: Offer,
    *,
    products: ProductIndex | None = None,
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
    row.title = (offer.title or offer.name)[:300]
    row.platform = (offer.platform or "")[:80] or None
    row.region = (offer.region or "")[:120] or None
    row.cost_minor = offer.cost_minor
    row.currency = offer.currency
    row.stock = max(0, offer.stock)
    row.is_preorder = offer.is_preorder
    row.release_date = offer.release_date
    row.cover_url = offer.cover_url
    row.provider_updated_at = offer.updated_at or row.provider_updated_at
    row.last_synced_at = now
    if row.product_id is None:
        product_id = (products or ProductIndex(session)).match(offer)
        if product_id is not None:
            row.product_id = product_id
            remember_mapping(row)
            if report:
                report.mapped += 1
    session.add(row)
    return row


def remember_mapping(row: ProviderOffer) -> None:
    """Keep what the offer says now, as it is mapped: a later change of its title,
    platform or region at the provider is a catalogue alert."""
    row.mapped_title = row.title
    row.mapped_platform = row.platform
    row.mapped_region = row.region
    row.mapped_at = utcnow()


@dataclass(frozen=True)
class Candidate:
    """A product an unmapped offer may be: ``score`` 0..1 (title likeness, plus a bonus
    for the same platform and the same region)."""

    product_id: int
    title: str
    platform: str
    region: str
    score: float


def closest_products(*, session: Session, offer_id: int, limit: int = 3) -> list[Candidate]:
    """The active products closest to an offer, best first, for an operator deciding a
    mapping by hand (nothing is mapped here: a wrong guess would sell the wrong game)."""
    from difflib import SequenceMatcher

    offer = session.get(ProviderOffer, offer_id)
    if offer is None:
        return []
    title = _norm(offer.title or offer.name)
    platform, region = _norm(offer.platform), _region(offer.region)
    scored = []
    for pid, ptitle, pplatform, pregion in session.exec(
        select(Product.id, Product.title, Product.platform, Product.region).where(
            col(Product.active)
        )
    ):
        if pid is None:
            continue
        likeness = SequenceMatcher(None, title, _norm(ptitle)).ratio()
        bonus = (0.1 if platform and platform == _norm(pplatform) else 0.0) + (
            0.05 if region and region == _region(pregion) else 0.0
        )
        scored.append(Candidate(pid, ptitle, pplatform, pregion, round(likeness * 0.85 + bonus, 3)))
    scored.sort(key=lambda c: (-c.score, c.product_id))
    return scored[:limit]


def sync_offers(
    *, client: ProviderClient, updated_since: datetime | None = None, batch: int = 500
) -> SyncReport:
    """Pull offers from ``client`` and store them, committing every ``batch`` offers.
    Owns its transactions."""
    report = SyncReport(provider=client.name)
    pending: list[Offer] = []

    def flush() -> None:
        with session_scope() as session:
            index = ProductIndex(session)
            for item in pending:
                upsert_offer(session, item, products=index, report=report)
        pending.clear()

    try:
        for offer in client.list_offers(updated_since=updated_since):
            report.seen += 1
            pending.append(offer)
            if len(pending) >= batch:
                flush()
    except ProviderError as exc:
        # Visible to operators (console dashboard and providers screen), not only in a
        # worker's log; the task's retries still run.
        log.warning("sync of %s failed: %s", client.name, exc.message)
        with session_scope() as session:
            raise_alert(
                session=session,
                kind=AlertKind.PROVIDER_DOWN,
                subject=f"provider:{client.name}",
                message=f"catalogue sync of {client.name} failed after {report.seen} offers: {exc.message}",
            )
        raise
    if pending:
        flush()
    log.info("synced %s: %s", client.name, report)
    changed = reprice_after_sync(provider=client.name)
    if changed:
        log.info("repriced %d product(s) after the sync of %s", len(changed), client.name)
    with session_scope() as session:
        check_catalogue(session=session)
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
