"""Logins that end: a copied login cookie stops working after the operator logs out, is
disabled or deleted, gets a new password, or has a role given or taken; the CLI's
`operator disable|enable|passwd|grant|revoke|unlock|list` does these."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from console_support import flashes, post
from helpers_live import OPERATOR, login_client
from sqlalchemy import select

from ballot_service.cli import main
from ballot_service.domain import grants
from ballot_service.domain.operators import LOGIN_MAX_FAILURES, create_operator
from ballot_service.errors import InvalidInput
from ballot_service.models import Body, Operator

PROBE = "/api/admin/sessions/1/results"  # any operator route: 401 without a login, else 404 (no sitting 1)


def _cli(settings_env, *args, **env):
    r = CliRunner().invoke(main, list(args), env={**settings_env, **env}, catch_exceptions=False)
    return r.exit_code, r.output


def _stolen_copy(app, client):
    """A second client holding the same cookie, as an attacker who copied it would."""
    thief = app.test_client()
    cookie = client.get_cookie("session")
    thief.set_cookie("session", cookie.value)
    return thief


def _op(db) -> Operator:
    db.rollback()  # a fresh read; and no transaction left open beside the app's writers
    return db.scalar(select(Operator).where(Operator.username == OPERATOR[0]))


def test_the_probe_answers_a_live_login(app, api):
    client = login_client(app, OPERATOR)
    assert _stolen_copy(app, client).get(PROBE).status_code == 404
    assert app.test_client().get(PROBE).status_code == 401


@pytest.mark.parametrize("how", ["logout", "disable", "passwd", "grant", "revoke", "delete"])
def test_a_copied_cookie_dies_with_the_login(app, api, db, how):
    client = login_client(app, OPERATOR)
    thief = _stolen_copy(app, client)
    assert thief.get(PROBE).status_code == 404
    op = _op(db)
    if how == "logout":
        db.rollback()
        assert client.post("/api/admin/logout").status_code == 200
    elif how == "disable":
        grants.set_disabled(db, op, True)
    elif how == "passwd":
        grants.set_password(db, op, "a-new-password-2")
    elif how == "grant":
        body = Body(name="乙县人民代表大会", kind="congress")
        db.add(body)
        db.flush()
        grants.grant_role(db, op, "auditor", body.id)
    elif how == "revoke":
        assert grants.revoke_role(db, op, "secretariat", None) == 1
    elif how == "delete":
        db.delete(op)
    db.commit()
    assert thief.get(PROBE).status_code == 401
    assert client.get(PROBE).status_code == 401
    if how == "revoke":  # no role left anywhere: no login either, on the page or the API
        r = post(app.test_client(), "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
        assert r.status_code == 401 and "没有角色" in r.get_data(as_text=True)
        r = app.test_client().post("/api/admin/login", json={"username": OPERATOR[0], "password": OPERATOR[1]})
        assert r.status_code == 401


def test_a_disabled_operator_cannot_log_in_until_enabled(app, api, db):
    grants.set_disabled(db, _op(db), True)
    db.commit()
    r = app.test_client().post("/api/admin/login", json={"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code == 401 and "disabled" in r.get_data(as_text=True)
    grants.set_disabled(db, _op(db), False)
    db.commit()
    login_client(app, OPERATOR)


def test_the_cli_manages_logins(app, api, db, settings_env):
    client = login_client(app, OPERATOR)
    code, out = _cli(settings_env, "operator", "list")
    assert code == 0 and out.split() == [OPERATOR[0], "secretariat@*"]
    db.add(Body(name="乙县人民代表大会", kind="congress"))
    db.commit()
    body_id = db.scalar(select(Body.id))
    db.rollback()
    assert _cli(settings_env, "operator", "add", "b-shenji", "auditor", "--body", str(body_id),
                BALLOT_NEW_PASSWORD="long-enough-1")[0] == 0
    assert _cli(settings_env, "operator", "add", "x", "auditor", "--body", "99",
                BALLOT_NEW_PASSWORD="long-enough-1")[0] == 2
    assert _cli(settings_env, "operator", "grant", OPERATOR[0], "auditor", "--body", str(body_id))[0] == 0
    assert client.get(PROBE).status_code == 401  # the grant ended the login
    assert _cli(settings_env, "operator", "revoke", OPERATOR[0], "secretariat")[0] == 0
    code, out = _cli(settings_env, "operator", "list")
    assert f"{OPERATOR[0]}\tauditor@乙县人民代表大会" in out and "b-shenji\tauditor@乙县人民代表大会" in out
    assert _cli(settings_env, "operator", "disable", "b-shenji")[0] == 0
    assert "b-shenji\tauditor@乙县人民代表大会\tdisabled" in _cli(settings_env, "operator", "list")[1]
    assert _cli(settings_env, "operator", "enable", "b-shenji")[0] == 0
    assert _cli(settings_env, "operator", "passwd", "b-shenji", BALLOT_NEW_PASSWORD="another-one-3")[0] == 0
    login_client(app, ("b-shenji", "another-one-3"))
    code, out = _cli(settings_env, "operator", "disable", "nobody")
    assert code == 2 and "nobody" in out


def test_unlock_lets_a_locked_login_in_again(app, api, settings_env):
    c = app.test_client()
    for _ in range(LOGIN_MAX_FAILURES):
        c.post("/api/admin/login", json={"username": OPERATOR[0], "password": "wrong-password"})
    r = c.post("/api/admin/login", json={"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code in (401, 429)
    assert _cli(settings_env, "operator", "unlock", OPERATOR[0])[0] == 0
    login_client(app, OPERATOR)


def test_a_bodys_secretariat_unlocks_a_login_of_its_body_only(app, api, db):
    body = Body(name="乙县人民代表大会", kind="congress")
    db.add(body)
    db.flush()
    create_operator(db, "b-mishu", "b-mishu-password", "secretariat", body.id)
    create_operator(db, "b-shenji", "b-shenji-password", "auditor", body.id)
    db.commit()
    c = app.test_client()
    for _ in range(LOGIN_MAX_FAILURES):
        c.post("/api/admin/login", json={"username": "b-shenji", "password": "wrong-password"})
    assert c.post("/api/admin/login", json={"username": "b-shenji",
                                            "password": "b-shenji-password"}).status_code in (401, 429)
    sec = app.test_client()
    r = post(sec, "/login", {"username": "b-mishu", "password": "b-mishu-password"})
    assert r.status_code == 302
    # A login of every body (the fixture's secretariat) is not this body's to unlock.
    r = post(sec, f"/console/bodies/{body.id}/unlock", {"username": OPERATOR[0]}, follow_redirects=True)
    assert ("error", f"{OPERATOR[0]} 不是本机构的登录") in [(k, v.split(" 位置")[0]) for k, v in flashes(r)]
    r = post(sec, f"/console/bodies/{body.id}/unlock", {"username": "b-shenji"}, follow_redirects=True)
    assert flashes(r)[0][0] == "ok"
    login_client(app, ("b-shenji", "b-shenji-password"))


def test_a_new_password_is_checked_as_a_login_would_check_it(app, api, db):
    """`operator passwd` sets nothing a login would refuse: too short, too long, or with NUL."""
    op = _op(db)
    before = op.password_hash
    for bad in ("short", "x" * 257, "with-a-nul-\x00-inside"):
        with pytest.raises(InvalidInput):
            grants.set_password(db, op, bad)
    assert op.password_hash == before
