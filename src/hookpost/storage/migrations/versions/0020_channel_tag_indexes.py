"""channel and tag indexes: GIN indexes of message channels and tags as JSONB (PostgreSQL)

The message lists filtered by channel or by tag matched the stored JSON text with LIKE, which
no index serves: a rare channel read the application's whole history. On PostgreSQL the
filter is now JSONB containment (kit/filters.py), which these indexes serve. SQLite keeps the
text match and gets no index. Building them holds writes to ``message`` while it runs: about
1.2 s per 1,000,000 messages for each index on a 2-core machine.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 18:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {"ix_message_channels": "channels", "ix_message_tags": "tags"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # On the partitioned parent: built on every week's partition, and on each new one.
    for name, column in _INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON message USING gin ((CAST({column} AS JSONB)) jsonb_path_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _INDEXES:
        op.execute(f"DROP INDEX {name}")
