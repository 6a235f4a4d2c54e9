"""db.insert_rows (one statement per SQLite cast batch): the rows it stores read back exactly as rows
stored by SQLAlchemy's own INSERT, values through the columns' types; not in a read phase."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select

from ballot_service.db import insert_rows, read_phase
from ballot_service.models import AuditEvent


def _rows(first_seq: int, n: int) -> list[dict]:
    at = dt.datetime(2027, 1, 15, 9, 30, tzinfo=dt.timezone.utc)
    return [{"chain": 1, "seq": first_seq + i, "at": at if i % 2 else None, "kind": "cast_accepted", "sitting_id": None,
             "data": '{"serial":"%04d","中文":"赞成"}' % i, "prev_hash": "0" * 64, "hash": f"{first_seq + i:064x}"}
            for i in range(n)]


def test_rows_read_back_as_sqlalchemy_stores_them(db):
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("the multi-row insert is SQLite's")
    table = AuditEvent.__table__
    conn = db.connection()
    # 300 rows of 7 columns: more than one statement's 999 parameters.
    insert_rows(conn, table, _rows(1, 300))
    conn.execute(insert(table), _rows(1001, 300))
    db.commit()
    got = db.execute(select(table).order_by(table.c.seq)).mappings().all()
    ours, theirs = got[:300], got[300:]
    assert len(ours) == len(theirs) == 300
    for a, b in zip(ours, theirs):
        assert {k: v for k, v in a.items() if k not in ("seq", "hash")} == \
               {k: v for k, v in b.items() if k not in ("seq", "hash")}
    assert ours[1]["at"] == dt.datetime(2027, 1, 15, 9, 30, tzinfo=dt.timezone.utc) and ours[0]["at"] is None
    raw = db.connection().exec_driver_sql("SELECT at FROM audit_events WHERE seq IN (2, 1002)").all()
    assert raw[0] == raw[1]  # the very same stored text


def test_refused_inside_a_read_phase(db):
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("read phases are SQLite's")
    with pytest.raises(RuntimeError, match="read phase"):
        with read_phase(db):
            insert_rows(db.connection(), AuditEvent.__table__, _rows(1, 1))
    assert db.scalar(select(AuditEvent.seq).limit(1)) is None
