"""event types, application-scoped access tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 07:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_type",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("schemas", sa.JSON(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("group_name", sa.String(length=256), nullable=True),
        sa.Column("feature_flags", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "access_token",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("feature_flags", sa.JSON(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["application.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_access_token_app_id"), "access_token", ["app_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_token_app_id"), table_name="access_token")
    op.drop_table("access_token")
    op.drop_table("event_type")
