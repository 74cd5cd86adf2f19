"""Every processing attempt of a webhook keeps its outcome (issue #17, defect 6): a
replay adds a ``webhook_attempts`` row instead of overwriting the first outcome.
Webhooks already processed get one attempt with the outcome they have.

Alerts close themselves when their cause is gone (defect 5): ``alerts.resolved_at`` and
``alerts.resolution``.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_attempts_webhook_id_webhook_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_attempts_webhook_id"), ["webhook_id"], unique=False
        )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.Text(), nullable=True))
    op.execute(
        "INSERT INTO webhook_attempts (webhook_id, processed_at, outcome) "
        "SELECT id, processed_at, outcome FROM webhook_events "
        "WHERE authenticated AND processed_at IS NOT NULL AND outcome IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("resolution")
        batch_op.drop_column("resolved_at")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_webhook_id"))
    op.drop_table("webhook_attempts")
