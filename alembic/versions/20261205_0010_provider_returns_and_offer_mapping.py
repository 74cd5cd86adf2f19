"""provider purchases record keys returned to the provider and the refund (Kinguin key
returns in the faulty-key workflow); provider offers keep the title, platform and region
they were mapped on, so unmapped ones can be shown with their closest products.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_purchases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refund_minor", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("provider_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("platform", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("region", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_offers", schema=None) as batch_op:
        batch_op.drop_column("region")
        batch_op.drop_column("platform")
        batch_op.drop_column("title")
    with op.batch_alter_table("provider_purchases", schema=None) as batch_op:
        batch_op.drop_column("refund_minor")
        batch_op.drop_column("returned_at")
