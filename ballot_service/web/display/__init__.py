"""Blueprint for the presiding officer's big screen (大屏): a read-only, live view of a sitting.
The screen's content is built in state.py; this module serves it and streams its changes.

    GET /display                      choose a sitting (newest first)
    GET /display/<id>                 the 16:9 screen; the page renders from the state below
    GET /display/<id>/state           JSON: exactly what the screen shows
    GET /display/<id>/events          Server-Sent Events: the state again whenever it changes

What the screen shows (`build_state`, one rule, documented here and on `_mode`):
  1. a vote is open in the sitting          -> "voting": the item, its round, how many have
     voted out of how many ballots were issued (a count of accepted casts, never how anyone
     voted, never running for/against figures: secret or named alike), the time left;
  2. otherwise, if the secretariat chose what to show (a screen_set event, screen_choice.set_screen)
     and no vote closed or was tallied after that: its choice, "title" (会标: only
     the body and the session, e.g. for a break), "checkin", or "result" of a tallied item;
     "auto" goes on to 3;
  3. otherwise the item whose vote was most recently closed, tallied or recorded (the
     newest vote_closed / tallied / record_issued audit event of the sitting):
       closed but not tallied yet -> "counting" (the final voted count, no figures);
       tallied                   -> "result" (only figures the tally produced), plus the
                                    signed record's fingerprint and QR code once one exists;
  4. otherwise                              -> "checkin": 应到 / 实到 / 请假 / 缺席 and quorum.
So the screen follows the hall: check-in, then each vote as it opens, its result when it is
tallied, and that result stays up until the next vote opens.

Live updates, kept cheap because they run beside cast intake: each stream polls only the audit
head's `seq` (one primary-key row; every state change in the service appends an audit event,
each accepted cast included) every ~250 ms on a short-lived connection, and rebuilds the state
only when `seq` moved; it sends the state only if it differs from the last one sent. On SQLite
the display reads through its own engine (db.make_read_engine) whose transactions are plain
deferred BEGINs with query_only on: the service's engine begins every transaction IMMEDIATE
(the write lock), which readers polling four times a second must not take beside the casts. No transaction is ever held
across a sleep.

Under `serve` the stream is not this generator: web/asgi.py serves it on the event loop, so an
open screen holds no server thread (this one remains for `serve --dev` and the tests' WSGI
client, and both share the state endpoint, so the screens' contract is one). Streams end after ~5 minutes so the browser reconnects, which also renews the
login's idle timer.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from typing import Callable, Iterator

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.domain.sittings import get_sitting
from ballot_service.errors import BallotError
from ballot_service.models import Sitting
from ballot_service.vocab import Role
from ballot_service.web.common import finish_refusal
from ballot_service.web.display.state import AuditCursor, build_state
from ballot_service.web.roles import OWN, in_reach, requires
from ballot_service.web.urls import public_url_for

bp = Blueprint("display", __name__)

ROLES = (Role.DISPLAY, Role.SECRETARIAT, Role.AUDITOR)
POLL_SECONDS = 0.25  # audit-head poll interval (screen updates within 1 s of a change)
HEARTBEAT_SECONDS = 15.0  # keep proxies and the client's watchdog happy
STREAM_SECONDS = 300.0  # end the stream so the browser reconnects (renews the login too)
RETRY_MS = 1000  # EventSource reconnection delay
JSON_ENDPOINTS = ("display.state", "display.events")


def verify_url_maker() -> Callable[[str], str]:
    """Absolute /verify/<record_id> URLs, built now (inside the request) for use in a stream."""
    placeholder = "RECORDID"
    template = public_url_for("verify_page.verify_record", record_id=placeholder)
    return lambda record_id: template.replace(placeholder, record_id)


def reader(app: Flask | None = None) -> Session:
    """A short-lived read session; use as a context manager (closing ends its transaction)."""
    app = app or current_app._get_current_object()
    return Session(bind=app.extensions["ballot_read_engine"], expire_on_commit=False)


def state_for(app: Flask, sitting_id: int, verify_url: Callable[[str], str],
               cursor: AuditCursor | None = None) -> dict:
    with reader(app) as db:
        return build_state(db, get_sitting(db, sitting_id), verify_url, cursor)


def comparable(state: dict) -> str:
    """The state without what changes on every build (the clock and the global audit seq)."""
    return json.dumps({k: v for k, v in state.items() if k not in ("now", "seq")}, sort_keys=True,
                      ensure_ascii=False)


# --- views --------------------------------------------------------------------------------

@bp.errorhandler(BallotError)
def _display_error(exc: BallotError):
    """The JSON endpoints answer errors in the service's JSON shape (401 for no login), the
    pages as the rest of the site does (a login redirect, or the error page)."""
    finish_refusal(exc)
    if request.endpoint in JSON_ENDPOINTS:
        return jsonify({"errors": [exc.to_dict()]}), exc.status
    if exc.status == 401:
        return redirect(url_for("console.login_page", next=request.full_path))
    return render_template("error.html", status=exc.status, error=exc), exc.status


@bp.get("/display")
@requires(*ROLES, body=OWN)
def index():
    with reader() as db:
        sittings = list(db.scalars(select(Sitting).where(in_reach(Sitting.body_id)).order_by(Sitting.created_at.desc(), Sitting.id.desc())))
        rows = [{"id": s.id, "name": s.name, "body": s.body.name, "status": s.status,
                 "created_at": s.created_at} for s in sittings]
    return render_template("display/index.html", sittings=rows)


@bp.get("/display/<int:sitting_id>")
@requires(*ROLES, body="sitting_id")
def screen(sitting_id: int):
    state = state_for(current_app._get_current_object(), sitting_id, verify_url_maker())
    return render_template("display/screen.html", state=state,
                           state_url=url_for("display.state", sitting_id=sitting_id),
                           events_url=url_for("display.events", sitting_id=sitting_id))


@bp.get("/display/<int:sitting_id>/state")
@requires(*ROLES, body="sitting_id")
def state(sitting_id: int):
    resp = jsonify(state_for(current_app._get_current_object(), sitting_id, verify_url_maker()))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/display/<int:sitting_id>/events")
@requires(*ROLES, body="sitting_id")
def events(sitting_id: int):
    app = current_app._get_current_object()
    with reader(app) as db:
        get_sitting(db, sitting_id)  # 404 now, not inside the stream
    cfg = app.config
    stream = event_stream(app, sitting_id, verify_url_maker(),
                          poll=cfg.get("DISPLAY_POLL_SECONDS", POLL_SECONDS),
                          heartbeat=cfg.get("DISPLAY_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS),
                          lifetime=cfg.get("DISPLAY_STREAM_SECONDS", STREAM_SECONDS))
    resp = Response(stream, mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # a buffering proxy would hold the events back
    return resp


def event_stream(app: Flask, sitting_id: int, verify_url: Callable[[str], str], *, poll: float,
                 heartbeat: float, lifetime: float) -> Iterator[str]:
    """SSE: `retry`, the state at once, then the state whenever it changes; a heartbeat comment
    (with a `ping` event the client's watchdog sees) every `heartbeat` s; a `bye` event and the
    end after `lifetime` s. No request context or DB session lives across the sleeps."""
    engine = app.extensions["ballot_read_engine"]
    started = last_write = time.monotonic()
    last_seq: int | None = None
    last_sent: str | None = None
    cursor = AuditCursor()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        now = time.monotonic()
        if now - started >= lifetime:
            yield "event: bye\ndata: {}\n\n"
            return
        seq = audit.head_seq(engine)
        if seq != last_seq:
            state = state_for(app, sitting_id, verify_url, cursor)
            last_seq = seq
            key = comparable(state)
            if key != last_sent:
                last_sent, last_write = key, now
                data = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
                yield f"id: {state['seq']}\nevent: state\ndata: {data}\n\n"
                continue
        if now - last_write >= heartbeat:
            last_write = now
            yield f": heartbeat\nevent: ping\ndata: {{\"at\": \"{now_iso()}\"}}\n\n"
        time.sleep(poll)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
