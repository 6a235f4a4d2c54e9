"""Create or upgrade the database schema with Alembic (the only way tables are made)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def revision(url: str, message: str) -> None:
    """Developers: autogenerate a migration from models/ (scripts/regen-pending-migration
    keeps the pending, unreleased migration up to models/)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
