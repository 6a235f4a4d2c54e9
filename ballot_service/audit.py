"""Hash-chained audit log. Each event is appended in the same transaction as the change
it describes: hash = sha256(prev_hash || canonical(event)); the first prev_hash is 64 zeros.

Secret votes: callers must never put a member, seat or terminal in the same event as a
serial or marks (RULES.md §7).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .canonical import canonical_json, sha256_hex
from .db import utcnow
from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def event_hash(prev_hash: str, seq: int, at: str | None, kind: str, data_json: str) -> str:
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "data": data_json})
    return sha256_hex(prev_hash.encode("ascii") + body)


def append(db: Session, kind: str, data: dict, sitting_id: int | None = None,
           timed: bool = True) -> AuditEvent:
    """Append one event. `timed=False` for events inside a secret vote's window, so the log
    holds no per-cast time finer than the window."""
    chain = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if chain is None:
        chain = AuditHead(id=1, seq=0, hash=GENESIS)
        db.add(chain)
    seq, prev = chain.seq + 1, chain.hash
    at = utcnow().replace(microsecond=0) if timed else None
    at_text = at.isoformat() if at else None
    data_json = canonical_json(data).decode("utf-8")
    ev = AuditEvent(seq=seq, at=at, kind=kind, sitting_id=sitting_id, data=data_json,
                    prev_hash=prev, hash=event_hash(prev, seq, at_text, kind, data_json))
    db.add(ev)
    chain.seq, chain.hash = seq, ev.hash
    db.flush()
    return ev


def head(db: Session) -> tuple[int, str]:
    chain = db.get(AuditHead, 1)
    return (chain.seq, chain.hash) if chain else (0, GENESIS)


def checkpoint_message(seq: int, head_hash: str, reason: str) -> bytes:
    """What a checkpoint signature covers (canonical JSON)."""
    return canonical_json({"type": "audit-checkpoint", "seq": seq, "head": head_hash, "reason": reason})


def checkpoint(db: Session, key, reason: str):
    """Sign the current chain head (at every vote close and session close)."""
    import base64

    from .models import Checkpoint

    db.flush()
    seq, head_hash = head(db)
    sig = key.sign(checkpoint_message(seq, head_hash, reason))
    cp = Checkpoint(seq=seq, head_hash=head_hash, reason=reason,
                    signature=base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii"),
                    key_fingerprint=key.fingerprint)
    db.add(cp)
    db.flush()
    return cp
