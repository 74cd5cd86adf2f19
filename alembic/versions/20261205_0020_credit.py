"""Gift-card products: a gift card can be the stock behind a key (``gift_cards.key_id``),
sold like any key and given its balance when the key is delivered.

Revision ID: 0020_credit
Revises: 0018_promos
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0020_credit"
down_revision: str | None = "0018_promos"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gift_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.Uuid(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_gift_cards_key_id"), ["key_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_gift_cards_key_id_keys"), "keys", ["key_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("gift_cards", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_gift_cards_key_id_keys"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_gift_cards_key_id"), type_="unique")
        batch_op.drop_column("key_id")
