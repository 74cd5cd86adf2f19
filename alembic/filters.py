"""What autogenerate compares: shared by env.py and core.schema.schema_differences.

Objects the models cannot describe are created by migrations per dialect and left out of
the comparison: the catalogue search index (FTS5 table and triggers on SQLite, a GIN
expression index on PostgreSQL, and the trigram index of migration 0015), the listing indexes with DESC and WHERE parts, and the
audit trail's append-only trigger.

On PostgreSQL two foreign keys of ``keys`` (to products and import batches) are checked
per statement by triggers instead (migration 0006): the models keep declaring them (for
SQLite, which keeps them, and for the ORM), so the PostgreSQL comparison leaves them out.
"""

from __future__ import annotations

from typing import Any

UNMODELLED = {
    "products_fts",
    "ix_products_search",
    "ix_products_listing",
    "ix_products_newest",
    "ix_provider_offers_in_stock",
    "ix_products_title_trgm",
}


# Replaced on PostgreSQL by the per-statement triggers of migration 0006.
CHECKED_BY_TRIGGER_ON_POSTGRESQL = {
    "fk_keys_product_id_products",
    "fk_keys_import_batch_id_import_batches",
}


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return not (name and (name in UNMODELLED or name.startswith("products_fts")))


def include_object_for(dialect: str) -> Any:
    """``include_object`` for a database of this dialect."""
    if dialect != "postgresql":
        return include_object

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "foreign_key_constraint" and name in CHECKED_BY_TRIGGER_ON_POSTGRESQL:
            return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include
