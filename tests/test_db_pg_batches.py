"""PostgreSQL batch statements (db/pg_batches.py): a batch's rows as one array per column and
its keys as `= ANY(array)`, so a batch of any size sends the same SQL text; rows that break a
unique constraint are skipped and not counted, and every column type round-trips (JSON marks,
NULLs, bytes, Chinese text)."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import event, exc, select

from ballot_service.db import make_engine, pg_batches
from ballot_service.migrate import upgrade
from ballot_service.models import Cast, StagedCast

PG_URL = os.environ.get("BALLOT_TEST_DATABASE_URL", "")

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (BALLOT_TEST_DATABASE_URL)")

CASTS, STAGED = Cast.__table__, StagedCast.__table__


@pytest.fixture
def conn(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as c:
        c.exec_driver_sql("SET session_replication_role = replica")  # rows without their rounds: no FK checks
        yield c
        c.rollback()
    engine.dispose()


def _cast(i: int, **changes) -> dict:
    return {"id": f"c{i:04d}", "round_id": 7, "serial": f"{i:032x}", "signature": "sig", "msg_prefix": None,
            "retry_hash": None, "marks": {"p01": "for", "项目二": "against"}, "channel": "terminal",
            "receipt": f"r{i}", "submission_digest": f"d{i}", "member_id": None, **changes}


def _statements(conn) -> list[str]:
    seen: list[str] = []
    event.listen(conn, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_rows_of_every_column_type_are_stored_as_given(conn):
    rows = [_cast(1), _cast(2, msg_prefix="AAAA", retry_hash="h" * 64, member_id=3, marks={})]
    assert pg_batches.insert_or_nothing(conn, CASTS, rows) == 2
    stored = {r.id: dict(r._mapping) for r in conn.execute(select(CASTS))}
    assert stored == {r["id"]: r for r in rows}
    sealed = [{"id": 2**61 + k, "tag": f"{k:064x}", "round_id": 7, "sealed": bytes([k]) * 300} for k in range(3)]
    assert pg_batches.insert_or_nothing(conn, STAGED, sealed) == 3
    assert sorted(map(tuple, conn.execute(select(STAGED.c.id, STAGED.c.sealed)))) == \
        [(r["id"], r["sealed"]) for r in sealed]


def test_a_row_that_breaks_a_unique_constraint_is_skipped_and_not_counted(conn):
    assert pg_batches.insert_or_nothing(conn, CASTS, [_cast(1)]) == 1
    # the same serial under a new id, and the same id again: both skipped, the third stored
    again = [_cast(9, serial=_cast(1)["serial"]), _cast(1, serial="f" * 32), _cast(3)]
    assert pg_batches.insert_or_nothing(conn, CASTS, again) == 1
    assert sorted(conn.execute(select(CASTS.c.id)).scalars()) == ["c0001", "c0003"]
    assert pg_batches.insert_or_nothing(conn, CASTS, []) == 0


def test_batches_of_any_size_send_one_sql_text(conn):
    seen = _statements(conn)
    for start, size in ((0, 1), (1, 5), (6, 64)):
        pg_batches.insert_or_nothing(conn, CASTS, [_cast(i) for i in range(start, start + size)])
    query = select(CASTS.c.id).where(pg_batches.in_array(CASTS.c.serial, "serials"))
    found = [conn.execute(query, {"serials": [_cast(i)["serial"] for i in range(n)]}).scalars().all()
             for n in (1, 7, 70)]
    assert [len(f) for f in found] == [1, 7, 70]
    assert len(seen) == 6 and len(set(seen[:3])) == 1 and len(set(seen[3:])) == 1


def test_a_value_too_long_for_its_column_is_refused_not_cut(conn):
    """An array of VARCHAR(64) would cut a 65-character serial to 64 without a word; the column
    must refuse it as a plain INSERT does, and a longer key must not match a stored one."""
    stored = _cast(1)
    assert pg_batches.insert_or_nothing(conn, CASTS, [stored]) == 1
    query = select(CASTS.c.id).where(pg_batches.in_array(CASTS.c.serial, "serials"))
    assert conn.execute(query, {"serials": [stored["serial"] + "0"]}).all() == []
    with pytest.raises(exc.DataError, match="too long"):
        pg_batches.insert_or_nothing(conn, CASTS, [_cast(2, serial="e" * 65)])


def test_empty_lists_match_nothing_and_insert_nothing(conn):
    assert pg_batches.insert_or_nothing(conn, CASTS, [_cast(1)]) == 1
    query = select(CASTS.c.id).where(pg_batches.in_array(CASTS.c.serial, "serials"))
    assert conn.execute(query, {"serials": []}).all() == []
    assert pg_batches.insert_or_nothing(conn, STAGED, []) == 0


def test_a_column_left_out_gets_no_shared_python_default(conn):
    """Cast.id has a Python-side default (random_id); an INSERT … SELECT would compute it once
    for the whole statement, giving every row the same id. Left out, it is refused loudly."""
    rows = [{k: v for k, v in _cast(i).items() if k != "id"} for i in (1, 2)]
    with pytest.raises(exc.IntegrityError, match="null value"):
        pg_batches.insert_or_nothing(conn, CASTS, rows)
