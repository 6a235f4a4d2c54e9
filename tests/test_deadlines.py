"""Deadlines on the database's clock (issue 16, item 7): a vote's time limit is stored as a
deadline set from the database's clock and compared with it, so it survives a restart (a new
app instance) and every app node agrees on it, whatever its own clock says. (A login
lockout surviving a restart: tests/test_login_limits.py.)"""
from __future__ import annotations

import datetime as dt

import pytest
from helpers_live import OPERATOR, Api, blind_ballot, setup_sitting
from sqlalchemy import func, select, text, update
from terminal_support import cast

from ballot_service import create_app
from ballot_service.db import database_now, db_now
from ballot_service.domain import voting
from ballot_service.models import Round

LIMIT_S = 600


def open_timed_vote(api) -> tuple:
    s = setup_sitting(api, members=3, open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "timed", "kind": "resolution", "title": "限时表决", "time_limit_s": LIMIT_S})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    return s, item["id"]


def test_database_now_is_the_database_clock_in_utc(db):
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET TIME ZONE 'Asia/Shanghai'"))  # the server's zone must not shift it
        now, epoch = db.execute(select(db_now(), func.extract("epoch", func.current_timestamp()))).one()
        assert now.timestamp() == pytest.approx(float(epoch), abs=1e-3)
    else:  # one statement: SQLite's 'now' is the same for all of it
        now, julian = db.execute(select(db_now(), func.julianday("now"))).one()
        assert now.timestamp() == pytest.approx((julian - 2440587.5) * 86400, abs=1e-2)
    assert now.utcoffset() == dt.timedelta(0) and database_now(db).utcoffset() == dt.timedelta(0)
    db.rollback()


def test_the_time_limit_is_a_deadline_from_the_database_clock(api, db, monkeypatch):
    far = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(voting, "database_now", lambda _db: far)
    _, item_id = open_timed_vote(api)
    rnd = db.scalars(select(Round).where(Round.item_id == item_id)).one()
    assert rnd.opened_at == far and rnd.closes_at == far + dt.timedelta(seconds=LIMIT_S)


def test_a_vote_deadline_survives_a_new_app_instance(app, api, db, settings_env):
    s, item_id = open_timed_vote(api)
    closes_at = db.scalar(select(Round.closes_at).where(Round.item_id == item_id))
    db.rollback()
    ballot = blind_ballot(api, s.creds[s.members[0]])
    app.extensions["ballot_engine"].dispose()

    restarted = create_app(settings_env)
    try:
        api2 = Api.flask(restarted.test_client())
        api2.call("POST", "/api/admin/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
        _, state = api2.call("GET", "/api/terminal/state", credential=s.creds[s.members[1]])
        assert dt.datetime.fromisoformat(state["vote"]["closes_at"]) == closes_at
        # The deadline passes on the database's clock: the new instance refuses the ballot as late.
        db.execute(update(Round).where(Round.item_id == item_id)
                   .values(closes_at=database_now(db) - dt.timedelta(seconds=1)))
        db.commit()
        status, body = cast(api2, s.creds[s.members[0]], ballot, {"motion": "for"})
        assert status == 409 and body["errors"][0]["reason"] == "late"
        # Extended from the database's clock, the same ballot is taken.
        api2.call("POST", f"/api/admin/items/{item_id}/extend", {"minutes": 2})
        extended, now = db.scalar(select(Round.closes_at).where(Round.item_id == item_id)), database_now(db)
        db.rollback()  # SQLite: a transaction here would hold the write lock the cast needs
        assert extended > now
        status, _ = cast(api2, s.creds[s.members[0]], ballot, {"motion": "for"})
        assert status == 201
    finally:
        restarted.extensions["ballot_engine"].dispose()
