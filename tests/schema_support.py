"""The schema comparison of the migration tests (test_schema.py, test_upgrade.py): what
Alembic's autogenerate finds between a database and models/."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from ballot_service import models  # noqa: F401  (registers every table)
from ballot_service.db import Base


def schema_diff(url: str) -> list:
    """Every difference between the database at `url` and models/, types and server defaults too."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
