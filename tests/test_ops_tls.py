"""`ballot-service tls init` and `serve` over HTTPS: the CA and server certificate (names,
lifetimes, private files 0600), a page fetched over https with only the hall's CA as trust root,
re-issuing from the same CA, and --tls without the files."""
from __future__ import annotations

import datetime as dt
import os
import signal
import ssl
import subprocess
import time

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from helpers_live import _serve_command, create_operator_in_db, free_port, server_env

from ballot_service.cli import main
from ballot_service.ops import tls
from ballot_service.ops.tls import CA_DAYS, init_tls, tls_dir


def test_tls_init_makes_a_ca_and_a_server_certificate(tmp_path):
    r = CliRunner().invoke(main, ["tls", "init", "--host", "10.0.0.5", "--host", "hall.local"],
                           env={"BALLOT_INSTANCE_PATH": str(tmp_path / "instance")})
    assert r.exit_code == 0, r.output
    d = tls_dir(tmp_path / "instance")
    assert os.stat(d).st_mode & 0o777 == 0o700
    for name in ("ca.key", "server.key"):
        assert os.stat(d / name).st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((d / "server.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= CA_DAYS - 1
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert san.get_values_for_type(x509.DNSName) == ["hall.local"]
    assert server.issuer == ca.subject
    assert "SHA-256" in r.output and "new CA" in r.output

    # Again: the same CA (tablets keep it), a new server certificate for the new names.
    again = init_tls(tmp_path / "instance", ["10.0.0.6"])
    assert not again["created_ca"]
    assert x509.load_pem_x509_certificate((d / "ca.crt").read_bytes()) == ca
    server2 = x509.load_pem_x509_certificate((d / "server.crt").read_bytes())
    assert server2.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.IPAddress)[0].compressed == "10.0.0.6"
    assert server2.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=826)


def test_tls_init_refuses_bad_hosts(tmp_path):
    r = CliRunner().invoke(main, ["tls", "init", "--host", "http://10.0.0.5/"],
                           env={"BALLOT_INSTANCE_PATH": str(tmp_path / "instance")})
    assert r.exit_code == 2 and "neither an IP address nor a DNS name" in r.output


def test_serve_tls_without_files_says_what_to_do(settings_env):
    r = CliRunner().invoke(main, ["serve", "--tls", "--skip-checks"], env=settings_env)
    assert r.exit_code == 1 and "tls init" in r.output


@pytest.mark.slow
def test_serve_over_https_with_the_hall_ca(tmp_path, db_url):
    create_operator_in_db(db_url)
    env = server_env(tmp_path, db_url)
    init_tls(env["BALLOT_INSTANCE_PATH"], ["127.0.0.1", "localhost"])
    ca = tls_dir(env["BALLOT_INSTANCE_PATH"]) / "ca.crt"
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    # No --tls: serve uses HTTPS by itself when `tls init` made the files.
    proc = subprocess.Popen(_serve_command() + ["--port", str(port), "--workers", "1"],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    trust = ssl.create_default_context(cafile=str(ca))
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"https://127.0.0.1:{port}/login", verify=trust, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        output = (tmp_path / "server.log").read_text("utf-8", errors="replace")
        assert page is not None, output
        assert page.status_code == 200 and "<form" in page.text
        assert f"serving on https://127.0.0.1:{port}/" in output
        with pytest.raises(httpx.ConnectError):  # without the hall's CA the certificate is not trusted
            httpx.get(f"https://127.0.0.1:{port}/login", verify=ssl.create_default_context(), timeout=5)
        with pytest.raises(httpx.HTTPError):  # and there is no plain http on that port
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_tablets_fetch_the_hall_ca_from_a_public_page(app, tmp_path):
    """GET /tls shows the CA's fingerprint and a QR code of /tls/ca.crt; before `tls init` both
    say there is none (404). No login: a tablet needs the CA before it trusts anything."""
    client = app.test_client()
    assert client.get("/tls").status_code == 404 and "tls init" in client.get("/tls").get_data(as_text=True)
    assert client.get("/tls/ca.crt").status_code == 404
    tls.init_tls(app.config["SETTINGS"].instance_path, ["127.0.0.1", "hall.local"])
    page = client.get("/tls")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    r = client.get("/tls/ca.crt")
    assert r.status_code == 200 and r.mimetype == "application/x-x509-ca-cert"
    cert = x509.load_pem_x509_certificate(r.data)
    assert cert.fingerprint(hashes.SHA256()).hex(":").upper() in html
    assert "<svg" in html and "/tls/ca.crt" in html
    assert b"PRIVATE KEY" not in r.data
