"""The console login against abuse (issue 16, item 4): sizes refused before anything is
stored or hashed, failures kept in their own bounded table (never an audit chain), rate
limits per login and source, per source and overall that an attacker on the hall network
cannot turn against the secretariat, the source read from a trusted proxy's header only,
and the same work for an unknown login as for a known one."""
from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from console_support import post
from helpers_live import OPERATOR
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from ballot_service import create_app
from ballot_service.db import database_now
from ballot_service.domain import login_limits, operators
from ballot_service.errors import InvalidInput
from ballot_service.models import AuditEvent, LoginFailure, LoginLock


def login(app, username, password, source="10.0.0.66", headers=None):
    c = app.test_client()
    return c.post("/api/admin/login", json={"username": username, "password": password},
                  environ_base={"REMOTE_ADDR": source}, headers=headers or {})


def rows(db, model, *where) -> int:
    try:
        return db.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        db.rollback()


def audit_len(db) -> int:
    return rows(db, AuditEvent)


@pytest.mark.parametrize("field,size", [("username", 60_000), ("username", 65), ("password", 257)])
def test_an_oversized_name_or_password_is_refused_before_anything_is_stored(app, api, db, field, size):
    before = audit_len(db)
    body = {"username": OPERATOR[0], "password": OPERATOR[1], field: "x" * size}
    r = login(app, body["username"], body["password"])
    assert r.status_code == 400 and r.get_json()["errors"][0]["where"] == field
    assert audit_len(db) == before and rows(db, LoginFailure) == 0


def test_the_console_form_refuses_a_megabytes_long_user_name_storing_nothing(app, api, db):
    before = audit_len(db)
    r = post(app.test_client(), "/login", {"username": "x" * 8 * 1024 * 1024, "password": "wrong-password"})
    assert r.status_code == 400 and "用户名须为 1 至 64 个字符" in r.get_data(as_text=True)
    assert audit_len(db) == before and rows(db, LoginFailure) == 0


@pytest.mark.parametrize("field", ["username", "password"])
def test_nul_in_the_form_is_refused_not_a_server_error(app, api, db, field):
    data = {"username": OPERATOR[0], "password": "wrong-password", field: "x\x00y-password"}
    r = post(app.test_client(), "/login", data)  # PostgreSQL stores no NUL (a form may carry one)
    assert r.status_code == 400 and "U+0000" in r.get_data(as_text=True)
    assert rows(db, LoginFailure) == 0
    with pytest.raises(InvalidInput):
        operators.check_sizes(OPERATOR[0], "x\ud800y-password")  # the hash could not encode it


def test_a_failed_login_is_stored_bounded_and_escaped_outside_the_audit_chain(app, api, db):
    before = audit_len(db)
    name = "ab\u202e\u200b\x01\\" + "名" * 58  # 64 characters
    r = post(app.test_client(), "/login", {"username": name, "password": "wrong-password"},
             environ_base={"REMOTE_ADDR": "10.0.0.66"})  # the form: JSON refuses controls before this
    assert r.status_code == 401 and audit_len(db) == before  # unauthenticated: no event in any chain
    stored = db.execute(select(LoginFailure.username, LoginFailure.source)).one()
    db.rollback()
    assert stored.source == "10.0.0.66" and len(stored.username) <= login_limits.STORED_CHARS
    assert stored.username.startswith("ab\\u202e\\u200b\\u0001\\\\名")
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in stored.username)


@given(st.text(max_size=64))
def test_shown_name_is_bounded_and_shows_no_invisible_character(name):
    shown = login_limits.shown_name(name)
    assert len(shown) <= login_limits.STORED_CHARS
    assert not any(ch != " " and unicodedata.category(ch) in login_limits._ESCAPED for ch in shown)
    if "\\" not in name and not any(ch != " " and unicodedata.category(ch) in login_limits._ESCAPED
                                    for ch in name):
        assert shown == name


def test_wrong_passwords_lock_the_login_only_from_the_source_that_failed(app, api, db):
    for _ in range(login_limits.PER_LOGIN):
        assert login(app, OPERATOR[0], "wrong-password", source="10.0.0.66").status_code == 401
    r = login(app, *OPERATOR, source="10.0.0.66")
    assert r.status_code == 429 and r.get_json()["errors"][0]["where"] == "username"
    assert login(app, *OPERATOR, source="10.0.0.7").status_code == 200  # the secretariat's own PC
    assert rows(db, LoginLock) == 1


def test_many_user_names_from_one_source_lock_that_source(app, api, db):
    for i in range(login_limits.PER_SOURCE):
        assert login(app, f"guess{i}", "wrong-password").status_code == 401
    r = login(app, "another-guess", "wrong-password")
    assert r.status_code == 429 and r.get_json()["errors"][0]["where"] == "source"
    assert login(app, *OPERATOR).status_code == 429  # not even the right password from there
    assert login(app, *OPERATOR, source="10.0.0.7").status_code == 200
    assert rows(db, LoginFailure) == login_limits.PER_SOURCE  # refused attempts store nothing


