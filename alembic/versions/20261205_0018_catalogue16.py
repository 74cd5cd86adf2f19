"""Uploaded product covers: the blob-store name of a product's cover image (its sizes
live under it) and the cover's alt text.

Revision ID: 0018_catalogue16
Revises: 0020_credit
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018_catalogue16"
down_revision: str | None = "0020_credit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("cover_image", sa.String(length=80), nullable=True))
        batch.add_column(
            sa.Column("cover_alt", sa.String(length=300), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("cover_alt")
        batch.drop_column("cover_image")
