"""scripts/bundle-offline: build the offline bundle (needs PyPI and Debian; pip's cache makes it
quick), install it with the network cut off (`unshare -n` when root, else pip --no-index alone)
into a temp folder, and serve a page from the installed copy."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from helpers_live import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _no_network_prefix() -> list[str]:
    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-n"]
    return []


def test_offline_bundle_installs_without_network_and_serves(tmp_path):
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs Debian's apt-get to fetch the .debs")
    out = tmp_path / "bundle.tar.gz"
    build = subprocess.run(["bash", str(ROOT / "scripts" / "bundle-offline"), str(out)],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert any(n.startswith("ballot-service-offline/wheels/ballot_service-") for n in names)
    assert any("/debs/fonts-wqy-zenhei_" in n for n in names)
    assert "ballot-service-offline/install.sh" in names

    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-C", str(unpacked), "-xzf", str(out)], check=True)
    prefix = tmp_path / "installed"
    # An environment with no trace of this checkout or its venv.
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
           "LANG": "C.UTF-8", "PYTHON": shutil.which("python3") or "python3"}
    if Path(env["PYTHON"]).resolve().parts[:2] == ("/", "work"):
        env["PYTHON"] = "python3"
    install = subprocess.run(_no_network_prefix() + ["bash", str(unpacked / "ballot-service-offline" / "install.sh"),
                                                     "--prefix", str(prefix)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "ballot-service demo" in install.stdout

    exe = prefix / "bin" / "ballot-service"
    where = subprocess.run([str(prefix / "bin" / "python"), "-c", "import ballot_service; print(ballot_service.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(prefix)), where
    helped = subprocess.run([str(exe), "demo", "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "--sample-dir" in helped.stdout

    data = tmp_path / "data"
    run_env = {**env, "BALLOT_INSTANCE_PATH": str(data / "instance"), "BALLOT_KEYS_DIR": str(data / "keys"),
               "BALLOT_BALLOTS_DIR": str(data / "ballots"), "BALLOT_KEY_PASSPHRASE": "demo-only-passphrase"}
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(exe), "demo", "--sample-dir", str(prefix / "share" / "ballot-service" / "sample"),
                             "--port", str(port), "--workers", "1"], env=run_env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        page, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        output = (tmp_path / "serve.log").read_text("utf-8", errors="replace")
        assert page is not None and page.status_code == 200, output
        assert "<form" in page.text and "sample data loaded" in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)
