"""The language a customer ordered in (issue #15, two languages): ``orders.language``,
so each order's e-mails speak it. Orders placed before are English.

Revision ID: 0018_german
Revises: 0019_credit
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018_german"
down_revision: str | None = "0019_credit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column(
                "language", sa.String(length=5), server_default=sa.text("'en'"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("language")
