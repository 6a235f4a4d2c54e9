"""Alembic environment: the URL comes from the caller (ballot_service.schema), never an ini file."""
from alembic import context

from ballot_service import models  # noqa: F401  (registers every table)
from ballot_service.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    from ballot_service.db import make_engine

    engine = make_engine(url)  # creates the SQLite file's folder on a fresh checkout
    with engine.connect() as conn:
        _run(conn)


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
