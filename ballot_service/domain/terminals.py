"""Seat terminals and counting stations: registering one (its one-time credential),
recognising its credential on each request, and revoking it."""
from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ballot_service.db import read_phase, utcnow
from ballot_service.domain import audit
from ballot_service.domain.sittings import require_open
from ballot_service.errors import Conflict, InvalidInput, Unauthorized
from ballot_service.models import Sitting, Terminal


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def register_terminal(db: Session, sitting: Sitting, name: str, kind: str,
                      seat: str | None = None) -> tuple[Terminal, str]:
    """Register a seat terminal or counting station; returns it with its one-time credential.
    Only the credential's hash is stored."""
    require_open(db, sitting, "登记终端", "registering a terminal")
    if kind not in ("seat", "counting_station"):
        raise InvalidInput("kind must be seat or counting_station", where="kind",
                           zh="终端类型须为 seat（表决器）或 counting_station（计票站）")
    if not name:
        raise InvalidInput("terminal name is empty", where="name", zh="终端名称不能为空")
    if kind == "seat" and seat:
        clash = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.seat == seat,
                                                 Terminal.revoked_at.is_(None)))
        if clash:
            raise Conflict(f"seat {seat} already has terminal {clash.name}", where="seat",
                           zh=f"座位 {seat} 已登记终端 {clash.name}")
    credential = secrets.token_urlsafe(32)
    term = Terminal(sitting_id=sitting.id, name=name, kind=kind, seat=seat,
                    credential_hash=credential_hash(credential))
    db.add(term)
    db.flush()
    audit.append(db, "terminal_registered", {"terminal_id": term.id, "name": name, "kind": kind, "seat": seat},
                 sitting_id=sitting.id)
    return term, credential


class TerminalIdentity(NamedTuple):
    """Who a terminal request comes from: the terminal's plain facts and its session's body."""

    id: int
    sitting_id: int
    body_id: int
    kind: str
    name: str
    seat: str | None
    revoked_at: object


# Built once: runs for every terminal request. Plain columns, no ORM objects.
_TERMINAL_BY_CREDENTIAL = (
    select(Terminal.id, Terminal.sitting_id, Sitting.body_id, Terminal.kind, Terminal.name, Terminal.seat,
           Terminal.revoked_at)
    .join(Sitting, Sitting.id == Terminal.sitting_id).where(Terminal.credential_hash == bindparam("h")))
_terminal_sql: dict = {}  # SQLite dialect -> the statement above as SQL text


def authenticate_terminal(db: Session, credential: str) -> TerminalIdentity:
    """The live (unrevoked) terminal holding `credential`, else Unauthorized.

    Revocation is read from the database on every request (no cache), so it takes effect at
    once in every worker. SQLite: one plain SELECT on a pooled connection outside any
    transaction (WAL: it sees the last commit and neither takes nor waits for the write
    lock); the request's session is not touched. Elsewhere: a read phase of the session."""
    h = credential_hash(credential)
    engine = db.get_bind()
    if engine.dialect.name == "sqlite":
        sql = _terminal_sql.get(engine.dialect)
        if sql is None:
            sql = _terminal_sql[engine.dialect] = str(_TERMINAL_BY_CREDENTIAL.compile(dialect=engine.dialect))
        raw = engine.raw_connection()
        try:
            found = raw.driver_connection.execute(sql, (h,)).fetchone()
        finally:
            raw.close()
    else:
        with read_phase(db):
            found = db.execute(_TERMINAL_BY_CREDENTIAL, {"h": h}).first()
    if found is None:
        raise Unauthorized("unknown terminal credential")
    term = TerminalIdentity(*found)
    if term.revoked_at is not None:
        raise Unauthorized(f"terminal {term.name} was revoked")
    return term


def revoke_terminal(db: Session, term: Terminal) -> None:
    if term.revoked_at is None:
        term.revoked_at = utcnow()
        db.flush()
        audit.append(db, "terminal_revoked", {"terminal_id": term.id, "name": term.name},
                     sitting_id=term.sitting_id)
