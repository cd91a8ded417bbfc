"""endpoint URL credentials stored encrypted, masked in the URLs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 02:00:00.000000

``https://user:password@host/hook`` was stored in clear in ``endpoint.url`` and in every
``attempt.url``. The credentials move to ``endpoint.url_credentials``, encrypted with the
first key of HOOKPOST_SECRET_KEY (which ``hookpost.storage.migrate`` configures); both URLs
keep ``user:***`` in their place (endpoints/credentials.py). The downgrade puts them back
into the endpoint's URL; the attempts' passwords stay masked: they were never needed there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hookpost.endpoints.credentials import split_credentials
from hookpost.kit.secret_box import box

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _split(url: str) -> tuple[str, str | None]:
    try:
        return split_credentials(url)
    except ValueError:  # not a URL urlsplit takes apart: nothing was ever sent to it
        return url, None


def upgrade() -> None:
    op.add_column("endpoint", sa.Column("url_credentials", sa.Text(), nullable=True))
    connection = op.get_bind()
    for table in ("endpoint", "attempt"):
        select = sa.text(f"SELECT id, url FROM {table} WHERE url LIKE '%@%'")  # noqa: S608 - our table names
        for row_id, url in connection.execute(select).all():
            masked, credentials = _split(url)
            if credentials is None:
                continue
            if table == "endpoint":
                update = sa.text("UPDATE endpoint SET url = :url, url_credentials = :credentials WHERE id = :id")
                connection.execute(update, {"url": masked, "credentials": box().encrypt(credentials), "id": row_id})
            else:
                connection.execute(
                    sa.text("UPDATE attempt SET url = :url WHERE id = :id"), {"url": masked, "id": row_id}
                )


def downgrade() -> None:
    connection = op.get_bind()
    select = sa.text("SELECT id, url, url_credentials FROM endpoint WHERE url_credentials IS NOT NULL")
    for row_id, url, stored in connection.execute(select).all():
        hostinfo = url.partition("://")[2].partition("@")[2]
        clear = f"{url.partition('://')[0]}://{box().decrypt(stored)}@{hostinfo}"
        connection.execute(sa.text("UPDATE endpoint SET url = :url WHERE id = :id"), {"url": clear, "id": row_id})
    with op.batch_alter_table("endpoint") as batch_op:
        batch_op.drop_column("url_credentials")
