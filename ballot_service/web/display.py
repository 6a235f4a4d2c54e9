"""Blueprint for the presiding officer's big screen (大屏): a read-only, live view of a sitting.

    GET /display                      choose a sitting (newest first)
    GET /display/<id>                 the 16:9 screen; the page renders from the state below
    GET /display/<id>/state           JSON: exactly what the screen shows
    GET /display/<id>/events          Server-Sent Events: the state again whenever it changes

What the screen shows (`build_state`, one rule, documented here and on `_mode`):
  1. a vote is open in the sitting          -> "voting": the item, its round, how many have
     voted out of how many ballots were issued (a count of accepted casts, never how anyone
     voted, never running for/against figures: secret or named alike), the time left;
  2. otherwise, if the secretariat chose what to show (a screen_set event, sittings.set_screen)
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
the display reads through its own engine whose transactions are plain deferred BEGINs with
query_only on: the service's engine begins every transaction IMMEDIATE (the write lock), which
readers polling four times a second must not take beside the casts. No transaction is ever held
across a sleep.

Each open stream holds one server thread (a granian worker's) for up to STREAM_SECONDS, and a
closed client is noticed at the next write (a change or the ~15 s heartbeat). That is fine for
the few screens of a hall (`serve --workers 2 --threads 16` = 32 threads); more screens need
more threads. Streams end after ~5 minutes so the browser reconnects, which also renews the
login's idle timer.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import threading
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
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ballot_service.db import utcnow
from ballot_service.domain import tally, voting
from ballot_service.domain.sittings import attendance_state, get_sitting, has_result, open_item
from ballot_service.errors import BallotError
from ballot_service.models import AuditEvent, AuditHead, Cast, Item, Record, Sitting
from ballot_service.web.common import finish_refusal
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_url_for

bp = Blueprint("display", __name__)

ROLES = ("display", "secretariat", "auditor")
POLL_SECONDS = 0.25  # audit-head poll interval (screen updates within 1 s of a change)
HEARTBEAT_SECONDS = 15.0  # keep proxies and the client's watchdog happy
STREAM_SECONDS = 300.0  # end the stream so the browser reconnects (renews the login too)
RETRY_MS = 1000  # EventSource reconnection delay
CONCLUDING_EVENTS = ("vote_closed", "tallied", "record_issued")
SCREEN_EVENT = "screen_set"  # the secretariat's choice of what the screen shows between votes
# What ends that choice (besides a vote opening): the hall then sees the vote just taken. Signing
# a record does not: it is routine paperwork, often done during the break the choice is for.
TAKING_BACK_EVENTS = ("vote_closed", "tallied")
JSON_ENDPOINTS = ("display.state", "display.events")


# --- reading the database ----------------------------------------------------------------

_engine_lock = threading.Lock()


def read_engine(app: Flask) -> Engine:
    """The engine the display reads through. PostgreSQL: the service's own (MVCC readers do not
    block writers). SQLite: a second engine on the same file whose transactions begin DEFERRED
    (a WAL snapshot that never blocks or waits for the casts' writer) and are read-only."""
    eng = app.extensions.get("display_read_engine")
    if eng is not None:
        return eng
    with _engine_lock:
        eng = app.extensions.get("display_read_engine")
        if eng is None:
            main: Engine = app.extensions["ballot_engine"]
            eng = main if main.dialect.name != "sqlite" else _sqlite_reader(main)
            app.extensions["display_read_engine"] = eng
    return eng


def _sqlite_reader(main: Engine) -> Engine:
    # Each poll and each state build holds a connection for a few milliseconds only; the pool
    # is sized like the threads of a worker so a reader never waits for a connection.
    eng = create_engine(main.url, connect_args={"timeout": 30}, pool_size=4, max_overflow=252)

    @event.listens_for(eng, "connect")
    def _pragmas(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(eng, "begin")
    def _begin_deferred(conn):
        conn.exec_driver_sql("BEGIN")

    return eng


def reader(app: Flask | None = None) -> Session:
    """A short-lived read session; use as a context manager (closing ends its transaction)."""
    return Session(bind=read_engine(app or current_app._get_current_object()), expire_on_commit=False)


def head_seq(engine: Engine) -> int:
    """The audit head's seq: one primary-key row, on a connection held only for this read."""
    with engine.connect() as conn:
        return conn.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar() or 0


# --- what the screen shows ----------------------------------------------------------------

class Follow:
    """A stream's memory of the newest concluding event and the newest screen choice it has
    seen ((seq, data) or None), so that each rebuild reads only the audit events appended since
    the last one instead of searching the whole log."""

    def __init__(self) -> None:
        self.scanned = 0
        self.newest: dict[tuple, tuple[int, str] | None] = {}


def build_state(db: Session, sitting: Sitting, verify_url: Callable[[str], str],
                follow: Follow | None = None) -> dict:
    """Everything the screen shows, as JSON-ready data (labels live in the template).

    During a vote it holds no per-choice figure at all: only counts of ballots cast/issued."""
    seq = db.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0
    body = sitting.body
    state: dict = {
        "sitting": {"id": sitting.id, "name": sitting.name, "status": sitting.status,
                    "body": body.name, "body_kind": body.kind},
        "attendance": attendance_state(db, sitting).as_dict(),
        "seq": seq,
        "now": utcnow().isoformat(),
    }
    mode, item = _mode(db, sitting, seq, follow)
    state["mode"] = mode
    if mode in ("voting", "counting"):
        state["vote"] = _vote_view(db, item)
    elif mode == "result":
        state["result"] = _result_view(item)
        state["record"] = _record_view(db, item, verify_url)
    return state


def _newest(db: Session, sitting: Sitting, kinds: tuple, seq: int, follow: Follow | None):
    """(seq, data) of the sitting's newest event of `kinds` up to `seq`, or None."""
    query = (select(AuditEvent.seq, AuditEvent.data)
             .where(AuditEvent.sitting_id == sitting.id, AuditEvent.kind.in_(kinds), AuditEvent.seq <= seq)
             .order_by(AuditEvent.seq.desc()).limit(1))
    if follow is None:
        row = db.execute(query).first()
        return tuple(row) if row is not None else None
    # Only the events appended since the last build (seq was read first, in this snapshot).
    row = db.execute(query.where(AuditEvent.seq > follow.scanned)).first()
    if row is not None:
        follow.newest[kinds] = tuple(row)
    return follow.newest.get(kinds)


def _mode(db: Session, sitting: Sitting, seq: int, follow: Follow | None) -> tuple[str, Item | None]:
    """Which item the screen is about. An open vote wins (only one can be open at a time).
    Otherwise the secretariat's newest screen choice (sittings.set_screen), if no vote closed or
    was tallied after it: 会标 ("title"), check-in, or a tallied item's result.
    Otherwise the item of the newest vote_closed / tallied / record_issued event of this
    sitting (so the result of the vote just taken stays up until the next one opens, and a
    re-tallied or newly recorded older item comes back to the front); otherwise check-in."""
    voting_now = open_item(db, sitting)
    if voting_now is not None:
        return "voting", voting_now
    concluding = _newest(db, sitting, CONCLUDING_EVENTS, seq, follow)
    taken_back = _newest(db, sitting, TAKING_BACK_EVENTS, seq, follow)
    choice = _newest(db, sitting, (SCREEN_EVENT,), seq, follow)
    if follow is not None:
        follow.scanned = max(follow.scanned, seq)
    if choice is not None and (taken_back is None or choice[0] > taken_back[0]):
        chosen = json.loads(choice[1])
        if chosen.get("show") in ("title", "checkin"):
            return chosen["show"], None
        if chosen.get("show") == "result":
            item = _item_of(db, sitting, chosen)
            if item is not None and has_result(item):
                return "result", item
        # "auto" (or a result no longer there): follow the votes
    item = _item_of(db, sitting, json.loads(concluding[1])) if concluding is not None else None
    if item is None:
        return "checkin", None
    rnd = voting.current_round(item)
    if item.status == "closed" or rnd.status == "closed":
        return "counting", item
    if has_result(item):
        return "result", item
    return "checkin", None


def _item_of(db: Session, sitting: Sitting, data: dict) -> Item | None:
    item_id = data.get("item_id")
    item = db.get(Item, item_id) if isinstance(item_id, int) else None
    return item if item is not None and item.sitting_id == sitting.id else None


def _titles(item: Item) -> dict[str, str]:
    return {c.key: c.title for c in item.candidates}


def _vote_view(db: Session, item: Item) -> dict:
    """A vote in progress (or just closed): how many have voted, never how."""
    rnd = voting.current_round(item)
    if item.channel == "tally_sheet":
        voted = issued = None  # counted by hand after the vote; nothing electronic to show
    else:
        voted = db.scalar(select(func.count()).select_from(Cast).where(Cast.round_id == rnd.id)) or 0
        issued = rnd.issued if rnd.status != "open" and rnd.issued is not None \
            else voting.issued_count(db, item, rnd)
    titles = _titles(item)
    return {
        "item_id": item.id, "key": item.key, "title": item.title, "kind": item.kind,
        "secret": item.secret, "channel": item.channel,
        "round": rnd.number, "places": rnd.places,
        "candidate_count": len(rnd.candidate_keys),
        # A runoff names the projects it is between (titles only).
        "runoff_titles": [titles.get(k, k) for k in rnd.candidate_keys] if rnd.number > 1 else [],
        "members": rnd.members, "present": rnd.present,
        "voted": voted, "issued": issued,
        "open": rnd.status == "open",
        "closes_at": rnd.closes_at.isoformat() if rnd.closes_at and rnd.status == "open" else None,
    }


def _row(c: dict, titles: dict[str, str]) -> dict:
    return {"key": c["key"], "title": titles.get(c["key"], c["key"]), "for": c["for"],
            "against": c["against"], "abstain": c["abstain"], "void": c.get("void", 0),
            "passed": bool(c["passed"])}


def _result_view(item: Item) -> dict:
    """The tallied result, from the stored round results via tally.item_result (never recounted)."""
    rounds = [r for r in item.rounds if r.status == "tallied" and r.result]
    entry = tally.item_result(item.key, item.kind, [r.result for r in rounds])
    first, last = rounds[0].result, rounds[-1].result
    titles = _titles(item)
    out = {
        "item_id": item.id, "key": item.key, "title": item.title, "kind": item.kind,
        "secret": item.secret, "channel": item.channel, "status": entry["status"],
        "rounds": len(rounds), "places": item.places,
        "rule": first.get("rule"), "threshold_votes": first.get("threshold_votes"),
        **{k: entry[k] for k in ("members", "present", "quorum_met", "issued", "returned", "valid",
                                 "invalid", "refused", "not_voted")},
    }
    rows = [_row(c, titles) for c in entry["candidates"]]
    if item.kind == "resolution":
        out["motion"] = rows[0] if rows else None
        out["passed"] = bool(entry.get("passed"))
    elif item.kind == "appointment":
        out["nominees"] = rows
    else:
        selected = list(entry.get("selected", []))
        tied = set(entry.get("tied", []))
        runoff = entry.get("runoff")
        runoff_for = {c["key"]: c["for"] for c in runoff["candidates"]} if runoff else {}
        by_key = {r["key"]: r for r in rows}
        # Ranked: the selected in their selection order, then the rest by 赞成 (descending,
        # equal counts in candidate-list order, as RULES.md §5.1 orders them for display).
        rest = sorted((r for r in rows if r["key"] not in selected), key=lambda r: -r["for"])
        ranked = [by_key[k] for k in selected if k in by_key] + rest
        for r in ranked:
            r["selected"] = r["key"] in selected
            r["rank"] = selected.index(r["key"]) + 1 if r["selected"] else None
            r["tied"] = r["key"] in tied
            r["runoff_for"] = runoff_for.get(r["key"])
        out["projects"] = ranked
        out["selected_count"] = len(selected)
        out["tied_count"] = len(tied)
        out["runoff_places"] = last.get("runoff_places", 0) if entry["status"] == "runoff_pending" else 0
        out["shortfall"] = last.get("shortfall", 0) if entry["status"] == "decided" else 0
        if runoff:
            out["runoff"] = {k: runoff[k] for k in ("places", "issued", "returned", "valid", "invalid", "refused")}
    return out


@functools.lru_cache(maxsize=64)
def qr_svg(url: str) -> str:
    """The URL as an inline SVG QR code (sized by CSS through its viewBox)."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2,
                      error_correction=qrcode.constants.ERROR_CORRECT_M)
    svg = img.to_string(encoding="unicode")
    if svg.startswith("<?xml"):
        svg = svg[svg.index("?>") + 2:]
    head, rest = svg.split(">", 1)
    for attr in ("width", "height"):
        start = head.find(f' {attr}="')
        if start >= 0:
            end = head.index('"', start + len(attr) + 3)
            head = head[:start] + head[end + 1:]
    return head + ' class="qr" role="img" aria-label="QR">' + rest


def _record_view(db: Session, item: Item, verify_url: Callable[[str], str]) -> dict | None:
    rec = db.scalar(select(Record).where(Record.item_id == item.id).order_by(Record.created_at.desc()).limit(1))
    if rec is None:
        return None
    try:
        seq = json.loads(rec.body_json).get("audit", {}).get("seq")
    except ValueError:
        seq = None
    url = verify_url(rec.id)
    return {"id": rec.id, "key_fingerprint": rec.key_fingerprint, "audit_head": rec.audit_head,
            "audit_seq": seq, "published": rec.published, "verify_url": url, "qr_svg": qr_svg(url)}


def _verify_url_maker() -> Callable[[str], str]:
    """Absolute /verify/<record_id> URLs, built now (inside the request) for use in a stream."""
    placeholder = "RECORDID"
    template = public_url_for("verify_page.verify_record", record_id=placeholder)
    return lambda record_id: template.replace(placeholder, record_id)


def _state_for(app: Flask, sitting_id: int, verify_url: Callable[[str], str],
               follow: Follow | None = None) -> dict:
    with reader(app) as db:
        return build_state(db, get_sitting(db, sitting_id), verify_url, follow)


def _comparable(state: dict) -> str:
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
@requires(*ROLES)
def index():
    with reader() as db:
        sittings = list(db.scalars(select(Sitting).order_by(Sitting.created_at.desc(), Sitting.id.desc())))
        rows = [{"id": s.id, "name": s.name, "body": s.body.name, "status": s.status,
                 "created_at": s.created_at} for s in sittings]
    return render_template("display/index.html", sittings=rows)


@bp.get("/display/<int:sitting_id>")
@requires(*ROLES)
def screen(sitting_id: int):
    state = _state_for(current_app._get_current_object(), sitting_id, _verify_url_maker())
    return render_template("display/screen.html", state=state,
                           state_url=url_for("display.state", sitting_id=sitting_id),
                           events_url=url_for("display.events", sitting_id=sitting_id))


@bp.get("/display/<int:sitting_id>/state")
@requires(*ROLES)
def state(sitting_id: int):
    resp = jsonify(_state_for(current_app._get_current_object(), sitting_id, _verify_url_maker()))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/display/<int:sitting_id>/events")
@requires(*ROLES)
def events(sitting_id: int):
    app = current_app._get_current_object()
    with reader(app) as db:
        get_sitting(db, sitting_id)  # 404 now, not inside the stream
    cfg = app.config
    stream = event_stream(app, sitting_id, _verify_url_maker(),
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
    engine = read_engine(app)
    started = last_write = time.monotonic()
    last_seq: int | None = None
    last_sent: str | None = None
    follow = Follow()
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        now = time.monotonic()
        if now - started >= lifetime:
            yield "event: bye\ndata: {}\n\n"
            return
        seq = head_seq(engine)
        if seq != last_seq:
            state = _state_for(app, sitting_id, verify_url, follow)
            last_seq = seq
            key = _comparable(state)
            if key != last_sent:
                last_sent, last_write = key, now
                data = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
                yield f"id: {state['seq']}\nevent: state\ndata: {data}\n\n"
                continue
        if now - last_write >= heartbeat:
            last_write = now
            yield f": heartbeat\nevent: ping\ndata: {{\"at\": \"{_now_iso()}\"}}\n\n"
        time.sleep(poll)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
