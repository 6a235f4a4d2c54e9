"""benchmarks/bench_cast_cpu.py runs end to end on a small session and prints every step's
figure (no benchmark runs in CI otherwise, so this keeps it from rotting)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_cast_cpu.py"

pytestmark = pytest.mark.skipif(bool(os.environ.get("BALLOT_TEST_DATABASE_URL")),
                                reason="the benchmark makes its own SQLite file; PostgreSQL needs an empty database")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def test_every_step_of_a_small_session_is_measured():
    run = _run("--members", "24")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert re.search(r"step 1 \(event loop\), CPU per cast: \d+\.\d{3} ms", out)
    for part in ("JSON body", "ballot fields", "RSA-PSS check", "marks and digest", "body key check", "sealed row"):
        assert re.search(rf"  {part}\s+\d+\.\d{{3}} ms", out), part
    assert re.search(r"step 2 \(writer thread\), \d+ batches of \d+–\d+ casts \(mean [\d.]+\): "
                     r"CPU per cast \d+\.\d{3} ms", out)

