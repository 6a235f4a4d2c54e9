"""One service, two bodies: an operator of one body reaches nothing of the other. Every route
of the app (read from its URL map, so a new route is covered the day it is added) is called
with the other body's ids as each role of body B, and is refused with 403 or 404 with the
database unchanged; the lists (console, screen chooser) leave the other body out."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
from helpers_live import OPERATOR, login_client, publish, setup_sitting, vote
from sqlalchemy import MetaData, select

from ballot_service.db import database_now
from ballot_service.domain.operators import create_operator
from ballot_service.models import PrintJob, Record

B_LOGINS = {"secretariat": ("b-mishu", "b-mishu-password"), "auditor": ("b-shenji", "b-shenji-password"),
            "display": ("b-daping", "b-daping-password")}
A_NAME, B_NAME, A_SITTING = "测试市人民代表大会", "乙县人民代表大会", "第一次会议"


@pytest.fixture
def two_bodies(app, api, settings_env):
    """Body A with a decided, recorded vote (made by an every-body secretariat), body B with its
    own sitting and its own secretariat, auditor and display logins; a print job of A's item."""
    s = setup_sitting(api, OPERATOR, members=3)
    for no in s.present:
        vote(api, s.creds[no], {"motion": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    _, b = api.call("POST", "/api/admin/bodies", {"name": B_NAME, "kind": "congress"})
    _, b_sitting = api.call("POST", "/api/admin/sessions", {"body_id": b["id"], "name": "乙县首次会议"})
    db = app.extensions["ballot_sessionmaker"]()
    for role, (user, password) in B_LOGINS.items():
        create_operator(db, user, password, role, b["id"])
    record_id = db.scalar(select(Record.id))
    db.add(PrintJob(id="abc123", item_id=s.item_id, state="done", done=1, total=1, files=[],
                    updated_at=database_now(db)))
    db.commit()
    db.close()
    return {"body_id": s.body_id, "sitting_id": s.sitting_id, "item_id": s.item_id, "terminal_id": s.station_id,
            "record_id": record_id, "job_id": "abc123", "action": "close", "name": f"item{s.item_id}-round1.pdf",
            "b_body": b["id"], "b_sitting": b_sitting["id"]}


def _snapshot(app) -> dict:
    """Every row of every table."""
    engine = app.extensions["ballot_engine"]
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as c:
        return {t.name: sorted(map(repr, c.execute(t.select()).all())) for t in meta.sorted_tables}


def _routes_of_a(app, ids):
    """(rule, url with body A's ids, method, roles, body source) of every operator route."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        roles = set(view.required_roles)
        if "public" in roles or not roles & {"secretariat", "auditor", "display", "superuser"}:
            continue
        url = rule.rule
        for arg, conv in rule._converters.items():
            url = re.sub(rf"<(?:[^:<>]+:)?{arg}>", str(ids[arg]), url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.rule, url, method, roles, view.body_source


def _call(client, url, method, ids):
    if method == "GET":
        return client.get(url, buffered=False)
    if url.startswith("/api/"):
        return client.open(url, method=method, json={"body_id": ids["body_id"], "name": "入侵", "show": "title",
                                      "members": [{"id": "X1", "name": "某", "seat": "X1"}]})
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return client.post(url, data={"csrf_token": csrf, "body_id": str(ids["body_id"]), "name": "入侵"})


def test_every_route_refuses_an_operator_of_another_body(app, two_bodies):
    ids = two_bodies
    clients = {role: login_client(app, login) for role, login in B_LOGINS.items()}
    before = _snapshot(app)
    checked = 0
    for role, client in clients.items():
        for rule, url, method, roles, source in _routes_of_a(app, ids):
            if rule.endswith("/logout"):
                continue  # ends the caller's own login: checked below
            resp = _call(client, url, method, ids)
            status, text = resp.status_code, b"".join(resp.response).decode("utf-8", "replace")
            resp.close()
            checked += 1
            if source == "own" and role in roles:
                # A list: answered, without body A.
                assert status in (200, 409), f"{role} {method} {rule}: {status}"
                assert A_NAME not in text and A_SITTING not in text, f"{role} saw body A at {rule}"
                continue
            assert status in (403, 404), f"{role} of body B reached {method} {url}: {status}"
    assert checked > 100
    after = _snapshot(app)
    assert after == before


def test_lists_show_only_the_logins_bodies(app, two_bodies):
    sec = login_client(app, B_LOGINS["secretariat"])
    home = sec.get("/console").get_data(as_text=True)
    assert B_NAME in home and A_NAME not in home
    screen = login_client(app, B_LOGINS["display"])
    chooser = screen.get("/display").get_data(as_text=True)
    assert "乙县首次会议" in chooser and A_SITTING not in chooser
    assert screen.get(f"/display/{two_bodies['b_sitting']}/state").status_code == 200
    assert screen.get(f"/display/{two_bodies['sitting_id']}/state").status_code == 403


def test_an_operator_of_body_b_works_in_body_b(app, two_bodies):
    """The refusals above are not a login that reaches nothing: in its own body, B's
    secretariat creates a sitting and registers terminals."""
    sec = login_client(app, B_LOGINS["secretariat"])
    r = sec.post("/api/admin/sessions", json={"body_id": two_bodies["b_body"], "name": "乙县第二次会议"})
    assert r.status_code == 201
    r = sec.post(f"/api/admin/sessions/{r.get_json()['id']}/terminals",
                 json={"terminals": [{"name": "计票站", "kind": "counting_station"}]})
    assert r.status_code == 201
    # Creating a body is the service's administration, not a body's secretariat's.
    assert sec.post("/api/admin/bodies", json={"name": "丙镇人民代表大会", "kind": "congress"}).status_code == 403


def test_the_audit_zip_of_a_body_login_never_holds_another_body(app, two_bodies):
    auditor = login_client(app, B_LOGINS["auditor"])
    for url in ("/console/audit-bundle.zip", f"/console/bodies/{two_bodies['b_body']}/audit-bundle.zip",
                f"/console/sessions/{two_bodies['b_sitting']}/audit-bundle.zip"):
        r = auditor.get(url)
        assert r.status_code == 200, url
        with zipfile.ZipFile(io.BytesIO(r.data)) as z:
            held = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        assert A_NAME not in held, url
    assert auditor.get(f"/console/bodies/{two_bodies['body_id']}/audit-bundle.zip").status_code == 403
    assert auditor.get(f"/console/audit-bundle.zip?body={two_bodies['body_id']}").status_code == 403
    assert auditor.get(f"/console/audit-bundle.zip?session={two_bodies['sitting_id']}").status_code == 403


def test_the_superuser_administers_bodies_but_sees_no_sitting(app, two_bodies):
    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, "admin", "admin-password-1", "superuser")
    db.commit()
    db.close()
    admin = login_client(app, ("admin", "admin-password-1"))
    home = admin.get("/console").get_data(as_text=True)
    assert A_NAME in home and B_NAME in home and A_SITTING not in home and "乙县首次会议" not in home
    for url in (f"/console/sessions/{two_bodies['sitting_id']}", f"/api/admin/sessions/{two_bodies['sitting_id']}/results",
                f"/console/bodies/{two_bodies['body_id']}/roster", f"/display/{two_bodies['sitting_id']}/state"):
        assert admin.get(url).status_code == 403, url
    r = admin.post("/api/admin/bodies", json={"name": "丙镇人民代表大会", "kind": "congress"})
    assert r.status_code == 201
