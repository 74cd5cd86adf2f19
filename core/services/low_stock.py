"""Low stock: the rule and the one query that finds it.

A product is low on stock when its available own keys are below its
``low_stock_threshold`` (:func:`is_low_stock`; a threshold of 0 never is). The
operator's alerts (``maintenance.low_stock_alerts``), the console's dashboard and
inventory, and the storefront's "few left" (product page, search hits) all use it;
:func:`low_stock_products` is the query behind the alerts and the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, literal_column, select
from sqlmodel import Session

from core.models import KeyStatus, Product
from core.services import locking


@dataclass(frozen=True)
class LowStock:
    product_id: int
    slug: str
    title: str
    available: int
    threshold: int


def is_low_stock(*, available: int, threshold: int) -> bool:
    """The low-stock rule, the one place it is written: a product's available own keys
    are below its ``low_stock_threshold`` (a threshold of 0 never is). The operator's
    alerts, dashboard and inventory and the storefront's "few left" all use it."""
    return available < threshold


def low_stock_products(*, session: Session) -> list[LowStock]:
    """Active products low on stock (:func:`is_low_stock`, zero stock included), fewest
    first. One query, bounded: each product's available keys are counted only up to the
    highest threshold (a range of the partial index ``ix_keys_available``), so the cost
    follows the number of products, never the number of keys in stock. Read-only."""
    products = Product.__table__  # type: ignore[attr-defined]
    cap = session.execute(
        select(func.max(products.c.low_stock_threshold)).where(products.c.active.is_(True))
    ).scalar_one()
    if not cap:
        return []
    keys = locking.KEYS
    inner = (
        select(literal_column("1"))
        .where(keys.c.product_id == products.c.id, keys.c.status == KeyStatus.AVAILABLE.value)
        .limit(int(cap))
        .correlate(products)
        .subquery()
    )
    n = select(func.count()).select_from(inner).scalar_subquery()
    query = select(
        products.c.id, products.c.slug, products.c.title, n, products.c.low_stock_threshold
    ).where(products.c.active.is_(True), products.c.low_stock_threshold > 0)
    rows = [
        LowStock(product_id=r[0], slug=r[1], title=r[2], available=int(r[3]), threshold=r[4])
        for r in session.connection().execute(query)
        if is_low_stock(available=int(r[3]), threshold=r[4])
    ]
    rows.sort(key=lambda s: (s.available, s.product_id))
    return rows
