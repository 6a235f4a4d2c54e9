"""PostgreSQL engines: durable commits, and a liveness check only for connections that sat idle.

SQLAlchemy's pool_pre_ping costs a round trip at every checkout. Cast intake checks out one
connection per batch and each round trip of a batch is paid with the GIL (its writer thread
takes it back from the event loop) and with the audit head locked by the batch before it, so a
connection that was in use less than IDLE_PING_S ago is handed out as it is (one round trip of
a batch's ~9 fewer; benchmarks/bench_casts.py showed no change beyond the machine's own swing,
since there the two cores, not the round trips, are the limit). If the server
went away within that second the first statement fails instead: SQLAlchemy then drops every
pooled connection (a disconnect invalidates the pool), group commit stores that batch's casts
again, each alone, on new connections (group_commit.run_batch), and any other request answers
one error that its caller may retry. No acknowledged cast is lost either way: a receipt
follows a COMMIT that returned.
"""
from __future__ import annotations

import time

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

IDLE_PING_S = 1.0  # a connection idle longer than this is pinged before it is handed out
_LAST_USED = "ballot_last_used"  # in the pool's connection record: time.monotonic() at checkin


def configure(engine: Engine) -> None:
    """Make `engine` (PostgreSQL, created without pool_pre_ping) commit durably and check
    idle connections."""
    event.listen(engine, "connect", _synchronous_commit)
    event.listen(engine, "connect", _fresh)
    event.listen(engine, "checkin", _fresh)

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last < IDLE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            if not engine.dialect.is_disconnect(e, dbapi_conn, None):
                raise
            alive = False
        if not alive:  # the server went away: the pool replaces every connection and tries again
            raise exc.InvalidatePoolError("the PostgreSQL connection was closed while idle")


def _fresh(dbapi_conn, record) -> None:
    if dbapi_conn is not None:  # None: the connection was invalidated
        record.info[_LAST_USED] = time.monotonic()


def _synchronous_commit(dbapi_conn, _record) -> None:
    """A receipt is sent after the COMMIT returns, so the COMMIT must be durable: a server whose
    default is synchronous_commit = off gets `on` for our connections. Stronger settings a DBA
    chose (remote_write, remote_apply for a synchronous standby) and `local` are kept."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("SHOW synchronous_commit")
        if cur.fetchone()[0] == "off":
            cur.execute("SET synchronous_commit = on")
        dbapi_conn.commit()  # psycopg opened a transaction for the SHOW: end it
    finally:
        cur.close()
