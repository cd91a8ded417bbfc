"""list indexes: the message list by application in id order, and by application and event type

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 11:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        # (app_id) alone is a prefix of both: the foreign key's deletes use them as well.
        batch_op.drop_index("ix_message_app_id")
        batch_op.create_index("ix_message_app", ["app_id", "id"], unique=False)
        batch_op.create_index("ix_message_app_event_type", ["app_id", "event_type", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_app_event_type")
        batch_op.drop_index("ix_message_app")
        batch_op.create_index("ix_message_app_id", ["app_id"], unique=False)
