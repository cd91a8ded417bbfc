"""ended web sessions: console sessions signed out on the server

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ended_web_session",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index(op.f("ix_ended_web_session_expires_at"), "ended_web_session", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ended_web_session_expires_at"), table_name="ended_web_session")
    op.drop_table("ended_web_session")
