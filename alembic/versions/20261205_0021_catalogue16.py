"""Provider offers remember the provider's cover picture (an https URL), so a product
created from an offer shows it.

Revision ID: 0021_catalogue16
Revises: 0018_catalogue16
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0021_catalogue16"
down_revision: str | None = "0018_catalogue16"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_offers") as batch:
        batch.add_column(sa.Column("cover_url", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_offers") as batch:
        batch.drop_column("cover_url")
