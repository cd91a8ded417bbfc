"""history partitions: messages, deliveries and attempts in weekly partitions on PostgreSQL

On PostgreSQL the three tables are rebuilt partitioned by RANGE on the message's id (one
partition per UTC week, storage/partitions.py) and today's rows copied in; the id columns
sort bytewise (COLLATE "C") so a week's range holds exactly that week's ids whatever the
database's collation. The foreign keys among the three go on both databases: PostgreSQL
cannot drop a partition that another table's key references, and the three are removed
together by retention anyway. Keys to application and endpoint stay.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op
from sqlalchemy import text

from hookpost.storage.partitions import (
    PARTITIONED,
    create_period_statements,
    local_unique_statements,
    period_of,
    periods_ahead,
)

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "{}_0009"
_ID = 'varchar(40) COLLATE "C" NOT NULL'
_COLUMNS = {
    "message": f"""
        id {_ID}, app_id varchar(40) NOT NULL, event_id varchar(256), idempotency_key varchar(256),
        event_type varchar(256) NOT NULL, payload text NOT NULL, channels json, tags json,
        created_at timestamptz NOT NULL, deliver_at timestamptz, payload_expires_at timestamptz""",
    "delivery": f"""
        id varchar(40) NOT NULL, app_id varchar(40) NOT NULL, msg_id {_ID}, endpoint_id varchar(40) NOT NULL,
        status integer NOT NULL, trigger_type integer NOT NULL, attempt_count integer NOT NULL,
        next_attempt_at timestamptz, queued_until timestamptz, lease_until timestamptz,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    "attempt": f"""
        id varchar(40) NOT NULL, app_id varchar(40) NOT NULL, msg_id {_ID}, endpoint_id varchar(40) NOT NULL,
        delivery_id varchar(40) NOT NULL, url text NOT NULL, status integer NOT NULL, trigger_type integer NOT NULL,
        response_status_code integer NOT NULL, response text NOT NULL, response_duration_ms integer NOT NULL,
        error text, created_at timestamptz NOT NULL""",
}
# Built once the rows are in (faster than maintaining them row by row), with the names the
# models know. A partitioned table's primary key must hold its partition key.
_AFTER_COPY = [
    "ALTER TABLE message ADD CONSTRAINT message_pkey PRIMARY KEY (id)",
    "ALTER TABLE delivery ADD CONSTRAINT delivery_pkey PRIMARY KEY (id, msg_id)",
    "ALTER TABLE attempt ADD CONSTRAINT attempt_pkey PRIMARY KEY (id, msg_id)",
    "ALTER TABLE delivery ADD CONSTRAINT delivery_msg_id_endpoint_id_key UNIQUE (msg_id, endpoint_id)",
    "CREATE INDEX ix_message_app ON message (app_id, id)",
    "CREATE INDEX ix_message_app_event_type ON message (app_id, event_type, id)",
    "CREATE INDEX ix_message_created_at ON message (created_at)",
    "CREATE INDEX ix_delivery_app_id ON delivery (app_id)",
    "CREATE INDEX ix_delivery_due ON delivery (status, next_attempt_at)",
    "CREATE INDEX ix_delivery_endpoint ON delivery (endpoint_id, status, created_at)",
    "CREATE INDEX ix_attempt_app_id ON attempt (app_id)",
    "CREATE INDEX ix_attempt_delivery_id ON attempt (delivery_id)",
    "CREATE INDEX ix_attempt_endpoint ON attempt (endpoint_id, id)",
    "CREATE INDEX ix_attempt_msg ON attempt (msg_id, id)",
    "ALTER TABLE message ADD CONSTRAINT message_app_id_fkey FOREIGN KEY (app_id) "
    "REFERENCES application(id) ON DELETE CASCADE",
    "ALTER TABLE delivery ADD CONSTRAINT delivery_app_id_fkey FOREIGN KEY (app_id) "
    "REFERENCES application(id) ON DELETE CASCADE",
    "ALTER TABLE delivery ADD CONSTRAINT delivery_endpoint_id_fkey FOREIGN KEY (endpoint_id) "
    "REFERENCES endpoint(id) ON DELETE CASCADE",
    "ALTER TABLE attempt ADD CONSTRAINT attempt_app_id_fkey FOREIGN KEY (app_id) "
    "REFERENCES application(id) ON DELETE CASCADE",
    "ALTER TABLE attempt ADD CONSTRAINT attempt_endpoint_id_fkey FOREIGN KEY (endpoint_id) "
    "REFERENCES endpoint(id) ON DELETE CASCADE",
]
# SQLite's keys have no names: the batch names them by this pattern so they can be dropped.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_SQLITE_KEYS = {
    "delivery": [("msg_id", "message")],
    "attempt": [("msg_id", "message"), ("delivery_id", "delivery")],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for table, keys in _SQLITE_KEYS.items():
            with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch_op:
                for column, referred in keys:
                    batch_op.drop_constraint(f"fk_{table}_{column}_{referred}", type_="foreignkey")
        return
    for table in ("attempt", "delivery", "message"):
        op.execute(f"ALTER TABLE {table} RENAME TO {_OLD.format(table)}")
    for table, key in PARTITIONED.items():
        op.execute(f"CREATE TABLE {table} ({_COLUMNS[table]}) PARTITION BY RANGE ({key})")
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    for statement in local_unique_statements("message_default"):
        op.execute(statement)
    today = datetime.now(UTC).date()
    weeks = set(periods_ahead(today))
    stored = op.get_bind().execute(
        text(f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {_OLD.format('message')}")  # noqa: S608
    )
    weeks |= {period_of(day) for (day,) in stored}
    for start in sorted(weeks):
        for statement in create_period_statements(start):
            op.execute(statement)
    for table in PARTITIONED:
        op.execute(f"INSERT INTO {table} SELECT * FROM {_OLD.format(table)}")  # noqa: S608
    for table in ("attempt", "delivery", "message"):
        op.execute(f"DROP TABLE {_OLD.format(table)}")
    for statement in _AFTER_COPY:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for table, keys in _SQLITE_KEYS.items():
            with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch_op:
                for column, referred in keys:
                    batch_op.create_foreign_key(
                        f"fk_{table}_{column}_{referred}", referred, [column], ["id"], ondelete="CASCADE"
                    )
        return
    for table in ("attempt", "delivery", "message"):
        op.execute(f"ALTER TABLE {table} RENAME TO {_OLD.format(table)}")
    for table in PARTITIONED:
        op.execute(f"CREATE TABLE {table} (LIKE {_OLD.format(table)} INCLUDING DEFAULTS)")
        op.execute(f"INSERT INTO {table} SELECT * FROM {_OLD.format(table)}")  # noqa: S608
    for table in ("attempt", "delivery", "message"):
        op.execute(f"DROP TABLE {_OLD.format(table)} CASCADE")
    for statement in _AFTER_COPY:
        op.execute(statement.replace("PRIMARY KEY (id, msg_id)", "PRIMARY KEY (id)"))
    op.execute("ALTER TABLE message ADD CONSTRAINT message_app_id_event_id_key UNIQUE (app_id, event_id)")
    op.execute("ALTER TABLE message ADD CONSTRAINT message_app_id_idempotency_key_key UNIQUE (app_id, idempotency_key)")
    op.execute(
        "ALTER TABLE delivery ADD CONSTRAINT delivery_msg_id_fkey FOREIGN KEY (msg_id) "
        "REFERENCES message(id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE attempt ADD CONSTRAINT attempt_msg_id_fkey FOREIGN KEY (msg_id) "
        "REFERENCES message(id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE attempt ADD CONSTRAINT attempt_delivery_id_fkey FOREIGN KEY (delivery_id) "
        "REFERENCES delivery(id) ON DELETE CASCADE"
    )
