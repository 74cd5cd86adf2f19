"""Catalogue alerts: unsellable products, offers changed since mapping, stale prices."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from core.models import Alert, AlertKind, ProviderOffer, utcnow
from core.services import pricing
from core.services.audit import Actor
from core.services.catalogue_alerts import check_catalogue
from core.services.operator import offers
from core.services.pricing import RuleInput
from tests.factories import fresh, make_keys, make_product


def test_catalogue_alerts(session):
    make_product(session, slug="nothing", title="Nothing")
    make_product(session, slug="retired", title="Retired", active=False)
    stocked = make_product(session, slug="stocked", title="Stocked")
    make_keys(session, stocked, 1)
    mapped = make_product(session, slug="mapped", title="Mapped Game")
    session.add(
        ProviderOffer(
            provider="kinguin", external_id="k-1", name="Mapped Game", title="Mapped Game",
            platform="Steam", region="GLOBAL", cost_minor=500, currency="EUR", stock=3,
            last_synced_at=utcnow(),
        )
    )  # fmt: skip
    session.commit()
    offers.map_offer(provider="kinguin", external_id="k-1", slug="mapped", actor=Actor.system())
    pricing.add_rule(
        rule=RuleInput("EUR", "cost_plus", product_id=mapped.id, margin_bp=1000),
        actor=Actor.system(),
    )

    found = check_catalogue(session=fresh(session))
    session.commit()
    assert found.unsellable == ["nothing"]
    assert found.offer_changed == []
    assert found.stale_price == ["mapped"]  # never priced by its rule

    pricing.reprice(actor=Actor.system())
    offer = fresh(session).exec(select(ProviderOffer)).one()
    offer.region = "EU"  # the provider changed what the id sells
    offer.last_synced_at = utcnow() + timedelta(seconds=5)
    session.add(offer)
    session.commit()
    found = check_catalogue(session=fresh(session))
    session.commit()
    assert found.offer_changed == ["kinguin k-1"] and found.stale_price == ["mapped"]
    # an open alert is not raised twice
    check_catalogue(session=fresh(session))
    session.commit()
    subjects = sorted(
        a.subject
        for a in fresh(session).exec(select(Alert).where(Alert.kind == AlertKind.CATALOGUE))
    )
    assert subjects == ["offer-changed:kinguin k-1", "stale-price:mapped", "unsellable:nothing"]
