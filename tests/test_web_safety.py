"""Issue #16 items 6 and 7: the Origin check on every cookie-carrying state change, and the
files and headers (private database files, no-store on credential pages and the admin API, a
Content-Security-Policy and no framing on every HTML page, Allow on 405)."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from console_support import post
from helpers_live import OPERATOR, setup_sitting
from sqlalchemy import select

from ballot_service import create_app
from ballot_service.migrate import upgrade
from ballot_service.models import Terminal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def console_login(app):
    """A console client logged in as the `api` fixture's secretariat operator."""
    c = app.test_client()
    r = post(c, "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code == 302
    return c


def revoked(app, terminal_id: int) -> bool:
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return db.scalar(select(Terminal.revoked_at).where(Terminal.id == terminal_id)) is not None
    finally:
        db.close()


# --- Origin ---------------------------------------------------------------------------------

def test_bodyless_admin_call_from_another_site_is_refused(app, api):
    """Was: POST /api/admin/terminals/5/revoke with the cookie, no body and a foreign Origin → 200."""
    s = setup_sitting(api, members=3, open_vote=False)
    tid = s.terminal_ids[s.members[0]]
    for headers in ({"Origin": "http://10.0.0.5:9999"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {"Origin": "http://localhost.evil.example"},
                    {"Origin": "http://localhost:99999"}, {"Origin": "http://localhost:8000"}, {"Referer": "x"}):
        r = api.client.post(f"/api/admin/terminals/{tid}/revoke", headers=headers)
        assert r.status_code == 403, headers
        assert r.get_json()["errors"][0]["where"] in ("Origin", "Referer")
        assert not revoked(app, tid)
    # the same host through a proxy that ends TLS (the browser says https, the server sees http)
    r = api.client.post(f"/api/admin/terminals/{tid}/revoke", headers={"Origin": "https://localhost"})
    assert r.status_code == 200 and revoked(app, tid)
    tid2 = s.terminal_ids[s.members[1]]
    r = api.client.post(f"/api/admin/terminals/{tid2}/revoke", headers={"Referer": "http://localhost/console"})
    assert r.status_code == 200


def test_json_and_form_posts_from_another_site_are_refused(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    console = console_login(app)
    r = api.client.post("/api/admin/bodies", json={"name": "x", "kind": "congress"},
                        headers={"Origin": "https://attacker.example"})
    assert r.status_code == 403
    r = post(console, "/console/bodies", {"name": "x", "kind": "congress"},
             headers={"Origin": "https://attacker.example"})
    assert r.status_code == 403
    r = api.client.post("/api/admin/logout", headers={"Origin": "https://attacker.example"})
    assert r.status_code == 403
    assert s.body_id


def test_public_url_is_an_accepted_origin(settings_env, api):
    app2 = create_app({**settings_env, "BALLOT_PUBLIC_URL": "https://vote.example.gov.cn"})
    app2.config["TESTING"] = True
    c = app2.test_client()
    r = c.post("/api/admin/login", json={"username": "operator", "password": "operator-password-1"})
    assert r.status_code == 200
    r = c.post("/api/admin/bodies", json={"name": "某市人大", "kind": "congress"},
               headers={"Origin": "https://vote.example.gov.cn"})
    assert r.status_code == 201
    r = c.post("/api/admin/bodies", json={"name": "某市人大", "kind": "congress"},
               headers={"Origin": "https://vote.example.gov.cn.evil.example"})
    assert r.status_code == 403
    app2.extensions["ballot_engine"].dispose()


def test_bearer_requests_without_a_cookie_are_not_affected(api):
    s = setup_sitting(api, members=2, open_vote=False)
    c = api.client.application.test_client()  # no cookie
    r = c.post("/api/terminal/checkin", json={"member": s.members[1]},
               headers={"Authorization": f"Bearer {s.creds[s.members[1]]}", "Origin": "http://elsewhere"})
    assert r.status_code == 200


# --- files ----------------------------------------------------------------------------------

@pytest.mark.skipif(bool(os.environ.get("BALLOT_TEST_DATABASE_URL")), reason="SQLite files only")
def test_database_files_are_private(tmp_path, settings_env):
    instance = tmp_path / "fresh-instance"
    env = {**settings_env, "BALLOT_INSTANCE_PATH": str(instance),
           "BALLOT_DATABASE_URL": f"sqlite:///{instance / 'ballot.sqlite3'}"}

    upgrade(env["BALLOT_DATABASE_URL"])
    app = create_app(env)
    with app.extensions["ballot_engine"].connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x)")
        assert stat.S_IMODE(instance.stat().st_mode) == 0o700
        files = [p for p in instance.iterdir() if p.name.startswith("ballot.sqlite3")]
        assert {p.name for p in files} >= {"ballot.sqlite3", "ballot.sqlite3-wal"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    app.extensions["ballot_engine"].dispose()


# --- headers --------------------------------------------------------------------------------

def test_credential_page_and_admin_api_are_not_stored(app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    console = console_login(app)
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals", {"stations": "1"})
    assert r.status_code == 200 and "credential" in r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store"
    for resp in (api.client.get(f"/api/admin/sessions/{s.sitting_id}/attendance"),
                 api.client.post("/api/admin/login", json={"username": "x", "password": "y"}),
                 api.client.get("/api/admin/nothing-here")):
        assert resp.headers["Cache-Control"] == "no-store"


def test_every_html_page_has_a_csp_and_refuses_framing(app, api, client):
    s = setup_sitting(api, members=2, open_vote=False)
    console = console_login(app)
    pages = [(client, "/login"), (client, "/seat"), (client, "/verify/nothing"),
             (console, "/console"), (console, f"/console/sessions/{s.sitting_id}"),
             (console, f"/console/bodies/{s.body_id}/roster"), (console, "/console/nothing")]
    for c, url in pages:
        r = c.get(url)
        assert r.mimetype == "text/html", url
        csp = r.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY", url


def test_templates_have_no_inline_script_or_style():
    """The CSP allows scripts and styles only from /static: no inline handler, <script> code,
    <style> block or style attribute in a template (JSON data blocks are not scripts)."""
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text("utf-8")
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert not re.search(r"\sstyle\s*=", text), path
        assert "<style" not in text, path
        for m in re.finditer(r"<script([^>]*)>", text):
            attrs = m.group(1)
            assert "src=" in attrs or 'type="application/json"' in attrs, (path, attrs)


def test_405_keeps_its_allow_header(client):
    r = client.get("/api/admin/login")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    assert r.get_json()["errors"][0]["errorType"] == "MethodNotAllowed"
    r = client.get("/api/terminal/cast")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = client.get("/logout")  # an HTML page's 405
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
