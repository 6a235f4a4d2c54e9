"""No route is reachable without its role: every URL rule of the app, every method, called by
every kind of caller. Routes are read from the app itself, so a new route is covered the
day it is added (and the app refuses to start if it declares no role at all)."""
from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.routing import IntegerConverter

from ballot_service.domain.operators import create_operator
from ballot_service.domain.terminals import register_terminal
from ballot_service.models import Body, Member, Operator, Sitting
from ballot_service.web import cast_endpoint
from ballot_service.web.roles import check_every_route_declares_role, requires

# Terminals first: an allowed secretariat call such as POST /api/admin/terminals/1/revoke
# really revokes the sample terminal.
IDENTITIES = ("terminal", "station", "anonymous", "secretariat", "auditor", "display", "superuser")
OPERATOR_IDENTITIES = ("secretariat", "auditor", "display", "superuser")


@pytest.fixture
def credentials(app, db):
    body = Body(name="测试", kind="congress")
    db.add(body)
    db.flush()
    sitting = Sitting(body_id=body.id, name="第一次会议")
    db.add(sitting)
    db.add(Member(body_id=body.id, member_no="M1", name="代表甲", seat="1"))  # the tablet's seat is on the roster
    db.flush()
    _, seat = register_terminal(db, sitting, "席位 1", "seat", "1")
    _, station = register_terminal(db, sitting, "计票站", "counting_station")
    for role in OPERATOR_IDENTITIES:  # each with its role in every body
        create_operator(db, f"user-{role}", "password-1", role)
    db.commit()
    return {"terminal": seat, "station": station}


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        roles = app.view_functions[rule.endpoint].required_roles
        url = rule.rule
        for arg, conv in rule._converters.items():
            sample = "1" if isinstance(conv, IntegerConverter) else "x1"
            url = re.sub(rf"<(?:[^:<>]+:)?{arg}>", sample, url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.rule, url, method, roles
    # Served in front of Flask (cast_endpoint.py), so not in the URL map.
    yield cast_endpoint.PATH, cast_endpoint.PATH, "POST", cast_endpoint.ROLES


def _client_as(app, identity, credentials):
    client = app.test_client()
    headers = {}
    if identity in OPERATOR_IDENTITIES:
        with client.session_transaction() as s:
            # Read each time: an allowed logout ends every login of the operator.
            s["username"], s["version"] = f"user-{identity}", _version(app, f"user-{identity}")
    elif identity in ("terminal", "station"):
        headers["Authorization"] = f"Bearer {credentials[identity]}"
    return client, headers


def _version(app, username: str) -> int:
    with app.extensions["ballot_sessionmaker"]() as db:
        return db.scalar(select(Operator.session_version).where(Operator.username == username))


def _csrf(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_every_route_refuses_callers_without_its_role(app, credentials):
    checked = refused = 0
    routes = list(_routes(app))
    assert len(routes) > 30, "the app's routes were not found"
    for identity in IDENTITIES:
        for rule, url, method, roles in routes:
            allowed = "public" in roles or identity in roles
            client, headers = _client_as(app, identity, credentials)
            kwargs = {"headers": headers}
            if method == "POST":
                if url.startswith("/api/"):
                    kwargs["json"] = {}
                else:
                    kwargs["data"] = {"csrf_token": _csrf(client)}
            resp = client.open(url, method=method, buffered=False, **kwargs)
            status, location = resp.status_code, resp.headers.get("Location", "")
            resp.close()
            checked += 1
            if allowed:
                # A public route may still answer 401 (a wrong password at /login).
                if "public" not in roles:
                    assert status not in (401, 403), f"{identity} was refused {method} {rule} ({status})"
                continue
            refused += 1
            if url.startswith("/api/"):
                assert status in (401, 403), f"{identity} reached {method} {rule}: {status}"
            else:
                assert status in (401, 403) or (status == 302 and location.startswith("/login")), \
                    f"{identity} reached {method} {rule}: {status} {location}"
    assert refused > 50 and checked > refused


def test_a_terminal_credential_is_not_an_operator_login(app, credentials):
    client = app.test_client()
    r = client.get("/console", headers={"Authorization": f"Bearer {credentials['terminal']}"})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def test_start_up_refuses_a_route_that_does_not_say_how_its_body_is_found():
    for decorator, rule, words in ((requires("secretariat"), "/x/<int:item_id>", "no body"),
                                   (requires("secretariat", body="sitting_id"), "/x/<int:item_id>", "not in the URL"),
                                   (lambda view: view, "/x", "no role")):
        app = Flask(__name__)
        app.add_url_rule(rule, "x", decorator(lambda **kw: "x"))
        with pytest.raises(RuntimeError, match=words):
            check_every_route_declares_role(app)
    with pytest.raises(ValueError):
        requires("secretariat", body="seat_id")
