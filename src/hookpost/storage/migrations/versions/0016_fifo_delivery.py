"""fifo delivery: a fifoEndpoint's position and lease, and its batches' attempts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 02:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fifo_lease",
        sa.Column("destination_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.String(length=40), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("batch_first", sa.String(length=40), nullable=True),
        sa.Column("batch_last", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["destination_id"], ["destination.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("destination_id"),
    )
    op.create_table(
        "destination_attempt",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("destination_id", sa.String(length=40), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("first_msg_id", sa.String(length=40), nullable=False),
        sa.Column("last_msg_id", sa.String(length=40), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response_status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("response_duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["application.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["destination_id"], ["destination.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_destination_attempt_destination", "destination_attempt", ["destination_id", "id"], unique=False)
    op.create_index(op.f("ix_destination_attempt_app_id"), "destination_attempt", ["app_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_destination_attempt_app_id"), table_name="destination_attempt")
    op.drop_index("ix_destination_attempt_destination", table_name="destination_attempt")
    op.drop_table("destination_attempt")
    op.drop_table("fifo_lease")
