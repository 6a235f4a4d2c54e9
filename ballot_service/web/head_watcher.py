"""One watcher per server process (ASGI, web/asgi.py) of the audit chains' heads, which every
change in the service moves: what wakes the presiding screens' event streams and the seat
tablets' long-polls, instead of each of them asking the database.

While anyone listens it reads the heads (one small table) every `poll` seconds on a thread.
- `seq` (the sum of the heads) moves with every event, casts included: screens follow it (they
  show how many have voted);
- `changes` and `urgent` count head moves that a seat tablet's state shows (every event but a
  cast batch, domain/seat_state.py), and among them those a waiting tablet must learn of at once
  (a vote opened or closed, ...). A cast batch wakes no tablet.
The database is the only source: every node runs its own watcher over the same heads.
"""
from __future__ import annotations

import asyncio
import time

from flask import Flask
from sqlalchemy import select

from ballot_service.domain import seat_state
from ballot_service.models import AuditHead
from ballot_service.vocab import AuditKind
from ballot_service.web import display

# How old the last reading of the heads may be for a read per change to stand for "now"
# (web/seat_wake.py, web/issue_on_loop.py): every 0.25 s; under a hall's load up to 2-3 s.
FRESH_S = 5.0

# When a vote closes, the presiding screens are told first and the waiting tablets this much
# later: the presiding officer reads 表决结束 aloud from the screen, while 3,000 woken tablets
# asking again at once kept the loop busy for most of a second ahead of the screens' state
# (benchmarks/bench_hall.py: close -> 表决结束 on every screen up to 1.2 s). A tablet loses
# nothing by it (a cast sent meanwhile is refused as late, as any cast after the close).
SCREENS_FIRST_S = 0.4


class HeadWatcher:
    """The audit heads, polled by one task per process while any stream or long-poll listens."""

    def __init__(self, flask_app: Flask) -> None:
        self._engine = flask_app.extensions["ballot_read_engine"]
        self._poll = flask_app.config.get("DISPLAY_POLL_SECONDS", display.POLL_SECONDS)
        self.seq: int | None = None
        self.changes = self.urgent = 0
        self._heads: dict[int, int] | None = None
        self._changed: asyncio.Event | None = None  # any head moved (screens)
        self._tablets: asyncio.Event | None = None  # changes or urgent moved (tablets)
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._listeners = 0
        self._read_at: float | None = None  # monotonic time of the last successful read

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._changed, self._tablets, self._ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self._heads = None
            # What changed while nobody watched is not counted by the first reading: a change for
            # anything keyed by the marks (seat_wake's snapshots), so none from before is used again.
            self.changes += 1
            self.urgent += 1
            self._task = asyncio.create_task(self._run())

    async def ready(self) -> None:
        """Started and holding a first reading of the heads (so a change after now is seen)."""
        self._start()
        await self._ready.wait()

    def fresh(self, within: float = FRESH_S) -> bool:
        """Whether the watcher is running and read the heads less than `within` seconds ago, so
        a change committed before then is counted in `changes` (web/issue_on_loop.py)."""
        return (self._task is not None and not self._task.done() and self._read_at is not None
                and time.monotonic() - self._read_at < within)

    async def wait_change(self, seen: int | None, timeout: float) -> int | None:
        """The seq once it differs from `seen`, or the current one after `timeout` seconds."""
        self._listeners += 1
        try:
            self._start()
            deadline = time.monotonic() + timeout
            while self.seq is None or self.seq == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except asyncio.TimeoutError:
                    break
            return self.seq
        finally:
            self._listeners -= 1

    async def wait_tablets(self, timeout: float) -> None:
        """Until `changes` or `urgent` moves, or `timeout` seconds."""
        self._listeners += 1
        try:
            self._start()
            await asyncio.wait_for(self._tablets.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._listeners -= 1

    async def _run(self) -> None:
        idle_since = None
        while True:
            try:
                heads, kinds = await asyncio.to_thread(self._read, self._heads)
                self._read_at = time.monotonic()
            except Exception:  # the database is away: everyone keeps what they have
                heads, kinds = self._heads, set()
            if heads is not None:
                self._note(heads, kinds)
            if self._listeners == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 10 * self._poll:
                    return  # nobody listens: stop polling until someone asks again
            else:
                idle_since = None
            await asyncio.sleep(self._poll)

    def _read(self, before: dict[int, int] | None) -> tuple[dict[int, int], set[str]]:
        """(chain -> head seq, the kinds of tablet-visible events appended since `before`)."""
        with self._engine.connect() as conn:
            heads = {chain: seq for chain, seq in conn.execute(select(AuditHead.chain, AuditHead.seq))}
            kinds: set[str] = set()
            if before is not None:
                for chain, seq in heads.items():
                    if seq > before.get(chain, 0):
                        kinds |= seat_state.kinds_between(conn, chain, before.get(chain, 0), seq)
        return heads, kinds

    def _note(self, heads: dict[int, int], kinds: set[str]) -> None:
        seq = sum(heads.values())
        first = self._heads is None
        self._heads = heads
        if seq != self.seq:
            self.seq = seq
            self._changed.set()
            self._changed = asyncio.Event()
        if kinds and not first:
            self.changes += 1
            self.urgent += bool(kinds & set(seat_state.URGENT_KINDS))
            tablets, self._tablets = self._tablets, asyncio.Event()
            if AuditKind.VOTE_CLOSED in kinds and AuditKind.VOTE_OPENED not in kinds:
                asyncio.get_running_loop().call_later(SCREENS_FIRST_S, tablets.set)
            else:
                tablets.set()
        self._ready.set()
