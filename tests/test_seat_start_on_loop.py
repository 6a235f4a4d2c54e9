"""A seat's next long-poll begins on the ASGI worker's event loop (web/seat_wake.py SeatWake.start)
once Flask has authenticated its credential: the answer is Flask's (status, body, ETag), no
Flask request is made, a revoked terminal still meets Flask's 401, and last seen is noted from
the loop once a vote has closed (a vote kept it from being written), so the tablet looks online
for the next opening."""
from __future__ import annotations

import asyncio
import datetime as dt
import time

from asgi_support import call, taught
from helpers_live import setup_sitting
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ballot_service.models import Terminal
from ballot_service.web import asgi


class _FlaskStates:
    """Counts the state requests that reached Flask."""

    def __init__(self, app):
        self.calls = 0
        inner = app.wsgi_app

        def counted(environ, start_response):
            self.calls += environ["PATH_INFO"] == "/api/terminal/state"
            return inner(environ, start_response)

        app.wsgi_app = counted


def _etag(headers: dict) -> str:
    return headers["etag"].strip('"')


def test_a_taught_seats_next_long_poll_is_answered_on_the_loop_as_by_flask(app, api):
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    flask = _FlaskStates(app)
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)  # Flask: the seat is learnt
        taught_calls = flask.calls
        changed = await call(ag, "GET", "/api/terminal/state", cred, query=b"wait=old-tag")
        return taught_calls, changed

    taught_calls, changed = asyncio.run(run())
    assert (taught_calls, flask.calls) == (1, 1)  # the second long-poll never reached Flask
    from_flask = api.client.get("/api/terminal/state?wait=old-tag", headers={"Authorization": f"Bearer {cred}"})
    assert changed[0] == from_flask.status_code == 200
    assert changed[2] == from_flask.data and _etag(changed[1]) == from_flask.headers["ETag"].strip('"')
    for name in ("content-type", "cache-control", "x-content-type-options"):
        assert changed[1][name] == from_flask.headers[name]


def test_a_revoked_seats_long_poll_goes_to_flask(app, api):
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[s.members[0]]}/revoke", {})
        await asyncio.sleep(0.3)  # the watcher reads the heads every 0.02 s
        return await call(ag, "GET", "/api/terminal/state", cred, query=b"wait=old-tag")

    assert asyncio.run(run())[0] == 401


def test_after_a_vote_closes_last_seen_is_noted_from_the_loop(app, api):
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=2)  # the vote is open: no last seen is written
    cred, tid = s.creds[s.members[0]], s.terminal_ids[s.members[0]]
    flask = _FlaskStates(app)
    engine = app.extensions["ballot_engine"]
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with Session(engine) as db:
        db.execute(update(Terminal).where(Terminal.id == tid).values(last_seen_at=long_ago))
        db.commit()
    ag = asgi.create_asgi_app(app, threads=2)

    def last_seen():
        with Session(engine) as db:
            return db.scalar(select(Terminal.last_seen_at).where(Terminal.id == tid))

    async def run():
        during = await taught(ag, cred)  # learnt while the vote is open
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        await asyncio.sleep(0.3)
        after = await call(ag, "GET", "/api/terminal/state", cred, query=b"wait=old-tag")
        deadline = time.monotonic() + 5
        while last_seen().replace(tzinfo=dt.timezone.utc) == long_ago and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the seen batch is committed on the group commit's thread
        return during, after

    during, after = asyncio.run(run())
    assert during["vote"] and after[0] == 200 and flask.calls == 1
    assert last_seen().replace(tzinfo=dt.timezone.utc) > long_ago
