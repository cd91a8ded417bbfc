"""message traceparent: the W3C trace context a message was accepted in, so its attempts join its trace

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 04:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing (PostgreSQL adds it to every partition
    # of the message table; SQLite appends it to the table's definition).
    op.add_column("message", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("traceparent")
