"""What autogenerate compares: shared by env.py and core.schema.schema_differences.

Objects the models cannot describe are created by migrations per dialect and left out of
the comparison: the catalogue search index (FTS5 table and triggers on SQLite, a GIN
expression index on PostgreSQL), the listing indexes with DESC and WHERE parts, and the
audit trail's append-only trigger.
"""

from __future__ import annotations

from typing import Any

UNMODELLED = {
    "products_fts",
    "ix_products_search",
    "ix_products_listing",
    "ix_products_newest",
    "ix_provider_offers_in_stock",
}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (name and (name in UNMODELLED or name.startswith("products_fts")))
