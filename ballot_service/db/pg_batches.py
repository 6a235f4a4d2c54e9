"""PostgreSQL: a batch's rows and keys sent as one array per column, in statements whose text
does not depend on the batch's size.

Cast intake stores a batch of up to 64 casts in one INSERT and reads their serials in one
SELECT. Written as multi-row VALUES and IN lists, each batch size made new SQL text: bound
parameters rendered again by SQLAlchemy, the text parsed again by psycopg (it caches only
short statements with few parameters), and parsed and planned again by the server. With one
array per column (`unnest`, `= ANY`) the text is fixed: SQLAlchemy compiles it once, psycopg
caches it and prepares it on the server after a few uses (prepare_threshold), and a batch
costs the same work per row at every size.
"""
from __future__ import annotations

from sqlalchemy import String, Table, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

_inserts: dict[tuple, object] = {}  # (table name, columns) -> its INSERT … SELECT FROM unnest(…)


def insert_or_nothing(conn, table: Table, rows: list[dict]) -> int:
    """INSERT `rows` (dicts with the same keys) in one statement, skipping each row that would
    break a unique constraint (ON CONFLICT DO NOTHING) instead of aborting the transaction;
    returns how many were inserted."""
    if not rows:
        return 0
    cols = tuple(rows[0])
    stmt = _inserts.get((table.name, cols))
    if stmt is None:
        arrays = [bindparam(c, type_=ARRAY(_element(table.c[c].type))) for c in cols]
        source = select(func.unnest(*arrays).table_valued(*cols).render_derived(with_types=False))
        pk = list(table.primary_key.columns)[0]
        # include_defaults=False: a column left out gets no Python-side default, which from_select
        # would compute once for the whole statement (one id for every row)
        stmt = _inserts[(table.name, cols)] = (
            pg_insert(table).from_select(list(cols), source, include_defaults=False)
            .on_conflict_do_nothing().returning(pk))
    return len(conn.execute(stmt, {c: [r[c] for r in rows] for c in cols}).all())


def in_array(column, name: str):
    """`column = ANY(:name)`: the bound parameter `name` is a list of the column's values."""
    return column == any_(bindparam(name, type_=ARRAY(_element(column.type))))


def _element(type_):
    """The array's element type: the column's, without a length. A cast to VARCHAR(64)
    silently cuts longer text, where the column itself refuses it (and a cut serial could
    match a stored one in `= ANY`)."""
    if isinstance(type_, String) and type_.length is not None:
        type_ = type_.copy()
        type_.length = None
    return type_
