"""One watcher per server process (ASGI, web/asgi.py) of the audit chains' heads, which every
change in the service moves: what wakes the presiding screens' event streams and the seat
tablets' long-polls, instead of each of them asking the database.

While anyone listens it reads the heads (one small table) every `poll` seconds on a thread of
its own, which hands the event loop a reading only when the heads moved.
- `seq` (the sum of the heads) moves with every event, casts included: screens follow it (they
  show how many have voted);
- `changes` and `urgent` count head moves that a seat tablet's state shows (every event but a
  cast batch, domain/seat_state.py), and among them those a waiting tablet must learn of at once
  (a vote opened or closed, ...). A cast batch wakes no tablet.
The database is the only source: every node runs its own watcher over the same heads.
"""
from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy import select

from ballot_service.domain import seat_state
from ballot_service.models import AuditHead
from ballot_service.vocab import AuditKind
from ballot_service.web import display

log = logging.getLogger(__name__)

# How old the last reading of the heads may be for a read per change to stand for "now"
# (web/seat_wake.py, web/issue_on_loop.py): every 0.25 s; under a hall's load up to 2-3 s.
FRESH_S = 5.0

# When a vote closes, the presiding screens are told first and the waiting tablets this much
# later: the presiding officer reads 表决结束 aloud from the screen, while 3,000 woken tablets
# asking again at once kept the loop busy for most of a second ahead of the screens' state
# (benchmarks/bench_hall.py: close -> 表决结束 on every screen up to 1.2 s). A tablet loses
# nothing by it (a cast sent meanwhile is refused as late, as any cast after the close).
SCREENS_FIRST_S = 0.4

# ... and the waiting tablets are answered over this many seconds after that, each at a random
# moment, not in one wave: the secretariat tallies as soon as the screens say 表决结束, and a
# tally landing in one wave of 3,000 answers waited ~0.1 s for each turn of the loop (its
# request, its thread's answer, the watcher's wake-up), 待公布 up to 1.5 s (bench_hall).
# A tablet waiting on a long-poll (it holds no ballot: it voted, or never took one) says 表决已结束
# within SCREENS_FIRST_S + TABLETS_SPREAD_S; one with a ballot on screen asks by itself every
# 10 s (static/seat.js). The next urgent change (the next vote opened) lets every one go at once.
TABLETS_SPREAD_S = 3.0


