"""Storefront reach: back-in-stock requests (``stock_alerts``), and typo-tolerant title
search on PostgreSQL: the pg_trgm extension (in ``public``, where the database role may
create it) and a trigram index on ``lower(title)``.

Without the right to create the extension the migration still succeeds and the shop
computes the same similarity itself (core/services/catalogue/fuzzy.py); SQLite has no
trigram index either.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_products_title_trgm"


def _trgm_schema(bind: sa.engine.Connection) -> str | None:
    return bind.execute(
        sa.text(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
        )
    ).scalar()


def upgrade() -> None:
    op.create_table(
        "stock_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_stock_alerts_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_alerts")),
        sa.UniqueConstraint("product_id", "email", name="uq_stock_alerts_product_email"),
    )
    with op.batch_alter_table("stock_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stock_alerts_product_id"), ["product_id"], unique=False
        )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if _trgm_schema(bind) is None:
        savepoint = bind.begin_nested()
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
            savepoint.commit()
        except sa.exc.DBAPIError:  # no right to create it, or a concurrent creation
            savepoint.rollback()
    schema = _trgm_schema(bind)
    if schema is not None:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON products "
            f"USING gin (lower(title) {schema}.gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    with op.batch_alter_table("stock_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_alerts_product_id"))
    op.drop_table("stock_alerts")
