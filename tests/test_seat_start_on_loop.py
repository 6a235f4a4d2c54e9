"""A seat's next long-poll begins on the ASGI worker's event loop (web/seat_wake.py SeatWake.start)
once Flask has authenticated its credential: the answer is Flask's (status, body, ETag), no
Flask request is made, a revoked terminal still meets Flask's 401, and last seen is noted from
the loop once a vote has closed (a vote kept it from being written), so the tablet looks online
for the next opening."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import SimpleNamespace

import asgi_support
from asgi_support import call, taught
from helpers_live import setup_sitting
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ballot_service.db import utcnow
from ballot_service.domain import tablet_setup
from ballot_service.models import Terminal
from ballot_service.web import asgi, seat_wake


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


def _age_last_seen(engine, tid: int, seconds: float) -> dt.datetime:
    """Set the tablet's last seen `seconds` ago (utcnow's form, as note_seen writes it); returns it."""
    when = utcnow() - dt.timedelta(seconds=seconds)
    with Session(engine) as db:
        db.execute(update(Terminal).where(Terminal.id == tid).values(last_seen_at=when))
        db.commit()
    return when


async def _until_written(engine, tid: int, column, before) -> object:
    """The column once it differs from `before` (the seen batch commits on its own thread), or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        with Session(engine) as db:
            value = db.scalar(select(column).where(Terminal.id == tid))
        if value != before or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def test_a_short_vote_does_not_keep_the_next_long_poll_from_noting_last_seen(app, api):
    """This process noted the tablet seconds before a vote opened; the vote is over quickly. Its
    last seen is SEEN_EVERY_S old when the vote closes: Flask's first answer after the close
    would write it, so the loop's must, or the tablet looks offline (and the next vote's opening
    is refused) until a long-poll HOLD_SECONDS later."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=2, open_vote=False)
    cred, tid = s.creds[s.members[0]], s.terminal_ids[s.members[0]]
    engine = app.extensions["ballot_engine"]
    flask = _FlaskStates(app)
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)  # no vote open: noted now
        await asyncio.sleep(1.2)  # a vote takes longer than NOTE_SEEN_EVERY_S
        api.call("POST", f"/api/admin/items/{s.item_id}/open")
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        await asyncio.sleep(0.3)
        before = _age_last_seen(engine, tid, tablet_setup.SEEN_EVERY_S + 5)  # written 35 s ago
        after = await call(ag, "GET", "/api/terminal/state", cred, query=b"wait=old-tag")
        return after, before, await _until_written(engine, tid, Terminal.last_seen_at, before)

    after, before, seen = asyncio.run(run())
    assert after[0] == 200 and flask.calls == 1  # answered on the loop
    assert seen != before


def test_a_reset_tablet_is_set_up_again_at_its_first_long_poll(app, api):
    """重置本终端 clears set up; the page keeps the ETag it held, so the credential entered again
    begins with a long-poll (?wait=), which this process answers. Flask would note the tablet set
    up at once; so must the loop, not up to HOLD_SECONDS later (the console shows 未设置)."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=2, open_vote=False)
    cred, tid = s.creds[s.members[0]], s.terminal_ids[s.members[0]]
    engine = app.extensions["ballot_engine"]
    ag = asgi.create_asgi_app(app, threads=2)
    code = tablet_setup.reset_code(app.config["SETTINGS"].secret_key, s.sitting_id)

    async def run():
        held = await call(ag, "GET", "/api/terminal/state", cred, query=b"wait=none")  # Flask: learnt
        api.call("POST", "/api/terminal/reset", {"code": code}, credential=cred)
        await asyncio.sleep(1.2)  # the credential is entered again (longer than NOTE_SEEN_EVERY_S)
        tag = held[1]["etag"].strip('"').encode()
        again = asyncio.ensure_future(call(ag, "GET", "/api/terminal/state", cred, query=b"wait=" + tag))
        set_up = await _until_written(engine, tid, Terminal.set_up_at, None)
        again.cancel()
        return set_up

    assert asyncio.run(run()) is not None


def test_every_long_poll_a_tablet_begins_notes_last_seen_when_due(app, api, monkeypatch):
    """Long-polls begin HOLD_SECONDS apart, but one's note may come late (it waited for the
    sitting's read): a throttle of HOLD_SECONDS then skips the next long-poll's note, and last
    seen, written only once SEEN_EVERY_S old, gets SEEN_EVERY_S + 2 x HOLD_SECONDS (> ONLINE_S)
    old. Whether a write is due is the seen batch's to decide, as it is Flask's at every poll."""
    s = setup_sitting(api, members=2, open_vote=False)
    cred, tid = s.creds[s.members[0]], s.terminal_ids[s.members[0]]
    clock = [1000.0]
    monkeypatch.setattr(seat_wake, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    noted = []
    monkeypatch.setattr(tablet_setup, "note_seen_nowait", lambda engine, terminal_id: noted.append(terminal_id))
    seats = seat_wake.SeatWake(app)
    wsgi = asgi.FlaskOnThreads(app, 2)
    request = asgi_support.scope("GET", "/api/terminal/state", b"", cred, b"wait=old-tag")

    async def run():
        status, headers, _, seat = await wsgi.answer_seat(request)
        seats.learn(request, seat, headers)  # Flask noted it (if due)
        _age_last_seen(app.extensions["ballot_engine"], tid, tablet_setup.SEEN_EVERY_S + 1)
        clock[0] += asgi.HOLD_SECONDS + 0.3  # the next long-poll, its note after a 0.3 s read
        first = await seats.start(request, (1, 1))
        clock[0] += asgi.HOLD_SECONDS - 0.25  # the one after: begun HOLD_SECONDS after the last
        second = await seats.start(request, (1, 1))
        _age_last_seen(app.extensions["ballot_engine"], tid, 0)
        clock[0] += asgi.HOLD_SECONDS
        third = await seats.start(request, (2, 2))  # a change: its read shows last seen just written
        return first, second, third

    first, second, third = asyncio.run(run())
    assert first[0] == second[0] == third[0] == 200
    assert noted == [tid, tid]  # not the third: no job for a write that is not due
