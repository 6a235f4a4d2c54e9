"""benchmarks/bench_issue_batch.py runs end to end on a small session, takes every count and
prints its figures (no benchmark runs in CI otherwise, so this keeps it from rotting)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_issue_batch.py"

pytestmark = pytest.mark.skipif(bool(os.environ.get("BALLOT_TEST_DATABASE_URL")),
                                reason="the benchmark makes its own SQLite file; PostgreSQL needs an empty database")


def test_every_count_of_a_small_session_is_taken_and_measured():
    run = subprocess.run([sys.executable, str(SCRIPT), "--members", "24", "--batch", "5"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert re.search(r"4 batches of 5: writer thread CPU \d+\.\d\d ms a batch \(\d+\.\d{3} ms a count\), "
                     r"wall \d+\.\d\d ms a batch; 24/24 counted", run.stdout), run.stdout
