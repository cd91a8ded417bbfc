"""partial due index: ix_delivery_due holds pending deliveries only, by due time

The claim's and the backlog's index. Before, it indexed every delivery by (status, due time),
so it grew with the history and every settled delivery stayed in it; now a delivery leaves it
when it settles. The queries that use it write the status as a literal (``models.pending()``):
a prepared statement's generic plan could not use a partial index for a bound status.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 14:30:00.000000
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = text("status = 1")  # MessageStatus.PENDING, as in models.py


def upgrade() -> None:
    # On PostgreSQL the delivery table is partitioned: dropping and creating the index on the
    # parent drops and builds it on every partition.
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index(
        "ix_delivery_due", "delivery", ["next_attempt_at"], postgresql_where=_PENDING, sqlite_where=_PENDING
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])
