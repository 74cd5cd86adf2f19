"""pricing rules and the price changes they make (with their reasons); when a product's
price was last computed; what an offer said when it was mapped (catalogue alerts).

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pricing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("platform", sa.String(length=40), nullable=True),
        sa.Column("region", sa.String(length=20), nullable=True),
        sa.Column("genre", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("fixed_price_minor", sa.BigInteger(), nullable=True),
        sa.Column("margin_bp", sa.Integer(), nullable=True),
        sa.Column("floor_minor", sa.BigInteger(), nullable=True),
        sa.Column("ceiling_minor", sa.BigInteger(), nullable=True),
        sa.Column("charm", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("min_margin_bp", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_pricing_rules_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pricing_rules")),
    )
    op.create_index("ix_pricing_rules_product", "pricing_rules", ["product_id"])
    op.create_table(
        "price_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("old_minor", sa.BigInteger(), nullable=True),
        sa.Column("new_minor", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("cost_minor", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_price_changes_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["pricing_rules.id"],
            name=op.f("fk_price_changes_rule_id_pricing_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_changes")),
    )
    op.create_index("ix_price_changes_product", "price_changes", ["product_id", "id"])
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priced_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("provider_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mapped_title", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("mapped_platform", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("mapped_region", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("mapped_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_offers", schema=None) as batch_op:
        batch_op.drop_column("mapped_at")
        batch_op.drop_column("mapped_region")
        batch_op.drop_column("mapped_platform")
        batch_op.drop_column("mapped_title")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("priced_at")
    op.drop_index("ix_price_changes_product", table_name="price_changes")
    op.drop_table("price_changes")
    op.drop_index("ix_pricing_rules_product", table_name="pricing_rules")
    op.drop_table("pricing_rules")
