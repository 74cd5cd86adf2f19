"""lean key indexes: fewer index entries written per imported key.

- ``ix_keys_order_line_id`` and ``ix_keys_provider_purchase_id`` become partial
  (``WHERE ... IS NOT NULL``): they are only ever searched for one order line or one
  provider purchase, and an imported key has neither, so bulk imports no longer add an
  entry for NULL to each of them.
- ``ix_keys_key_version`` is dropped: key rotation (``key_version != active``) reads
  every key anyway and scans the table; the index cost an entry per key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = ("order_line_id", "provider_purchase_id")


def upgrade() -> None:
    op.drop_index("ix_keys_key_version", table_name="keys")
    for column in PARTIAL:
        where = sa.text(f"{column} IS NOT NULL")
        op.drop_index(f"ix_keys_{column}", table_name="keys")
        op.create_index(
            f"ix_keys_{column}",
            "keys",
            [column],
            unique=False,
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for column in PARTIAL:
        op.drop_index(f"ix_keys_{column}", table_name="keys")
        op.create_index(f"ix_keys_{column}", "keys", [column], unique=False)
    op.create_index("ix_keys_key_version", "keys", ["key_version"], unique=False)
