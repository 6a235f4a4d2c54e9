"""The declarative base with one naming convention, UTC-only datetimes, and the two clocks:
the app's (utcnow) and the database's (db_now, database_now) that deadlines use."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, MetaData, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC; refuses naive input so local time never leaks in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class db_now(FunctionElement):
    """The database's clock in UTC, as SQL: deadlines (vote time limits, login lockouts) are
    set from it and compared with it, so every app node and a restarted one agree."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now)
def _db_now_default(element, compiler, **kw) -> str:
    # AT TIME ZONE 'UTC': a naive UTC timestamp like the columns, whatever the server's TimeZone.
    return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element, compiler, **kw) -> str:
    # Six fractional digits, as SQLAlchemy stores and parses SQLite datetimes.
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def database_now(db) -> dt.datetime:
    """The database's clock now (aware UTC); `db`: a Session or Connection. On PostgreSQL the
    transaction's start time, one value for the whole transaction."""
    return db.execute(select(db_now())).scalar_one()
