"""Cashback campaigns: a percent of qualifying orders given back as store credit.

Revision ID: 0023_credit
Revises: 0022_credit
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0023_credit"
down_revision: str | None = "0022_credit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cashback_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cashback_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_cashback_campaigns_name")),
    )


def downgrade() -> None:
    op.drop_table("cashback_campaigns")
