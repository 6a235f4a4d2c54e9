"""The Alembic migrations build exactly the schema models/ describes, on SQLite and
PostgreSQL alike (whichever the db_url fixture gives)."""
from __future__ import annotations

from alembic import command
from schema_support import schema_diff, table_names

from ballot_service.db import Base
from ballot_service.migrate import alembic_config, upgrade


def test_migrations_match_models(db_url):
    upgrade(db_url)
    diff = schema_diff(db_url)
    assert diff == [], (
        "models/ and the migrations differ: regenerate the pending migration "
        f"(scripts/regen-pending-migration) and edit it as its docstring says:\n{diff}")


def test_migrations_create_every_table(db_url):
    upgrade(db_url)
    assert set(Base.metadata.tables) <= table_names(db_url)


def test_upgrade_is_idempotent_and_downgrade_reverses_it(db_url):
    upgrade(db_url)
    upgrade(db_url)  # a second run (every `serve` does one) changes nothing
    assert schema_diff(db_url) == []
    command.downgrade(alembic_config(db_url), "base")
    assert table_names(db_url) - {"alembic_version"} == set()
    upgrade(db_url)
    assert schema_diff(db_url) == []
