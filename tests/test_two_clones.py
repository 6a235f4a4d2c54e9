"""Two clones of the project on one machine each install into their own `.venv` and pass their
tests side by side: neither touches a global interpreter nor the other's environment
(scripts/lib/env.sh). Slow: two environments are installed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ballot_service

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_clones_install_and_test_apart(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clones = [tmp_path / "a", tmp_path / "b"]
    for c in clones:
        subprocess.run(["git", "clone", "-q", "--local", str(ROOT), str(c)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BALLOT_", "VIRTUAL_ENV", "PYTHONPATH", "PYTEST_"))}
    env["PYTHON"] = sys.base_prefix + "/bin/python3" if Path(sys.base_prefix, "bin/python3").exists() else "python3"
    runs = [subprocess.Popen(["bash", "scripts/test.sh", "-q", "-p", "no:cacheprovider", "tests/test_architecture.py",
                              "tests/test_rules.py"], cwd=c, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for c in clones]
    for c, p in zip(clones, runs):
        out, _ = p.communicate(timeout=1200)
        assert p.returncode == 0, out[-3000:]
        assert "passed" in out
        where = subprocess.run([str(c / ".venv" / "bin" / "python"), "-c",
                                "import ballot_service; print(ballot_service.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path, timeout=60).stdout.strip()
        assert where == str(c / "ballot_service" / "__init__.py"), where
    # This interpreter's own ballot_service is untouched by the clones' installs.
    assert Path(ballot_service.__file__).resolve().parents[1] == ROOT
