"""access token capabilities: Svix's app portal capabilities in place of the read-only flag

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As auth.capabilities names them, written out: a migration does not change with the code.
_ALL = ["CreateAttempts", "ManageEndpoint", "ManageEndpointSecret", "ViewBase", "ViewEndpointSecret"]
_READ_ONLY = ["ViewBase"]

_tokens = sa.table("access_token", sa.column("read_only", sa.Boolean()), sa.column("capabilities", sa.JSON()))


def upgrade() -> None:
    with op.batch_alter_table("access_token") as batch:
        batch.add_column(sa.Column("capabilities", sa.JSON(), nullable=True))
    # A read-only token keeps reading only; any other kept doing all it did (it no longer sends messages).
    op.execute(_tokens.update().where(_tokens.c.read_only.is_(True)).values(capabilities=_READ_ONLY))
    op.execute(_tokens.update().where(_tokens.c.read_only.is_(False)).values(capabilities=_ALL))
    with op.batch_alter_table("access_token") as batch:
        batch.alter_column("capabilities", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("read_only")


def downgrade() -> None:
    with op.batch_alter_table("access_token") as batch:
        batch.add_column(sa.Column("read_only", sa.Boolean(), nullable=True))
    # Only a token that may change nothing goes back to read-only; the others get all they had and more.
    op.execute(_tokens.update().values(read_only=False))
    op.execute(
        _tokens.update().where(sa.cast(_tokens.c.capabilities, sa.String) == '["ViewBase"]').values(read_only=True)
    )
    with op.batch_alter_table("access_token") as batch:
        batch.alter_column("read_only", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("capabilities")
