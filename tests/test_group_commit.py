"""Group commit's writer on its own (domain/group_commit.py): how an event loop's jobs are
formed into batches. The stores and commits themselves are tested through intake
(test_intake_group_commit.py, test_cast_on_loop.py)."""
from __future__ import annotations

import threading
import time

from ballot_service.domain import group_commit


class _Writer:
    """A GroupCommit whose batches only record their jobs; the first batch waits for `release`."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.group = group_commit.GroupCommit(self._run)

    def _run(self, take) -> None:
        batch = take()  # as run_batch does once it holds the write lock
        self.started.set()
        self.release.wait(10)  # storing and committing
        for job in batch:
            job.result = "stored"
        self.batches.append(batch)

    def submit(self, told: threading.Semaphore) -> group_commit.Job:
        job = group_commit.Job()
        self.group.submit_nowait(job, told.release)
        return job


def test_a_cast_at_a_quiet_time_is_stored_at_once(monkeypatch):
    monkeypatch.setattr(group_commit, "GATHER_S", 5.0)
    writer, told = _Writer(), threading.Semaphore(0)
    started = time.monotonic()
    writer.submit(told)
    assert told.acquire(timeout=10)
    assert time.monotonic() - started < 2.0  # not the 5 s a batch under load gathers for
    assert [len(b) for b in writer.batches] == [1]


def test_under_load_the_next_batch_gathers_the_casts_on_their_way(monkeypatch):
    # Jobs queued while a batch is stored mean casts are arriving: the next batch waits GATHER_S
    # for more instead of being stored with the first few (each batch costs a fixed part).
    monkeypatch.setattr(group_commit, "GATHER_S", 2.0)  # long enough for this thread on a busy machine
    writer, told = _Writer(hold_first=True), threading.Semaphore(0)
    writer.submit(told)
    assert writer.started.wait(10)
    writer.submit(told)  # queued while the first batch is being stored
    writer.release.set()
    assert told.acquire(timeout=10)  # the first batch is stored; the second is gathering
    for _ in range(3):
        writer.submit(told)
    assert all(told.acquire(timeout=10) for _ in range(4))
    assert [len(b) for b in writer.batches] == [1, 4]


def test_half_a_batch_waiting_is_stored_without_gathering(monkeypatch):
    monkeypatch.setattr(group_commit, "GATHER_S", 5.0)
    writer, told = _Writer(hold_first=True), threading.Semaphore(0)
    writer.submit(told)
    assert writer.started.wait(10)
    for _ in range(group_commit.MAX_BATCH // 2):
        writer.submit(told)
    started = time.monotonic()
    writer.release.set()
    assert all(told.acquire(timeout=10) for _ in range(1 + group_commit.MAX_BATCH // 2))
    assert time.monotonic() - started < 2.0
    assert [len(b) for b in writer.batches] == [1, group_commit.MAX_BATCH // 2]
