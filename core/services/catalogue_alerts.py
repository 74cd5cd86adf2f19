"""Catalogue alerts: what an owner must look at before a customer finds it.

- ``unsellable``: a product on sale with no key in stock and no offer mapped to it;
- ``offer-changed``: a mapped offer whose title, platform or region at the provider is
  no longer what it was when it was mapped (the provider may now sell another game or
  another region under the same id);
- ``stale-price``: a product priced by a rule whose price was computed before the last
  sync of one of its offers (or never).

:func:`check_catalogue` finds them and raises one ``catalogue`` alert per finding (an
open alert is not raised twice); it runs after each provider sync and from
``keyshop products check``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from core.models import AlertKind, Key, KeyStatus, Product, ProviderOffer
from core.services import pricing
from core.services.alerts import raise_alert


@dataclass
class CatalogueFindings:
    unsellable: list[str] = field(default_factory=list)  # slugs
    offer_changed: list[str] = field(default_factory=list)  # "provider external_id"
    stale_price: list[str] = field(default_factory=list)  # slugs

    @property
    def total(self) -> int:
        return len(self.unsellable) + len(self.offer_changed) + len(self.stale_price)


def find_problems(*, session: Session) -> CatalogueFindings:
    findings = CatalogueFindings()
    has_key = exists().where(
        col(Key.product_id) == col(Product.id), col(Key.status) == KeyStatus.AVAILABLE
    )
    has_offer = exists().where(col(ProviderOffer.product_id) == col(Product.id))
    findings.unsellable = list(
        session.exec(
            select(Product.slug)
            .where(col(Product.active), ~has_key, ~has_offer)
            .order_by(col(Product.id))
        )
    )
    for offer in session.exec(
        select(ProviderOffer)
        .where(
            col(ProviderOffer.product_id).is_not(None), col(ProviderOffer.mapped_at).is_not(None)
        )
        .order_by(col(ProviderOffer.id))
    ):
        if (offer.title, offer.platform, offer.region) != (
            offer.mapped_title,
            offer.mapped_platform,
            offer.mapped_region,
        ):
            findings.offer_changed.append(f"{offer.provider} {offer.external_id}")
    rules = pricing.rules(session=session)
    if rules:
        last_sync = (
            select(ProviderOffer.product_id, func.max(ProviderOffer.last_synced_at).label("synced"))
            .where(col(ProviderOffer.product_id).is_not(None))
            .group_by(col(ProviderOffer.product_id))
            .subquery()
        )
        for product, synced in session.exec(
            select(Product, last_sync.c.synced)
            .join(last_sync, last_sync.c.product_id == col(Product.id))
            .where(col(Product.active))
            .order_by(col(Product.id))
        ):
            if pricing.rule_for(product, rules) is None or synced is None:
                continue
            if product.priced_at is None or product.priced_at < synced:
                findings.stale_price.append(product.slug)
    return findings


def check_catalogue(*, session: Session) -> CatalogueFindings:
    """Find the problems and raise a ``catalogue`` alert for each. Caller's
    transaction."""
    findings = find_problems(session=session)
    for slug in findings.unsellable:
        raise_alert(
            session=session,
            kind=AlertKind.CATALOGUE,
            subject=f"unsellable:{slug}"[:120],
            message=f"{slug} is on sale with no key in stock and no offer mapped to it",
        )
    for offer in findings.offer_changed:
        raise_alert(
            session=session,
            kind=AlertKind.CATALOGUE,
            subject=f"offer-changed:{offer}"[:120],
            message=(
                f"offer {offer} changed its title, platform or region since it was mapped; "
                "check the mapping (keyshop offers list)"
            ),
        )
    for slug in findings.stale_price:
        raise_alert(
            session=session,
            kind=AlertKind.CATALOGUE,
            subject=f"stale-price:{slug}"[:120],
            message=f"{slug}'s price was computed before its offers' last sync (keyshop pricing apply)",
        )
    return findings
