"""Waking the seat tablets' held long-polls (web/asgi.py) without Flask.

When a vote opens or closes, every tablet of the hall is waiting on `GET /api/terminal/state
?wait=<ETag>`. Each woken long-poll used to ask Flask for its state again: 3,000 requests
through Flask in the same second, each authenticating its credential and reading the state's
version, queued on the worker threads ahead of the blind signatures the same tablets ask for
next (the woken state carries the round's key announcement: they ask for nothing else). Here
a process reads the sitting's shared state once per change (the VersionedCache the state
endpoint uses, terminal_api.seat_states) and composes each woken tablet's answer from it with
terminal_api.seat_answer, so body and ETag are the bytes Flask would send, for the tablet
Flask itself authenticated when this long-poll began (the endpoint leaves who it answered in
the request's environ, terminal_api.SEAT_ENVIRON).

Checked again for every woken tablet: that its terminal is still not revoked (one query per
snapshot, the sitting's terminals; revocation is the only way a credential ends). A
revoked terminal, or a state that changed while it was built (no ETag), goes to Flask, which
answers it as any request. Nothing node-local decides: each node reads the shared database.

The next long-poll of a seat Flask authenticated begins here too (`start`): right after a vote
closes, 3,000 tablets ask again within a second, and through Flask (credential, state version,
last seen: a thread each, waiting for the last-seen batch's COMMIT) they held up the
secretariat's 计票 and the screens' 待公布 by seconds (benchmarks/bench_hall.py). Last seen is
then noted from here as Flask notes it (when the sitting's read shows it SEEN_EVERY_S old, or
never written: a vote just closed, a tablet reset), at most every NOTE_SEEN_EVERY_S per tablet
and process, in the same group commit Flask's polls use (tablet_setup.note_seen_nowait), never
while a vote is open.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import NamedTuple
from urllib.parse import parse_qs

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.db import utcnow
from ballot_service.domain import issuance, tablet_setup
from ballot_service.domain.terminals import credential_hash
from ballot_service.models import Terminal
from ballot_service.web.terminal_api import round_keys, seat_answer, seat_states, terminal_json

MAX_SEATS = 50_000  # seats remembered per process (SeatWake.learn)
# Flask checks at every long-poll's start (HOLD_SECONDS apart) and the seen batch writes only
# what is SEEN_EVERY_S old, so this only keeps a tablet asking over and over from queueing a job
# each time. A long-poll that skips its note follows one that left last seen at most
# SEEN_EVERY_S old less than this ago: at the next, it is at most SEEN_EVERY_S + HOLD_SECONDS +
# this old (43 s), within tablet_setup.ONLINE_S. (At HOLD_SECONDS, a note that came late in its
# long-poll skipped the next one's, and a tablet looked offline.)
NOTE_SEEN_EVERY_S = 1.0
DROPPED = {"etag", "content-length", "content-type", "set-cookie"}  # ours, or never a tablet's


class Snapshot(NamedTuple):
    """A sitting's state as of one watcher change, read in one transaction."""

    built: object  # seat_state.Built: the tablets' shared state
    terminals: dict  # terminal id -> (name, seat, last seen) of the sitting's terminals not revoked
    round_keys: list | None  # terminal_api.round_keys: [(round_ref, announcement)] of the open vote
    signers: dict  # issuance.open_signers: round_ref -> the open round's wrapped key
    # round id -> its key unwrapped (web/issue_on_loop.py), filled at the first signature; it
    # goes with the snapshot, which the next change's replaces (the close is one)
    keys: dict
    # (terminal id, round id) whose blind signature this process is making or has given since
    # this change (web/issue_on_loop.py: a resend goes to Flask; a replacement is a change)
    signing: set


