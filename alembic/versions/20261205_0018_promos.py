"""Promo codes: the codes, each use of one by an order, and the discount on orders and
their lines (the price snapshot keeps what a code took off).

Revision ID: 0018_promos
Revises: 0018_german
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018_promos"
down_revision: str | None = "0018_german"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "promo_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=True),
        sa.Column("amounts", sa.JSON(), nullable=False),
        sa.Column("minimums", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("scope_values", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("per_customer", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("stackable", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("below_cost", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_promo_codes_code")),
    )
    with op.batch_alter_table("promo_codes", schema=None) as batch_op:
        batch_op.create_index("ix_promo_codes_campaign", ["campaign"], unique=False)

    op.create_table(
        "promo_redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promo_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_promo_redemptions_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_promo_redemptions_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["promo_id"], ["promo_codes.id"], name=op.f("fk_promo_redemptions_promo_id_promo_codes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promo_redemptions")),
    )
    with op.batch_alter_table("promo_redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_promo_redemptions_order", ["order_id"], unique=False)
        batch_op.create_index(
            "ix_promo_redemptions_promo_email", ["promo_id", "email"], unique=False
        )

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "discount_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "discount_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("discount_minor")

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("discount_minor")

    with op.batch_alter_table("promo_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_promo_redemptions_promo_email")
        batch_op.drop_index("ix_promo_redemptions_order")

    op.drop_table("promo_redemptions")
    with op.batch_alter_table("promo_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_promo_codes_campaign")

    op.drop_table("promo_codes")
