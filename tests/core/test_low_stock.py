"""Low stock is one rule (core.services.low_stock): every place that shows or acts on it
agrees, at the threshold too, and new products take KEYSHOP_LOW_STOCK_THRESHOLD."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from core import config
from core.services import maintenance
from core.services.catalogue import create_product, search_products
from core.services.console_reads.dashboard import dashboard_figures
from core.services.console_reads.inventory import product_stock
from core.services.low_stock import is_low_stock, low_stock_products
from core.services.storefront import product_detail
from tests.factories import make_keys, make_product


@pytest.mark.parametrize(
    ("available", "threshold", "low"),
    [(0, 5, True), (4, 5, True), (5, 5, False), (6, 5, False), (0, 0, False)],
)
def test_the_rule_is_below_the_threshold(available: int, threshold: int, low: bool) -> None:
    assert is_low_stock(available=available, threshold=threshold) is low


def _views(session: Session, slug: str) -> dict[str, bool]:
    """What each surface says about the product: low or not."""
    product_id = product_detail(session=session, slug=slug).id
    hit = next(h for h in search_products(session=session).items if h.slug == slug)
    row = next(r for r in product_stock(session=session) if r.slug == slug)
    return {
        "product page": product_detail(session=session, slug=slug).low_stock,
        "search hit": hit.low_stock,
        "console inventory": row.low,
        "low-stock query": product_id
        in {s.product_id for s in low_stock_products(session=session)},
        "dashboard": product_id
        in {s.product_id for s in dashboard_figures(session=session).low_stock},
    }


def test_every_surface_agrees_at_and_under_the_threshold(session: Session) -> None:
    at = make_product(session, title="At Threshold", low_stock_threshold=3)
    under = make_product(session, title="Under Threshold", low_stock_threshold=3)
    make_keys(session, at, 3)
    make_keys(session, under, 2)

    assert _views(session, at.slug) == dict.fromkeys(_views(session, at.slug), False)
    assert _views(session, under.slug) == dict.fromkeys(_views(session, under.slug), True)
    assert maintenance.low_stock_alerts() == 1


def test_a_new_product_takes_the_configured_default_threshold(
    session: Session, test_settings: config.Settings
) -> None:
    config.use_settings(test_settings.model_copy(update={"default_low_stock_threshold": 9}))
    try:
        product = create_product(
            session=session,
            slug="configured-threshold",
            title="Configured Threshold",
            platform="Steam",
            region="GLOBAL",
            genre="Action",
            price_minor=1000,
            currency="EUR",
        )
        chosen = create_product(
            session=session,
            slug="chosen-threshold",
            title="Chosen Threshold",
            platform="Steam",
            region="GLOBAL",
            genre="Action",
            price_minor=1000,
            currency="EUR",
            low_stock_threshold=2,
        )
    finally:
        config.use_settings(test_settings)
    assert (product.low_stock_threshold, chosen.low_stock_threshold) == (9, 2)
