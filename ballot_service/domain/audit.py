"""Hash-chained audit log. Each event is appended in the same transaction as the change
it describes: hash = sha256(prev_hash || canonical(event)); the first prev_hash is 64 zeros.

Secret votes: callers must never put a member, seat or terminal in the same event as a
serial or marks (RULES.md §7).
"""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ballot_service.db import insert_rows, utcnow
from ballot_service.formats.canonical import canonical_json, sha256_hex
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import AuditEvent, AuditHead, Checkpoint

GENESIS = "0" * 64


def event_hash(prev_hash: str, seq: int, at: str | None, kind: str, data_json: str) -> str:
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "data": data_json})
    return sha256_hex(prev_hash.encode("ascii") + body)


_EVENTS = AuditEvent.__table__
_HEAD = AuditHead.__table__
# Built once: this runs for every accepted cast, under the write lock.
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_FIRST_HEAD = insert(_HEAD).values(id=1, seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def append(db: Session, kind: str, data: dict, sitting_id: int | None = None,
           timed: bool = True) -> AuditEvent:
    """Append one event. `timed=False` for events inside a secret vote's window, so the log
    holds no per-cast time finer than the window. Returns a detached copy of the row written."""
    return AuditEvent(**_append_rows(db, [(kind, data)], sitting_id, timed)[0])


def append_many(db: Session, events: list[tuple[str, dict]], sitting_id: int | None = None,
                timed: bool = True) -> None:
    """Append several events (kind, data) in order, as append() would one by one (cast
    intake's batches)."""
    if events:
        _append_rows(db, events, sitting_id, timed)


def _append_rows(db: Session, events: list[tuple[str, dict]], sitting_id: int | None,
                 timed: bool) -> list[dict]:
    """Runs for every accepted cast while the write lock is held, so it uses three plain
    statements on the session's connection (lock and read the head, insert the events, move
    the head) rather than the ORM's unit of work."""
    db.flush()  # what the events describe is written first
    conn = db.connection()
    row = conn.execute(_LOCK_HEAD).first()
    seq, prev = (row.seq, row.hash) if row is not None else (0, GENESIS)
    at = utcnow().replace(microsecond=0) if timed else None
    at_text = at.isoformat() if at else None
    rows = []
    for kind, data in events:
        seq += 1
        data_json = canonical_json(data).decode("utf-8")
        this = event_hash(prev, seq, at_text, kind, data_json)
        rows.append({"seq": seq, "at": at, "kind": kind, "sitting_id": sitting_id, "data": data_json,
                     "prev_hash": prev, "hash": this})
        prev = this
    insert_rows(conn, _EVENTS, rows)  # SQLite: one statement for a whole batch of casts
    conn.execute(_MOVE_HEAD if row is not None else _FIRST_HEAD, {"new_seq": seq, "new_hash": prev})
    # A head the session holds as an object (code that reads it through the ORM) follows.
    chain = db.identity_map.get(identity_key(AuditHead, 1))
    if chain is not None:
        set_committed_value(chain, "seq", seq)
        set_committed_value(chain, "hash", prev)
    return rows


def head(db: Session) -> tuple[int, str]:
    row = db.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    return (row.seq, row.hash) if row is not None else (0, GENESIS)


def head_seq(engine) -> int:
    """The head's seq on a connection held only for this read (pollers compare it to see
    whether anything changed)."""
    with engine.connect() as conn:
        return conn.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar() or 0


def checkpoint_message(seq: int, head_hash: str, reason: str) -> bytes:
    """What a checkpoint signature covers (canonical JSON)."""
    return canonical_json({"type": "audit-checkpoint", "seq": seq, "head": head_hash, "reason": reason})


def checkpoint(db: Session, key, reason: str):
    """Sign the current chain head (at every vote close and session close)."""

    db.flush()
    seq, head_hash = head(db)
    sig = key.sign(checkpoint_message(seq, head_hash, reason))
    cp = Checkpoint(seq=seq, head_hash=head_hash, reason=reason,
                    signature=b64url_encode(sig),
                    key_fingerprint=key.fingerprint)
    db.add(cp)
    db.flush()
    return cp
