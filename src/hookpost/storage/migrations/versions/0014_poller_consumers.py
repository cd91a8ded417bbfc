"""poller consumers: a polling endpoint's named consumers and their positions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "poller_consumer",
        sa.Column("destination_id", sa.String(length=40), nullable=False),
        sa.Column("consumer_id", sa.String(length=256), nullable=False),
        sa.Column("position", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["destination_id"], ["destination.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("destination_id", "consumer_id"),
    )


def downgrade() -> None:
    op.drop_table("poller_consumer")
