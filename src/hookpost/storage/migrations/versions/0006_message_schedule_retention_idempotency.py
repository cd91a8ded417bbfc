"""message deliverAt and payload retention, idempotent responses

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deliver_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("payload_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "idempotent_response",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=256), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),  # encrypted (storage/encrypted.py)
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_idempotent_response_expires_at"), "idempotent_response", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotent_response_expires_at"), table_name="idempotent_response")
    op.drop_table("idempotent_response")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("payload_expires_at")
        batch_op.drop_column("deliver_at")
