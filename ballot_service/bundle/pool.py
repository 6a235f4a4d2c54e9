"""Run the per-file ballot checks in worker processes when the ballots are large enough to
gain from it, inline otherwise: the verifier's only parallel part."""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

# Below this many bytes of ballots, starting the workers costs more than it saves.
PARALLEL_BYTES = 2_000_000
MAX_WORKERS = 8


class Inline:
    """A job run when its result is asked for (small bundles, or no fork)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def open_pool(total_bytes: int) -> concurrent.futures.ProcessPoolExecutor | None:
    """A pool of forked workers for `total_bytes` of work, or None to run inline. The caller
    shuts it down."""
    cpus = os.cpu_count() or 1
    if total_bytes <= PARALLEL_BYTES or cpus <= 1:
        return None
    try:
        return concurrent.futures.ProcessPoolExecutor(
            min(cpus, MAX_WORKERS), mp_context=multiprocessing.get_context("fork"))
    except ValueError:  # no fork on this platform
        return None


def submit(pool, fn, *args):
    """Start fn(*args) in the pool, or wrap it to run inline; either way `.result()` gives it."""
    return pool.submit(fn, *args) if pool is not None else Inline(fn, *args)
