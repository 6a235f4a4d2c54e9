"""A wheel built from the project carries everything the service needs at run time: the
top-level templates/, the static files and the migrations. Installed into a fresh virtual
environment (the checkout not on its path), it creates a database and serves a page."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SERVE_A_PAGE = textwrap.dedent("""
    import os, sys
    import ballot_service
    from ballot_service import create_app
    from ballot_service.migrate import upgrade
    assert "site-packages" in ballot_service.__file__, ballot_service.__file__
    url = "sqlite:///" + os.path.join(sys.argv[1], "wheel.sqlite3")
    upgrade(url)
    app = create_app({"BALLOT_DATABASE_URL": url, "BALLOT_INSTANCE_PATH": sys.argv[1]})
    client = app.test_client()
    for path in ("/login", "/static/seat.js", "/seat"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    assert "登录" in client.get("/login").get_data(as_text=True)
    print("served from", ballot_service.__file__)
""")


@pytest.mark.slow
def test_a_built_wheel_installs_into_a_fresh_venv_and_serves_a_page(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path, timeout=300)
    (wheel,) = wheels.glob("ballot_service-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("ballot_service/templates/console/login.html", "ballot_service/templates/seat/seat.html",
                   "ballot_service/static/seat.js", "ballot_service/openapi.yaml",
                   "ballot_service/migrations/env.py"):
        assert needed in names, f"{needed} missing from {wheel.name}"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    # The dependencies come from this interpreter's site-packages (no network in a test); a
    # path added by a .pth is not scanned for .pth files, so this project's editable install
    # there does not shadow the wheel.
    deps = sysconfig.get_paths()["purelib"]
    (Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  text=True).strip()) / "deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BALLOT_", "PYTHON"))}
    out = subprocess.run([str(py), "-c", SERVE_A_PAGE, str(tmp_path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(venv) in out.stdout
