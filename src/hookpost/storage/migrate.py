"""Alembic, driven from code so ``hookpost migrate`` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hookpost.kit import secret_box
from hookpost.settings import Settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is %-interpolated; a password may hold a literal %.
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade_to_head(settings: Settings) -> None:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret_box.configure(settings.secret_keys())  # 0003 encrypts what is stored in clear
    command.upgrade(alembic_config(settings), "head")
