"""Webhook rows as an outbox: what reconciliation and expiry need, and small rejections.

- ``subject``: the order number a payment event names, so expiry never cancels an order
  whose payment is stored but not yet acted on.
- ``redeliveries``: how often reconciliation queued a row left unprocessed (an alert is
  raised once it keeps failing).
- ``body_size``, ``body_sha256``: a rejected delivery keeps only a prefix of its body.
- ``ix_webhook_events_unprocessed (received_at) WHERE processed_at IS NULL`` and
  ``ix_webhook_events_rejected (received_at, source) WHERE NOT authenticated``.
- Rejected rows stored before this revision keep their first KiB only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPROCESSED = sa.text("processed_at IS NULL")
REJECTED = sa.text("NOT authenticated")


def upgrade() -> None:
    op.add_column("webhook_events", sa.Column("subject", sa.String(64), nullable=True))
    op.add_column(
        "webhook_events",
        sa.Column("redeliveries", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("webhook_events", sa.Column("body_size", sa.Integer(), nullable=True))
    op.add_column("webhook_events", sa.Column("body_sha256", sa.String(64), nullable=True))
    op.create_index(
        "ix_webhook_events_unprocessed",
        "webhook_events",
        ["received_at"],
        postgresql_where=UNPROCESSED,
        sqlite_where=UNPROCESSED,
    )
    op.create_index(
        "ix_webhook_events_rejected",
        "webhook_events",
        ["received_at", "source"],
        postgresql_where=REJECTED,
        sqlite_where=REJECTED,
    )
    size = (
        "length(raw_body)" if op.get_bind().dialect.name == "sqlite" else "octet_length(raw_body)"
    )
    op.execute(
        f"UPDATE webhook_events SET body_size = {size}, raw_body = substr(raw_body, 1, 1024) "
        "WHERE NOT authenticated"
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_rejected", table_name="webhook_events")
    op.drop_index("ix_webhook_events_unprocessed", table_name="webhook_events")
    op.drop_column("webhook_events", "body_sha256")
    op.drop_column("webhook_events", "body_size")
    op.drop_column("webhook_events", "redeliveries")
    op.drop_column("webhook_events", "subject")