class HeadWatcher:
    """The audit heads, read on a thread of their own while any stream or long-poll listens.

    Reading on a thread that hands the loop only a change (not an `asyncio.sleep` and a
    `to_thread` per reading) matters under a hall's load: each of those waits a turn of a loop
    with ~1,500 ready tasks, and 3,000 tablets asking again after a close made the screens
    learn of the tally 0.65 s late (benchmarks/RESULTS.md, 待公布)."""

    def __init__(self, flask_app: Flask) -> None:
        self._engine = flask_app.extensions["ballot_read_engine"]
        self._poll = flask_app.config.get("DISPLAY_POLL_SECONDS", display.POLL_SECONDS)
        self.seq: int | None = None
        self.changes = self.urgent = 0
        self._heads: dict[int, int] | None = None
        self._changed: asyncio.Event | None = None  # any head moved (screens)
        self._tablets: asyncio.Event | None = None  # changes or urgent moved (tablets)
        # A close's tablets' event, whose waiters are spread, and the event that cuts their spread
        # short (set by the next urgent change).
        self._spread: tuple[asyncio.Event, asyncio.Event] | None = None
        self._ready: asyncio.Event | None = None
        self._lock = threading.Lock()  # whether the reader runs: _start against its idle exit
        self._running = False
        self._generation = 0  # a reading from a reader before the last start is not noted
        self._stopping = threading.Event()
        self._listeners = 0
        self._on_moved: list[Callable[[int], None]] = []
        self._read_at: float | None = None  # monotonic time of the last successful read

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
            self._generation += 1
        self._changed, self._tablets, self._ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._heads = self._read_at = None  # fresh() waits for the new reader's first reading
        # What changed while nobody watched is not counted by the first reading: a change for
        # anything keyed by the marks (seat_wake's snapshots), so none from before is used again.
        self.changes += 1
        self.urgent += 1
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._run, args=(loop, self._generation), name="head-watcher",
                         daemon=True).start()

    def on_moved(self, callback: Callable[[int], None]) -> None:
        """`callback(seq)` on the reader thread whenever the heads move, after the loop is told
        (web/screen_states.py builds the screens' state ahead with it)."""
        self._on_moved.append(callback)

    def stop(self) -> None:
        """The server shuts down: the reader ends after its current reading."""
        self._stopping.set()

    async def ready(self) -> None:
        """Started and holding a first reading of the heads (so a change after now is seen)."""
        self._start()
        await self._ready.wait()

    def fresh(self, within: float = FRESH_S) -> bool:
        """Whether the watcher is running and read the heads less than `within` seconds ago, so
        a change committed before then is counted in `changes` (web/issue_on_loop.py)."""
        return (self._running and self._read_at is not None
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
        """Until `changes` or `urgent` moves (a close: at a random moment of TABLETS_SPREAD_S
        after it, or at the next urgent change), or `timeout` seconds."""
        self._listeners += 1
        deadline = time.monotonic() + timeout
        try:
            self._start()
            event = self._tablets
            await asyncio.wait_for(event.wait(), timeout)
            spread = self._spread
            if spread is not None and spread[0] is event:
                left = max(0.0, deadline - time.monotonic())
                await asyncio.wait_for(spread[1].wait(), min(random.random() * TABLETS_SPREAD_S, left))
        except asyncio.TimeoutError:
            pass
        finally:
            self._listeners -= 1

    def _run(self, loop: asyncio.AbstractEventLoop, generation: int) -> None:
        """The reader thread: the heads every `poll` seconds; the loop is handed a reading only
        when they moved (and the first one), so an idle reading costs the loop nothing."""
        before: dict[int, int] | None = None
        idle_since = None
        try:
            while not self._stopping.is_set():
                read_at = time.monotonic()  # before the read: a commit after it may be missed by it
                try:
                    heads, kinds = self._read(before)
                except Exception:  # the database is away: everyone keeps what they have
                    pass
                else:
                    if heads != before:
                        loop.call_soon_threadsafe(self._note, heads, kinds, before is None, read_at, generation)
                        before = heads
                        self._moved(sum(heads.values()))
                    elif self._heads == heads:
                        # nothing moved and the loop holds these heads: `changes` is current as of now
                        # (while a moved reading waits for the loop, fresh() must not say so)
                        self._read_at = read_at
                with self._lock:
                    if self._listeners == 0:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > 10 * self._poll:
                            self._running = False
                            return  # nobody listens: stop reading until someone asks again
                    else:
                        idle_since = None
                self._stopping.wait(self._poll)
        except RuntimeError:  # the loop closed under us (the server is going away)
            pass
        except Exception:
            log.exception("head watcher: the reader stopped (started again by the next listener)")
        finally:
            with self._lock:
                if generation == self._generation:  # not a reader started since this one
                    self._running = False

    def _moved(self, seq: int) -> None:
        for callback in self._on_moved:
            try:
                callback(seq)
            except Exception:  # the stream builds it itself then (and says what failed)
                log.exception("head watcher: building ahead at seq %s failed", seq)

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

    def _note(self, heads: dict[int, int], kinds: set[str], first: bool, read_at: float,
              generation: int) -> None:
        """On the loop: a reading whose heads moved (or the first since the reader started)."""
        if generation != self._generation:
            return
        seq = sum(heads.values())
        self._heads, self._read_at = heads, read_at
        if seq != self.seq:
            self.seq = seq
            self._changed.set()
            self._changed = asyncio.Event()
        if kinds and not first:
            self.changes += 1
            urgent = bool(kinds & set(seat_state.URGENT_KINDS))
            self.urgent += urgent
            if urgent and self._spread is not None:  # a close's tablets still held or spread: all go now
                for held in self._spread:
                    held.set()
                self._spread = None
            tablets, self._tablets = self._tablets, asyncio.Event()
            if AuditKind.VOTE_CLOSED in kinds and AuditKind.VOTE_OPENED not in kinds:
                self._spread = (tablets, asyncio.Event())
                asyncio.get_running_loop().call_later(SCREENS_FIRST_S, tablets.set)
            else:
                tablets.set()
        self._ready.set()
