"""The language a back-in-stock request was made in (issue #15, two languages):
``stock_alerts.language``, so its confirmation and its one back-in-stock e-mail speak
it. Requests made before are English.

Revision ID: 0024_german
Revises: 0024_perf20
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0024_german"
down_revision: str | None = "0024_perf20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock_alerts") as batch:
        batch.add_column(
            sa.Column(
                "language", sa.String(length=5), server_default=sa.text("'en'"), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("stock_alerts") as batch:
        batch.drop_column("language")
