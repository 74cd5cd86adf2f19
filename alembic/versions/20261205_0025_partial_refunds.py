"""What an order has had refunded (``orders.refunded_minor``): a Stripe partial refund is
recorded on the order (its status and keys stay), and reports count revenue net of it.
Orders already refunded in full get their total.

Revision ID: 0025_partial_refunds
Revises: 0024_german
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0025_partial_refunds"
down_revision: str | None = "0024_german"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column(
                "refunded_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False
            )
        )
    op.execute("UPDATE orders SET refunded_minor = total_minor WHERE status = 'refunded'")


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("refunded_minor")
