"""Waking the seat tablets' held long-polls (web/asgi.py) without Flask.

When a vote opens or closes, every tablet of the hall is waiting on `GET /api/terminal/state
?wait=<ETag>`. Each woken long-poll used to ask Flask for its state again: 3,000 requests
through Flask in the same second, each authenticating its credential and reading the state's
version, queued on the worker threads ahead of the round keys and blind signatures the same
tablets ask for next. Here a process reads the sitting's shared state once per change (the
VersionedCache the state endpoint uses, terminal_api.seat_states) and composes each woken
tablet's answer from it with terminal_api.seat_answer, so body and ETag are the bytes Flask
would send, for the tablet Flask itself authenticated when this long-poll began (the endpoint
leaves who it answered in the request's environ, terminal_api.SEAT_ENVIRON).

Checked again for every woken tablet: that its terminal is still not revoked (one query per
snapshot, the sitting's revoked terminals; revocation is the only way a credential ends). A
revoked terminal, or a state that changed while it was built (no ETag), goes to Flask, which
answers it as any request. Nothing node-local decides: each node reads the shared database.
"""
from __future__ import annotations

import asyncio
from typing import NamedTuple
from urllib.parse import parse_qs

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import issuance
from ballot_service.domain.terminals import credential_hash
from ballot_service.models import Terminal
from ballot_service.web.terminal_api import round_keys, seat_answer, seat_states

MAX_SEATS = 50_000  # seats remembered per process (SeatWake.learn)
DROPPED = {"etag", "content-length", "content-type", "set-cookie"}  # ours, or never a tablet's


class Snapshot(NamedTuple):
    """A sitting's state as of one watcher change, read in one transaction."""

    built: object  # seat_state.Built: the tablets' shared state
    revoked: set  # the sitting's revoked terminals
    round_keys: list | None  # terminal_api.round_keys: [(round_ref, announcement)] of the open vote
    signers: dict  # issuance.open_signers: round_ref -> the open round's wrapped key
    # round id -> its key unwrapped (web/issue_on_loop.py), filled at the first signature; it
    # goes with the snapshot, which the next change's replaces (the close is one)
    keys: dict


class SeatWake:
    """Per process: each sitting's shared tablet state, read once per watcher change; and the
    seats Flask authenticated (web/issue_on_loop.py answers their ballots from the same read)."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self._snapshots: dict[tuple, asyncio.Future] = {}
        # SHA-256 of a credential (as stored) -> the seat Flask answered for it; never the credential.
        self._seats: dict[str, tuple] = {}

    def learn(self, scope: dict, seat: tuple) -> None:
        """Remember whom Flask authenticated with this request's credential (`seat`: SEAT_ENVIRON)."""
        hashed = _credential_hash(scope)
        if hashed is not None:
            if len(self._seats) >= MAX_SEATS:
                self._seats.clear()  # a bound, not a policy: Flask re-teaches every seat it answers
            self._seats[hashed] = seat

    def seat_of(self, scope: dict) -> tuple | None:
        """The seat Flask last authenticated this request's credential as, or None."""
        hashed = _credential_hash(scope)
        return None if hashed is None else self._seats.get(hashed)

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
        body id, terminal JSON) after the watcher's change `marks`, or None: ask Flask."""
        terminal_id, sitting_id, body_id, terminal_json = seat[:4]
        snapshot = await self.snapshot(sitting_id, body_id, marks)
        if snapshot is None or terminal_id in snapshot.revoked:
            return None
        text, tag = seat_answer(snapshot.built, terminal_id, terminal_json)
        if tag is None:
            return None
        headers = [(k, v) for k, v in flask_headers if k.lower() not in DROPPED] + [("ETag", f'"{tag}"')]
        if tag == _waited_tag(scope):
            return 304, headers, b""
        body = text.encode("utf-8")
        return 200, headers + [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body

    def _read(self, sitting_id: int, body_id: int) -> Snapshot:
        with Session(bind=self.flask_app.extensions["ballot_read_engine"], expire_on_commit=False) as db:
            built = seat_states(self.flask_app).get(db, sitting_id, body_id)
            revoked = set(db.scalars(select(Terminal.id).where(Terminal.sitting_id == sitting_id,
                                                               Terminal.revoked_at.is_not(None))))
            announced = round_keys(self.flask_app).get(db, sitting_id, body_id).value if built.value["voting"] else None
            signers = issuance.open_signers(db, sitting_id) if announced else {}
        return Snapshot(built, revoked, announced, signers, {})


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
