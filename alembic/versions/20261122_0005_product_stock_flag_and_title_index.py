"""products.in_stock (the stock summary the catalogue filters on) and the indexes the
store search walks.

- ``products.in_stock``: true when the product has an own key with status
  ``available`` or a mapped provider offer with stock > 0. Filled here from the keys and
  offers; from then on kept exact by ``core.services.catalogue.refresh_stock_flags`` in
  the transaction that changes keys or offers (see that module's docstring).
- ``ix_products_in_stock (platform, id) WHERE in_stock AND active``: the in-stock
  filter and its count read this index instead of probing the keys of every product.
- ``ix_products_platform_region (platform, region) WHERE active``: the facet filters
  together, counted from the index.
- ``ix_products_title (lower(title), id)`` (PostgreSQL): ``sort=title`` walks it
  instead of sorting the whole catalogue.
- ``ix_products_genre_price (lower(genre), price_minor, id) WHERE active``
  (PostgreSQL): a genre (matched case-insensitively) with a price range, by price.
- SQLite: the trigger that keeps the FTS5 search index in step now fires only when a
  searched column changes (title, platform, genre, publisher), not on every update of a
  product (a stock flag changing does not touch the search index).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_STOCK = sa.text("in_stock AND active")
# The same truth as core.services.catalogue.refresh_stock_flags.
BACKFILL = (
    "UPDATE products SET in_stock = true WHERE "
    "EXISTS (SELECT 1 FROM keys WHERE keys.product_id = products.id "
    "AND keys.status = 'available') "
    "OR EXISTS (SELECT 1 FROM provider_offers WHERE provider_offers.product_id = products.id "
    "AND provider_offers.stock > 0)"
)
FTS_COLUMNS = "title, platform, genre, publisher"


def _fts_update_trigger(of_columns: str) -> None:
    new = "new.title, new.platform, new.genre, new.publisher"
    old = "old.title, old.platform, old.genre, old.publisher"
    op.execute("DROP TRIGGER IF EXISTS products_fts_au")
    op.execute(
        f"CREATE TRIGGER products_fts_au AFTER UPDATE {of_columns}ON products BEGIN "
        f"INSERT INTO products_fts(products_fts, rowid, {FTS_COLUMNS}) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO products_fts(rowid, {FTS_COLUMNS}) VALUES (new.id, {new}); END"
    )


def upgrade() -> None:
    # Plain ADD COLUMN (no batch rebuild): SQLite keeps the table and its FTS triggers.
    op.add_column(
        "products",
        sa.Column("in_stock", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _fts_update_trigger(f"OF {FTS_COLUMNS} ")
    op.execute(BACKFILL.replace("true", "1") if sqlite else BACKFILL)
    op.create_index(
        "ix_products_in_stock",
        "products",
        ["platform", "id"],
        unique=False,
        postgresql_where=IN_STOCK,
        sqlite_where=IN_STOCK,
    )
    op.create_index(
        "ix_products_platform_region",
        "products",
        ["platform", "region"],
        unique=False,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    if not sqlite:
        # PostgreSQL only: SQLAlchemy cannot reflect an expression index from SQLite (the
        # no-drift check would fail on its warning), and the embedded shop's catalogue is
        # small enough to sort.
        op.create_index(
            "ix_products_title", "products", [sa.text("lower(title)"), "id"], unique=False
        )
        op.create_index(
            "ix_products_genre_price",
            "products",
            [sa.text("lower(genre)"), "price_minor", "id"],
            unique=False,
            postgresql_where=sa.text("active"),
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if not sqlite:
        op.drop_index("ix_products_genre_price", table_name="products")
        op.drop_index("ix_products_title", table_name="products")
    op.drop_index("ix_products_platform_region", table_name="products")
    op.drop_index("ix_products_in_stock", table_name="products")
    if sqlite:
        _fts_update_trigger("")
        # Native DROP COLUMN (SQLite 3.35+), not a batch rebuild that would drop the
        # FTS triggers.
        op.execute("ALTER TABLE products DROP COLUMN in_stock")
    else:
        op.drop_column("products", "in_stock")