def test_over_the_overall_limit_a_source_that_failed_waits_and_a_clean_one_gets_in(app, api, db):
    now = database_now(db)
    for i in range(login_limits.OVERALL):
        login_limits.record_failure(db, f"guess{i}", f"10.1.{i // 200}.{i % 200}", now)
    db.commit()
    r = login(app, *OPERATOR, source="10.1.0.5")  # one guess per window per address
    assert r.status_code == 429 and r.get_json()["errors"][0]["where"] == "source"
    assert login(app, *OPERATOR, source="10.0.0.7").status_code == 200


def test_failures_are_pruned_by_age_and_capped(app, db, monkeypatch):
    now = database_now(db)
    old = now - dt.timedelta(seconds=login_limits.WINDOW_S + 1)
    login_limits.record_failure(db, "old", "10.0.0.1", old)
    login_limits.record_failure(db, "new", "10.0.0.2", now)
    assert db.scalars(select(LoginFailure.username)).all() == ["new"]
    monkeypatch.setattr(login_limits, "MAX_ROWS", 7)
    for i in range(12):
        login_limits.record_failure(db, f"n{i}", f"10.2.0.{i}", now)
    assert rows(db, LoginFailure) == 7


def test_an_unknown_login_checks_a_password_hash_as_a_known_one_does(app, api, db, monkeypatch):
    checked = []
    real = operators.check_password_hash
    monkeypatch.setattr(operators, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    assert login(app, "nobody-here", "wrong-password").status_code == 401
    assert login(app, OPERATOR[0], "wrong-password").status_code == 401
    assert len(checked) == 2 and checked[0] == operators._dummy_hash()
    assert checked[0].split("$")[0] == checked[1].split("$")[0]  # the same method and cost


def test_a_lockout_survives_a_new_app_instance_and_ends_at_its_deadline(app, api, db, settings_env):
    for _ in range(login_limits.PER_LOGIN):
        login(app, OPERATOR[0], "wrong-password")
    app.extensions["ballot_engine"].dispose()
    restarted = create_app(settings_env)
    try:
        assert login(restarted, *OPERATOR).status_code == 429
        # The deadline is compared with the database's clock: move it just past.
        db.execute(update(LoginLock).values(until=database_now(db) - dt.timedelta(seconds=1)))
        db.commit()
        assert login(restarted, *OPERATOR).status_code == 200
    finally:
        restarted.extensions["ballot_engine"].dispose()


def test_unlock_login_and_unlock_source_lift_lockouts(app, api, db):
    for _ in range(login_limits.PER_LOGIN):
        login(app, OPERATOR[0], "wrong-password")
    assert login_limits.unlock_login(db, OPERATOR[0]) == 1
    db.commit()
    assert login(app, *OPERATOR).status_code == 200
    for i in range(login_limits.PER_SOURCE):
        login(app, f"guess{i}", "wrong-password", source="10.0.0.99")
    assert login_limits.unlock_source(db, "10.0.0.99") == 1
    db.commit()
    assert login(app, *OPERATOR, source="10.0.0.99").status_code == 200


@pytest.fixture
def proxied(settings_env, api):
    """The app behind a reverse proxy at 10.9.9.9."""
    app = create_app({**settings_env, "BALLOT_TRUSTED_PROXIES": "10.9.9.9"})
    yield app
    app.extensions["ballot_engine"].dispose()


def test_behind_a_trusted_proxy_one_client_locked_out_does_not_lock_out_the_hall(proxied, db):
    for i in range(login_limits.PER_SOURCE):
        login(proxied, f"guess{i}", "wrong-password", source="10.9.9.9", headers={"X-Forwarded-For": "10.0.0.66"})
    assert login(proxied, *OPERATOR, source="10.9.9.9", headers={"X-Forwarded-For": "10.0.0.66"}).status_code == 429
    assert login(proxied, *OPERATOR, source="10.9.9.9", headers={"X-Forwarded-For": "10.0.0.7"}).status_code == 200
    assert set(db.scalars(select(LoginFailure.source)).all()) == {"10.0.0.66"}


def test_a_forwarded_header_from_an_untrusted_address_is_ignored(proxied, app, db):
    for i in range(login_limits.PER_SOURCE):
        login(proxied, f"guess{i}", "wrong-password", source="10.0.0.66", headers={"X-Forwarded-For": f"10.5.0.{i}"})
    assert set(db.scalars(select(LoginFailure.source)).all()) == {"10.0.0.66"}
    assert login(proxied, *OPERATOR, source="10.0.0.66", headers={"X-Forwarded-For": "10.0.0.7"}).status_code == 429
