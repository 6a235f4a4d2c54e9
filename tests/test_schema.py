"""The Alembic migrations build exactly the schema models/ describes, on SQLite and
PostgreSQL alike (whichever the db_url fixture gives)."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from ballot_service import models  # noqa: F401  (registers every table)
from ballot_service.db import Base
from ballot_service.migrate import alembic_config, upgrade


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_match_models(db_url):
    upgrade(db_url)
    diff = _diff(db_url)
    assert diff == [], (
        "models/ and the migrations differ; add a migration (or, before the first release, "
        f"run scripts/regen-initial-migration):\n{diff}")


def test_migrations_create_every_table(db_url):
    upgrade(db_url)
    assert set(Base.metadata.tables) <= _tables(db_url)


def test_upgrade_is_idempotent_and_downgrade_reverses_it(db_url):
    upgrade(db_url)
    upgrade(db_url)  # a second run (every `serve` does one) changes nothing
    assert _diff(db_url) == []
    command.downgrade(alembic_config(db_url), "base")
    assert _tables(db_url) - {"alembic_version"} == set()
    upgrade(db_url)
    assert _diff(db_url) == []
