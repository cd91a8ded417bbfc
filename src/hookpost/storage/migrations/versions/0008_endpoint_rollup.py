"""endpoint rollup: counts per endpoint and hour kept as attempts are recorded, filled from history

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The hour a stored time falls in, as the column stores it (UTC).
_HOUR = {
    "postgresql": "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
}
# Settled deliveries by the hour they were created, attempts by the hour they were made.
_FILL = """
INSERT INTO endpoint_rollup (endpoint_id, period, app_id, success, fail, canceled, attempt_success, attempt_fail)
SELECT endpoint_id, period, MAX(app_id), SUM(success), SUM(fail), SUM(canceled),
       SUM(attempt_success), SUM(attempt_fail)
FROM (
    SELECT endpoint_id, {hour} AS period, app_id,
           CASE WHEN status = 0 THEN 1 ELSE 0 END AS success,
           CASE WHEN status = 2 THEN 1 ELSE 0 END AS fail,
           CASE WHEN status = 4 THEN 1 ELSE 0 END AS canceled,
           0 AS attempt_success, 0 AS attempt_fail
    FROM delivery WHERE status IN (0, 2, 4)
    UNION ALL
    SELECT endpoint_id, {hour}, app_id, 0, 0, 0,
           CASE WHEN status = 0 THEN 1 ELSE 0 END, CASE WHEN status = 0 THEN 0 ELSE 1 END
    FROM attempt
) AS counted
GROUP BY endpoint_id, period
"""


def upgrade() -> None:
    op.create_table(
        "endpoint_rollup",
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.DateTime(timezone=True), nullable=False),
        sa.Column("app_id", sa.String(length=40), nullable=False),
        sa.Column("success", sa.Integer(), nullable=False),
        sa.Column("fail", sa.Integer(), nullable=False),
        sa.Column("canceled", sa.Integer(), nullable=False),
        sa.Column("attempt_success", sa.Integer(), nullable=False),
        sa.Column("attempt_fail", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["application.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoint.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("endpoint_id", "period"),
    )
    op.create_index("ix_endpoint_rollup_app", "endpoint_rollup", ["app_id", "period"], unique=False)
    op.execute(_FILL.format(hour=_HOUR[op.get_bind().dialect.name]))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_endpoint_id")
        batch_op.create_index("ix_delivery_endpoint", ["endpoint_id", "status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_endpoint")
        batch_op.create_index("ix_delivery_endpoint_id", ["endpoint_id"], unique=False)
    op.drop_index("ix_endpoint_rollup_app", table_name="endpoint_rollup")
    op.drop_table("endpoint_rollup")
