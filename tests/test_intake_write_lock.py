"""SQLite's write lock and cast intake (Flask test client): authenticating a terminal and the
read phase of a request never wait for the write lock another connection holds, and the read
phase refuses to write."""
from __future__ import annotations

import sqlite3

import pytest
from helpers_live import setup_sitting
from terminal_support import cast, get_ballot, round_ids

from ballot_service.db import begin_write, read_phase
from ballot_service.domain.terminals import authenticate_terminal
from ballot_service.models import Round


def _hold_write_lock(app):
    """Another connection holding SQLite's write lock (as a concurrent cast would)."""
    path = app.extensions["ballot_engine"].url.database
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_authentication_and_read_phases_do_not_wait_for_the_write_lock(app, api):
    if app.extensions["ballot_engine"].dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    (r1,) = round_ids(app, s.item_id)
    other = _hold_write_lock(app)
    try:
        db = app.extensions["ballot_sessionmaker"]()
        try:
            term = authenticate_terminal(db, cred)  # would wait 30 s under BEGIN IMMEDIATE
            assert term.id == s.terminal_ids[s.members[0]] and not db.in_transaction()
            with read_phase(db):
                assert db.get(Round, r1).status == "open"
                with pytest.raises(RuntimeError, match="read phase"):
                    db.connection().exec_driver_sql("UPDATE rounds SET places = places")
        finally:
            db.close()
    finally:
        other.rollback()
        other.close()
    db = app.extensions["ballot_sessionmaker"]()
    try:
        begin_write(db)  # the lock is free again
        assert db.in_transaction()
    finally:
        db.close()
    assert cast(api, cred, get_ballot(api, cred), {"motion": "for"})[0] == 201