class SeatWake:
    """Per process: each sitting's shared tablet state, read once per watcher change; and the
    seats Flask authenticated (web/issue_on_loop.py answers their ballots from the same read)."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self._snapshots: dict[tuple, asyncio.Future] = {}
        # SHA-256 of a credential (as stored) -> the seat Flask answered for it, and the headers
        # of that answer (a long-poll begun here answers with them); never the credential.
        self._seats: dict[str, tuple[tuple, list]] = {}
        self._noted: dict[int, float] = {}  # terminal id -> when its last seen was last noted here

    def learn(self, scope: dict, seat: tuple, flask_headers: list) -> None:
        """Remember whom Flask authenticated with this request's credential (`seat`: SEAT_ENVIRON)."""
        hashed = _credential_hash(scope)
        if hashed is not None:
            if len(self._seats) >= MAX_SEATS:
                self._seats.clear()  # a bound, not a policy: Flask re-teaches every seat it answers
                self._noted.clear()
            self._seats[hashed] = (seat, [(k, v) for k, v in flask_headers if k.lower() not in DROPPED])
            if not seat[3]:  # no vote open: Flask noted last seen (if due)
                self._noted[seat[0]] = time.monotonic()

    def seat_of(self, scope: dict) -> tuple | None:
        """The seat Flask last authenticated this request's credential as, or None."""
        known = self._known(scope)
        return None if known is None else known[0]

    def _known(self, scope: dict) -> tuple[tuple, list] | None:
        hashed = _credential_hash(scope)
        return None if hashed is None else self._seats.get(hashed)

    async def start(self, scope: dict, marks: tuple) -> tuple | None:
        """A long-poll's first answer, (status, headers, body, seat) as FlaskOnThreads.answer_seat
        gives it, for a seat Flask authenticated before, from the snapshot of the watcher's
        change `marks`; None: ask Flask (a credential not seen, a revoked terminal, ...)."""
        known = self._known(scope)
        if known is None:
            return None
        seat, headers = known
        snapshot = await self.snapshot(seat[1], seat[2], marks)
        answered = None if snapshot is None else _compose(snapshot, seat[0], scope, headers)
        if answered is None:
            return None
        shared = snapshot.built.value
        if not shared["voting"] and shared["open"] and _seen_due(snapshot.terminals[seat[0]][2]):
            now = time.monotonic()
            if now - self._noted.get(seat[0], 0.0) >= NOTE_SEEN_EVERY_S:
                self._noted[seat[0]] = now
                tablet_setup.note_seen_nowait(self.flask_app.extensions["ballot_engine"], seat[0])
        return (*answered, (*seat[:3], shared["voting"]))

    async def snapshot(self, sitting_id: int, body_id: int, marks: tuple) -> Snapshot | None:
        """The sitting's snapshot for the watcher's change `marks`, or None (the database is away)."""
        key = (sitting_id, body_id, marks)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            # Older changes' snapshots are never asked for again.
            self._snapshots = {k: v for k, v in self._snapshots.items() if k[:2] != key[:2]}
            snapshot = self._snapshots[key] = asyncio.ensure_future(asyncio.to_thread(self._read, sitting_id, body_id))
        try:
            return await asyncio.shield(snapshot)
        except Exception:  # the database is away, or anything else: Flask answers as always
            self._snapshots.pop(key, None)
            return None

    async def answer(self, seat: tuple, marks: tuple, scope: dict, flask_headers: list):
        """(status, headers, body) for the woken long-poll of `seat` (terminal id, sitting id,
        body id, vote open) after the watcher's change `marks`, or None: ask Flask."""
        snapshot = await self.snapshot(seat[1], seat[2], marks)
        if snapshot is None:
            return None
        return _compose(snapshot, seat[0], scope, [(k, v) for k, v in flask_headers if k.lower() not in DROPPED])

    def _read(self, sitting_id: int, body_id: int) -> Snapshot:
        with Session(bind=self.flask_app.extensions["ballot_read_engine"], expire_on_commit=False) as db:
            built = seat_states(self.flask_app).get(db, sitting_id, body_id)
            rows = db.execute(select(Terminal.id, Terminal.name, Terminal.seat, Terminal.revoked_at,
                                     Terminal.last_seen_at).where(Terminal.sitting_id == sitting_id)).all()
            announced = round_keys(self.flask_app).get(db, sitting_id, body_id).value if built.value["voting"] else None
            signers = issuance.open_signers(db, sitting_id) if announced else {}
        live = {r.id: (r.name, r.seat, r.last_seen_at) for r in rows if r.revoked_at is None}
        return Snapshot(built, live, announced, signers, {}, set())


def _seen_due(seen: dt.datetime | None) -> bool:
    """Whether the tablet's last seen, as the sitting's read shows it, is due to be written: the
    state endpoint's test (terminal_api.terminal_state). The read may be older than the row, never
    newer; last seen only moves forward but for a reset, which is a change and so a new read."""
    return seen is None or utcnow() - seen >= dt.timedelta(seconds=tablet_setup.SEEN_EVERY_S)


def _compose(snapshot: Snapshot, terminal_id: int, scope: dict, headers: list):
    """(status, headers, body) of the state endpoint's answer to `scope` for the terminal, from
    the snapshot; None for a terminal revoked (or not of the sitting), or a state that changed
    while it was built (no ETag)."""
    if terminal_id not in snapshot.terminals:
        return None
    name, seat_no, _ = snapshot.terminals[terminal_id]
    text, tag = seat_answer(snapshot.built, terminal_id, terminal_json(name, seat_no))
    if tag is None:
        return None
    headers = [*headers, ("ETag", f'"{tag}"')]
    if tag == _waited_tag(scope):
        return 304, headers, b""
    body = text.encode("utf-8")
    return 200, headers + [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body


def _credential_hash(scope: dict) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            return credential_hash(text[7:].strip()) if text.startswith("Bearer ") else None
    return None


def _waited_tag(scope: dict) -> str:
    """The ?wait= tag, as the state endpoint reads it."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait", [""])
    return values[0].strip('"')
