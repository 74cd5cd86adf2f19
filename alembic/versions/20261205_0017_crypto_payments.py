"""Crypto payments: one row per NOWPayments payment, with its status and its amounts on
the blockchain, for the order page and the console.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crypto_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("price_amount", sa.String(length=40), nullable=True),
        sa.Column("price_currency", sa.String(length=10), nullable=True),
        sa.Column("pay_amount", sa.String(length=40), nullable=True),
        sa.Column("actually_paid", sa.String(length=40), nullable=True),
        sa.Column("pay_currency", sa.String(length=20), nullable=True),
        sa.Column("overpaid", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_crypto_payments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crypto_payments")),
        sa.UniqueConstraint("provider", "payment_id", name="uq_crypto_payments_provider_payment"),
    )
    with op.batch_alter_table("crypto_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crypto_payments_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crypto_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crypto_payments_order_id"))

    op.drop_table("crypto_payments")
