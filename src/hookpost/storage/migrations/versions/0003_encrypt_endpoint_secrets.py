"""encrypt endpoint secrets and headers at rest

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:00:00.000000

The columns become text (a ciphertext is longer than the 128 characters a secret had, and
encrypted headers are no longer a JSON document); every stored value is encrypted with the
first key of HOOKPOST_SECRET_KEY, which ``hookpost.storage.migrate`` configures.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from hookpost.kit.secret_box import PREFIX, box

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("secret", "previous_secret", "headers")


def _rewrite(convert: Callable[[str], str]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, secret, previous_secret, headers FROM endpoint")).all()
    for endpoint_id, *values in rows:
        changes = {name: convert(value) for name, value in zip(_COLUMNS, values, strict=True) if value is not None}
        if changes:
            assignments = ", ".join(f"{name} = :{name}" for name in changes)
            update = sa.text(f"UPDATE endpoint SET {assignments} WHERE id = :id")  # noqa: S608 - our column names
            connection.execute(update, {**changes, "id": endpoint_id})


def _encrypt(value: str) -> str:
    return value if value.startswith(PREFIX) else box().encrypt(value)


def upgrade() -> None:
    with op.batch_alter_table("endpoint") as batch_op:
        batch_op.alter_column("secret", type_=sa.Text(), existing_type=sa.String(length=128), existing_nullable=False)
        batch_op.alter_column(
            "previous_secret", type_=sa.Text(), existing_type=sa.String(length=128), existing_nullable=True
        )
        batch_op.alter_column(
            "headers",
            type_=sa.Text(),
            existing_type=sa.JSON(),
            existing_nullable=False,
            postgresql_using="headers::text",
        )
    _rewrite(_encrypt)


def downgrade() -> None:
    _rewrite(box().decrypt)
    with op.batch_alter_table("endpoint") as batch_op:
        batch_op.alter_column(
            "headers",
            type_=sa.JSON(),
            existing_type=sa.Text(),
            existing_nullable=False,
            postgresql_using="headers::json",
        )
        batch_op.alter_column(
            "previous_secret", type_=sa.String(length=128), existing_type=sa.Text(), existing_nullable=True
        )
        batch_op.alter_column("secret", type_=sa.String(length=128), existing_type=sa.Text(), existing_nullable=False)
