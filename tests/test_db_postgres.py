"""PostgreSQL engines (db/postgres.py): a connection back from use less than IDLE_PING_S ago
is handed out without a ping (cast intake's batches save that round trip), one idle longer is
pinged and, if its server side is gone, replaced before anyone uses it; one that died while
counted as busy fails its first statement, after which the pool is new."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, exc, text

from ballot_service.db import make_engine, postgres

PG_URL = os.environ.get("BALLOT_TEST_DATABASE_URL", "")

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (BALLOT_TEST_DATABASE_URL)")


@pytest.fixture
def engine(db_url, monkeypatch):
    eng = make_engine(db_url)
    pings = []
    real = eng.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(eng.dialect, "do_ping", counted)
    eng.pings = pings
    yield eng
    eng.dispose()


def _pid(engine) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT pg_backend_pid()")).scalar()


def _kill(pid: int) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            assert c.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar()  # waits
    finally:
        admin.dispose()


def test_a_connection_just_used_is_not_pinged(engine, monkeypatch):
    monkeypatch.setattr(postgres, "IDLE_PING_S", 1e9)  # however slow this machine is today
    first = _pid(engine)
    assert _pid(engine) == first and _pid(engine) == first
    assert engine.pings == []


def test_an_idle_connection_is_pinged_and_replaced_if_dead(engine, monkeypatch):
    first = _pid(engine)
    _kill(first)
    monkeypatch.setattr(postgres, "IDLE_PING_S", 0.0)  # every pooled connection counts as idle
    second = _pid(engine)
    assert second != first and engine.pings  # the dead one was found before use
    assert _pid(engine) == second  # and the new one is alive


def test_a_connection_that_died_while_busy_fails_once_then_the_pool_is_new(engine, monkeypatch):
    monkeypatch.setattr(postgres, "IDLE_PING_S", 1e9)
    first = _pid(engine)
    _kill(first)
    with pytest.raises(exc.OperationalError), engine.connect() as c:
        c.execute(text("SELECT 1"))
    assert _pid(engine) != first and engine.pings == []
