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
from urllib.parse import parse_qs

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.models import Terminal
from ballot_service.web.terminal_api import seat_answer, seat_states

DROPPED = {"etag", "content-length", "content-type", "set-cookie"}  # ours, or never a tablet's


class SeatWake:
    """Per process: each sitting's shared tablet state, read once per watcher change."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app
        self._snapshots: dict[tuple, asyncio.Future] = {}

    async def answer(self, seat: tuple, marks: tuple, scope: dict, flask_headers: list):
        """(status, headers, body) for the woken long-poll of `seat` (terminal id, sitting id,
        body id, terminal JSON) after the watcher's change `marks`, or None: ask Flask."""
        terminal_id, sitting_id, body_id, terminal_json = seat[:4]
        key = (sitting_id, body_id, marks)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            # Older changes' snapshots are never asked for again.
            self._snapshots = {k: v for k, v in self._snapshots.items() if k[:2] != key[:2]}
            snapshot = self._snapshots[key] = asyncio.ensure_future(asyncio.to_thread(self._read, sitting_id, body_id))
        try:
            built, revoked = await asyncio.shield(snapshot)
        except Exception:  # the database is away, or anything else: Flask answers as always
            self._snapshots.pop(key, None)
            return None
        if terminal_id in revoked:
            return None
        text, tag = seat_answer(built, terminal_id, terminal_json)
        if tag is None:
            return None
        headers = [(k, v) for k, v in flask_headers if k.lower() not in DROPPED] + [("ETag", f'"{tag}"')]
        if tag == _waited_tag(scope):
            return 304, headers, b""
        body = text.encode("utf-8")
        return 200, headers + [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body

    def _read(self, sitting_id: int, body_id: int):
        """The sitting's shared state and its revoked terminals, in one read transaction."""
        with Session(bind=self.flask_app.extensions["ballot_read_engine"], expire_on_commit=False) as db:
            built = seat_states(self.flask_app).get(db, sitting_id, body_id)
            revoked = set(db.scalars(select(Terminal.id).where(Terminal.sitting_id == sitting_id,
                                                               Terminal.revoked_at.is_not(None))))
        return built, revoked


def _waited_tag(scope: dict) -> str:
    """The ?wait= tag, as the state endpoint reads it."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait", [""])
    return values[0].strip('"')
