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
    # SQLite: batch mode rebuilds a changed table (copy, drop, rename), and dropping a table
    # others point at fails while foreign keys are enforced. The pragma only takes effect
    # outside a transaction, so it goes straight to the driver before ours begins; every key
    # is checked before the commit, and the connection enforces them again whatever happens.
    raw = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=conn, target_metadata=Base.metadata,
                          render_as_batch=raw is not None, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
            if raw is not None:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign key points nowhere: {broken[:5]}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
