"""unread indexes: drop the indexes no query reads, add the one the endpoint's message list lacked;
deliveries' pages leave room for HOT updates

Dropped (docs/performance.md lists each index with the queries that read it):

- ``ix_message_created_at``: no query reads it. Lists bounded by time bound the id (ids begin
  with their time); the payload purge's ``OR`` on ``payload_expires_at`` cannot use it.
- ``ix_attempt_delivery_id``: nothing looks attempts up by delivery.
- ``ix_endpoint_app_id`` and ``ix_destination_app_id``: ``(app_id, uid)``, their unique
  constraint's index, serves every read by application and the foreign key's deletes.

Added: ``ix_delivery_endpoint_id`` (endpoint_id, id), the order of the messages owed to an
endpoint (its deliveries, newest first): that list walked the whole delivery key, keeping an
endpoint's rows (one in twenty on the test table, 3.97 s for a page bounded by ``before``).

On PostgreSQL every delivery partition gets ``fillfactor`` 80 (storage/partitions.py makes
new weeks so): a claim or a retry's lease written on a delivery finds room on its own page,
an update PostgreSQL can make without touching the indexes (HOT) when no indexed column
changes. Existing pages keep their rows; the room shows as pages are filled anew.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

from hookpost.storage.partitions import DELIVERY_FILLFACTOR

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, index, columns)
_DROPPED = [
    ("message", "ix_message_created_at", ["created_at"]),
    ("attempt", "ix_attempt_delivery_id", ["delivery_id"]),
    ("endpoint", "ix_endpoint_app_id", ["app_id"]),
    ("destination", "ix_destination_app_id", ["app_id"]),
]


def _delivery_tables() -> list[str]:
    """The delivery table, or on PostgreSQL its partitions (a partitioned table takes no storage parameters)."""
    rows = op.get_bind().execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'delivery'"
        )
    )
    return [name for (name,) in rows] or ["delivery"]


def upgrade() -> None:
    for table, index, _ in _DROPPED:
        op.drop_index(index, table_name=table)
    op.create_index("ix_delivery_endpoint_id", "delivery", ["endpoint_id", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in _delivery_tables():
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {DELIVERY_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _delivery_tables():
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.drop_index("ix_delivery_endpoint_id", table_name="delivery")
    for table, index, columns in reversed(_DROPPED):
        op.create_index(index, table, columns, unique=False)
