"""The catalogue: the product model family (:mod:`.product_input`), create and edit
products (:mod:`.products`), find them and list them for
the storefront (:mod:`.search`), and keep each product's ``in_stock`` summary exact
(:mod:`.stock_flags`).

Every function here runs inside the caller's transaction and never commits; writes are
flushed so the caller sees ids and constraint errors at once.
"""

from core.services.catalogue.product_input import (
    CURRENCY_RE,
    SLUG_RE,
    ProductCreate,
    ProductUpdate,
)
from core.services.catalogue.products import (
    create_product,
    get_product,
    get_product_by_slug,
    keys_table,
    offers,
    products,
    update_product,
)
from core.services.catalogue.search import (
    COUNT_LIMIT,
    MAX_PER_PAGE,
    MAX_QUERY_CHARS,
    MAX_QUERY_TOKENS,
    RANK_LIMIT,
    SORTS,
    ProductHit,
    SearchPage,
    available_counts,
    facet_values,
    provider_stock_counts,
    query_tokens,
    search_products,
)
from core.services.catalogue.stock_flags import note_stock_changed, refresh_stock_flags

__all__ = [
    "COUNT_LIMIT",
    "CURRENCY_RE",
    "MAX_PER_PAGE",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TOKENS",
    "RANK_LIMIT",
    "SLUG_RE",
    "SORTS",
    "ProductCreate",
    "ProductHit",
    "ProductUpdate",
    "SearchPage",
    "available_counts",
    "create_product",
    "facet_values",
    "get_product",
    "get_product_by_slug",
    "keys_table",
    "note_stock_changed",
    "offers",
    "products",
    "provider_stock_counts",
    "query_tokens",
    "refresh_stock_flags",
    "search_products",
    "update_product",
]
