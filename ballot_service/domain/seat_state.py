"""Which version of a sitting's seat-tablet state is current, read cheaply from the audit log,
and a per-process cache of whatever is built from that state.

Every change a seat tablet's state shows (a check-in, a vote opened or closed, the next
meeting, the sitting closed, a roster import...) appends an audit event on the body's chain in
the same transaction as the change. A cast batch appends only `casts_accepted`, which changes
nothing a tablet shows (the tablet sees the vote's 应到/实到, fixed at its opening). So the
version of the state is the seq of the newest event on the body's chain that is not a cast
batch: the same number on every node, because it is read from the shared database.

A node checks its cached copy with one primary-key row (the chain's head) while nothing moved,
and reads only the events appended since its last look when the head moved (during a vote:
the cast batches, skipped). No node-local state decides anything: a cache that missed a change
would see the head moved and the event in the next request's read.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.models import AuditEvent
from ballot_service.vocab import AuditKind

QUIET_KINDS = (AuditKind.CASTS_ACCEPTED,)  # appended during a vote; nothing a tablet shows changes
# Changes that a waiting tablet must learn of at once (a long-poll answers without delay).
URGENT_KINDS = (AuditKind.VOTE_OPENED, AuditKind.VOTE_CLOSED, AuditKind.ROUND_KEY_ANNOUNCED, AuditKind.SITTING_CLOSED,
                AuditKind.TERMINAL_RESET, AuditKind.MEETING_STARTED)


def newest_change(db: Session, chain: int, after: int, upto: int) -> int | None:
    """The seq of the newest event on `chain` in (after, upto] that a tablet's state shows, or None."""
    return db.scalar(select(AuditEvent.seq).where(
        AuditEvent.chain == chain, AuditEvent.seq > after, AuditEvent.seq <= upto,
        AuditEvent.kind.notin_(QUIET_KINDS)).order_by(AuditEvent.seq.desc()).limit(1))


def kinds_between(conn, chain: int, after: int, upto: int) -> set[str]:
    """The kinds of the events on `chain` in (after, upto] other than cast batches."""
    return set(conn.scalars(select(AuditEvent.kind).where(
        AuditEvent.chain == chain, AuditEvent.seq > after, AuditEvent.seq <= upto,
        AuditEvent.kind.notin_(QUIET_KINDS)).distinct()))


@dataclass(frozen=True)
class Built:
    """A value built from a sitting's state at `version`, known current up to head `scanned`.
    `version` is None when the state changed while it was being built (not cached)."""

    version: int | None
    scanned: int
    value: object


class VersionedCache:
    """Per process: sitting id -> the value `build(db, sitting_id)` made at the current version.
    Rebuilt once per version (one thread builds, the others wait for it), never per request."""

    def __init__(self, build: Callable[[Session, int], object]) -> None:
        self._build = build
        self._entries: dict[int, Built] = {}
        self._lock = threading.Lock()

    def get(self, db: Session, sitting_id: int, chain: int) -> Built:
        """The current value; `db` is in a read transaction the caller holds."""
        head = audit.head(db, chain)[0]
        entry = self._fresh(db, sitting_id, chain, head)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._fresh(db, sitting_id, chain, head)  # another thread built it meanwhile
            if entry is not None:
                return entry
            version = newest_change(db, chain, 0, head) or 0
            value = self._build(db, sitting_id)
            after = audit.head(db, chain)[0]  # PostgreSQL: a change committed while building
            if after != head and newest_change(db, chain, head, after) is not None:
                return Built(None, head, value)
            entry = Built(version, head, value)
            self._entries[sitting_id] = entry
            return entry

    def _fresh(self, db: Session, sitting_id: int, chain: int, head: int) -> Built | None:
        entry = self._entries.get(sitting_id)
        if entry is None:
            return None
        if head <= entry.scanned:
            return entry  # built from a snapshot at least as new as this request's
        if newest_change(db, chain, entry.scanned, head) is not None:
            return None
        entry = Built(entry.version, head, entry.value)
        current = self._entries.get(sitting_id)
        if current is None or current.scanned < head:
            self._entries[sitting_id] = entry
        return entry
