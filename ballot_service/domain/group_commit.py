"""Group commit (SQLite and PostgreSQL): the concurrent requests of one process store their
jobs in one transaction and one durable COMMIT, and each learns its outcome only after that
commit. On PostgreSQL the batches of several processes (workers, app nodes) run side by side.

Generic over what a job is and how a batch is stored: intake.py supplies `store(db, jobs)`
(decide and insert, setting each job's result or error) and `commit(db)`. A job's own refusal
touches only that job; if anything else fails, the batch is rolled back and each job is
retried alone, so one bad job cannot fail the rest. Nothing about a batch is stored or logged.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ballot_service.db import begin_write

MAX_BATCH = 64
# Under sustained load (jobs were already queued when the last batch ended) the writer lets the
# next batch gather for GATHER_S before it takes it, unless half a batch is waiting already,
# as PostgreSQL's commit_delay does for its WAL flushes. Why: a batch costs its writer a fixed
# part (six statements and a COMMIT: ~5 ms of CPU on PostgreSQL on a slow day, on the GIL the
# event loop needs too) besides ~0.1 ms a cast; with casts arriving as fast as the loop
# checks them, batches held ~15 casts and that fixed part was most of the writer's CPU
# (benchmarks/bench_cast_cpu.py --batch 16 against 64). A quiet-time cast never waits.
GATHER_S = 0.010

log = logging.getLogger(__name__)


class Job:
    """One request's unit of work: its outcome (result or error), and the lock it waits on."""

    __slots__ = ("result", "error", "wake", "lead", "notify")

    def __init__(self) -> None:
        self.result = None
        self.error: BaseException | None = None
        self.wake: threading.Lock | None = None
        self.lead = False
        self.notify: Callable[[], None] | None = None  # submit_nowait's: called once the outcome is set

    def outcome(self):
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise RuntimeError("group commit ended without an outcome")
        return self.result


class GroupCommit:
    """Leader/follower group commit of one process's casts on one database.

    A request queues its job; if no batch is being stored it leads: it takes the write lock,
    then every job queued by then (those that arrived while it waited for the lock included),
    stores and commits them (_run_batch), hands the lead to the first job queued meanwhile,
    then wakes its batch's requests. Everyone else waits on its own job's lock until its
    outcome is set (after the commit) or it is handed the lead. The requests' threads do the
    work; a job queued by submit_nowait (a request on an event loop) leads on the group's one
    writer thread instead, and is told its outcome by its callback."""

    def __init__(self, run: Callable[[Callable[[], list]], object]) -> None:
        self._run = run  # run(take): lock, take the batch, store and commit it
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._leading = False
        self._writer_pool: ThreadPoolExecutor | None = None  # leads the batches of submit_nowait's jobs

    def submit(self, job: Job) -> None:
        """Queue `job` and return once its outcome is set (this thread may store a batch)."""
        job.wake = threading.Lock()
        job.wake.acquire()
        if not self._enqueue(job):
            job.wake.acquire()  # released with the outcome set, or with job.lead set
            if not job.lead:
                return
        self._lead(job)

    def submit_nowait(self, job: Job, notify: Callable[[], None]) -> None:
        """Queue `job` without waiting (an event loop's caller); `notify()` is called, on another
        thread, once its outcome is set (after the batch's durable COMMIT). A batch such a job
        leads is stored on this group's one writer thread, so no request holds a thread while
        it waits: a batch is whatever was queued meanwhile, not at most one job per thread."""
        job.notify = notify
        if self._enqueue(job):
            self._writer().submit(self._lead_quietly, job)

    def _enqueue(self, job: Job) -> bool:
        """Queue the job; True when its caller must lead (no batch is being stored)."""
        with self._lock:
            self._queue.append(job)
            lead = not self._leading
            self._leading = True
        return lead

    def _writer(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
            return self._writer_pool

    def _lead_quietly(self, job: Job, under_load: bool = False) -> None:
        try:
            if under_load and len(self._queue) < MAX_BATCH // 2:
                time.sleep(GATHER_S)  # the rest of the batch is on its way (GATHER_S)
            self._lead(job)
        except BaseException:  # every job of the batch has this error as its outcome already
            log.exception("group commit failed")

    def _wake(self, job: Job) -> None:
        """Tell a waiting job its outcome is set, or (job.lead) that it leads the next batch."""
        if job.notify is None:
            job.wake.release()
        elif job.lead:  # handed the lead as a batch ended: jobs are arriving (GATHER_S)
            self._writer().submit(self._lead_quietly, job, True)
        else:
            job.notify()

    def _lead(self, job: Job) -> None:
        batch: list[Job] = []

        def take() -> list[Job]:
            # The leader is first in the queue: nobody else takes from it while it leads.
            if not batch:
                with self._lock:
                    batch.extend(self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH)))
            return batch

        try:
            self._run(take)
        except BaseException as exc:  # never leave a request waiting without an outcome
            for j in take():
                if j.result is None and j.error is None:
                    j.error = exc
            raise
        finally:
            with self._lock:
                following = self._queue[0] if self._queue else None
                self._leading = following is not None
            if following is not None:
                following.lead = True
                self._wake(following)
            job.lead = False
            for j in batch:
                if j is not job or j.notify is not None:
                    self._wake(j)


_groups: "weakref.WeakKeyDictionary[Engine, dict[str, GroupCommit]]" = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def group_for(engine: Engine, run_batch: Callable, kind: str = "casts") -> GroupCommit:
    """The engine's group commit of `kind` (one per engine, kind and process: casts, blind
    issuance); `run_batch(engine, jobs)` stores and commits a batch (see run_batch)."""
    with _groups_lock:
        groups = _groups.setdefault(engine, {})
        group = groups.get(kind)
        if group is None:
            group = groups[kind] = GroupCommit(lambda take: run_batch(engine, take))
        return group


def run_batch(engine: Engine, jobs, store: Callable[[Session, list], None],
              commit: Callable[[Session], None], *, alone: bool = False) -> list[Job]:
    """Store and commit a batch in one transaction and set every job's outcome. `jobs`: a
    list, or a function giving the list, called once the write lock is held (SQLite; on
    PostgreSQL at once), so the batch includes whatever was queued while waiting for it. If the
    batch fails after that it is rolled back and each of its jobs is stored alone; so is a
    batch of one whose connection was lost (PostgreSQL: db/postgres.py hands out a connection
    used within the last second untested). `alone`: this is such a second try."""
    take = jobs if callable(jobs) else (lambda: jobs)
    db = Session(engine, expire_on_commit=False)
    batch = None
    try:
        begin_write(db)  # the writer queue, then BEGIN IMMEDIATE
        batch = take()
        store(db, batch)
        commit(db)
    except Exception as exc:
        db.rollback()
        locked, batch = batch is not None, batch if batch is not None else take()
        for job in batch:  # nothing of this batch is stored: no receipt may be given
            job.result, job.error = None, None
        lost = getattr(exc, "connection_invalidated", False)  # the pool has new connections now
        if locked and not alone and (len(batch) > 1 or lost):
            db.close()
            for job in batch:
                run_batch(engine, [job], store, commit, alone=True)
            return batch
        for job in batch:
            job.error = exc
    finally:
        db.close()
    return batch
