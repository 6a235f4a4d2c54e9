"""Hash-chained audit logs, one chain per body (a body's bundle then stands alone and is
checked with that body's key alone) and one server chain (SERVER_CHAIN) for what belongs to
no body (operator accounts, logins). Each event is appended in the same transaction as the
change it describes: hash = sha256(prev_hash || canonical(event)); each chain's first
prev_hash is 64 zeros and its seq runs 1, 2, 3, ….

Secret votes: callers must never put a member, seat or terminal in the same event as a
serial or marks (RULES.md §7).
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ballot_service.db import insert_rows, utcnow
from ballot_service.formats.canonical import canonical_json, sha256_hex
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import AuditEvent, AuditHead, Checkpoint, Sitting

GENESIS = "0" * 64
SERVER_CHAIN = 0  # the chain of events that belong to no body; a body's chain is its id


def event_hash(prev_hash: str, seq: int, at: str | None, kind: str, data_json: str) -> str:
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "data": data_json})
    return sha256_hex(prev_hash.encode("ascii") + body)


_EVENTS = AuditEvent.__table__
_HEAD = AuditHead.__table__
# Built once: this runs for every intake batch, under the write lock.
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.chain == bindparam("the_chain")).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.chain == bindparam("the_chain")).values(
    seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_FIRST_HEAD = insert(_HEAD).values(chain=bindparam("the_chain"), seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def chain_of(db: Session, body_id: int | None, sitting_id: int | None) -> int:
    """The chain an event goes to: its body's (given, or the session's body), else the server's."""
    if body_id is not None:
        return body_id
    if sitting_id is not None:
        found = db.scalar(select(Sitting.body_id).where(Sitting.id == sitting_id))
        if found is not None:
            return found
    return SERVER_CHAIN


def append(db: Session, kind: str, data: dict, sitting_id: int | None = None,
           timed: bool = True, body_id: int | None = None) -> AuditEvent:
    """Append one event to its body's chain (`body_id`, or the body of `sitting_id`; neither:
    the server chain). `timed=False` for events inside a secret vote's window, so the log
    holds no time finer than the window. Returns a detached copy of the row written."""
    chain = chain_of(db, body_id, sitting_id)
    return AuditEvent(**_append_rows(db, chain, [(kind, data)], sitting_id, timed)[0])


def append_many(db: Session, chain: int, events: list[tuple[str, dict]], sitting_id: int | None = None,
                timed: bool = True) -> None:
    """Append several events (kind, data) to one chain in order, as append() would one by one
    (cast intake's batches)."""
    if events:
        _append_rows(db, chain, events, sitting_id, timed)


def _append_rows(db: Session, chain: int, events: list[tuple[str, dict]], sitting_id: int | None,
                 timed: bool) -> list[dict]:
    """Runs for every accepted cast while the write lock is held, so it uses three plain
    statements on the session's connection (lock and read the head, insert the events, move
    the head) rather than the ORM's unit of work."""
    db.flush()  # what the events describe is written first
    conn = db.connection()
    row = conn.execute(_LOCK_HEAD, {"the_chain": chain}).first()
    seq, prev = (row.seq, row.hash) if row is not None else (0, GENESIS)
    at = utcnow().replace(microsecond=0) if timed else None
    at_text = at.isoformat() if at else None
    rows = []
    for kind, data in events:
        seq += 1
        data_json = canonical_json(data).decode("utf-8")
        this = event_hash(prev, seq, at_text, kind, data_json)
        rows.append({"chain": chain, "seq": seq, "at": at, "kind": kind, "sitting_id": sitting_id, "data": data_json,
                     "prev_hash": prev, "hash": this})
        prev = this
    insert_rows(conn, _EVENTS, rows)  # SQLite: one statement for a whole batch of casts
    conn.execute(_MOVE_HEAD if row is not None else _FIRST_HEAD, {"the_chain": chain, "new_seq": seq, "new_hash": prev})
    # A head the session holds as an object (code that reads it through the ORM) follows.
    held = db.identity_map.get(identity_key(AuditHead, chain))
    if held is not None:
        set_committed_value(held, "seq", seq)
        set_committed_value(held, "hash", prev)
    return rows


def head(db: Session, chain: int) -> tuple[int, str]:
    """(seq, hash) of a chain's head: a body id, or SERVER_CHAIN."""
    row = db.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.chain == chain)).first()
    return (row.seq, row.hash) if row is not None else (0, GENESIS)


def changes(conn) -> int:
    """A number that grows with every event on any chain (the sum of the heads' seqs):
    pollers compare it to see whether anything changed."""
    return conn.execute(select(func.coalesce(func.sum(AuditHead.seq), 0))).scalar() or 0


def head_seq(engine) -> int:
    """changes() on a connection held only for this read."""
    with engine.connect() as conn:
        return changes(conn)


def checkpoint_message(seq: int, head_hash: str, reason: str) -> bytes:
    """What a checkpoint signature covers (canonical JSON)."""
    return canonical_json({"type": "audit-checkpoint", "seq": seq, "head": head_hash, "reason": reason})


def checkpoint(db: Session, key, reason: str, chain: int):
    """Sign a body's chain head with the body's key (at every vote close and session close)."""

    db.flush()
    seq, head_hash = head(db, chain)
    sig = key.sign(checkpoint_message(seq, head_hash, reason))
    cp = Checkpoint(chain=chain, seq=seq, head_hash=head_hash, reason=reason,
                    signature=b64url_encode(sig),
                    key_fingerprint=key.fingerprint)
    db.add(cp)
    db.flush()
    return cp
