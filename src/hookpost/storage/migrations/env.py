"""Alembic environment: runs migrations through the same async engine as the app."""

import asyncio
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from alembic import context
from sqlalchemy import Connection, Index, UniqueConstraint
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from hookpost.storage.models import Base
from hookpost.storage.partitions import is_partition

target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, parent_names: Mapping[Any, str | None]) -> bool:
    # A week's partition is made by the upkeep, not declared in the models.
    return not (type_ == "table" and name is not None and is_partition(name))


def _include_object(dialect: str) -> Callable[..., bool]:
    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        # PostgreSQL keeps the message's unique keys per partition (storage/partitions.py).
        partitioned = dialect == "postgresql" and isinstance(obj, UniqueConstraint)
        if partitioned and obj.table.name == "message":  # type: ignore[attr-defined]
            return False
        # Indexes only PostgreSQL has (models.py: the JSONB GIN indexes).
        return not (dialect != "postgresql" and isinstance(obj, Index) and obj.info.get("postgresql_only"))

    return include


def _run(connection: Connection) -> None:
    # SQLite cannot reflect expression indexes; the ones it would compare are PostgreSQL's own,
    # left out above, but alembic warns before it asks.
    warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        include_object=_include_object(connection.dialect.name),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by hookpost.storage.migrate"
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `hookpost migrate`")
asyncio.run(_run_online())
