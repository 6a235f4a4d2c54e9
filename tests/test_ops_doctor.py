"""`ballot-service doctor`: each check good and bad, `--fix`, the exit code, and `serve` refusing
to start on a fatal problem unless --skip-checks."""
from __future__ import annotations

import datetime as dt
import http.server
import os
import re
import ssl
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_live import free_port
from sqlalchemy import create_engine, text

from ballot_service.cli import main
from ballot_service.config import Settings
from ballot_service.crypto import keys, openssl_rsa
from ballot_service.domain.sittings import create_body
from ballot_service.ops import doctor
from ballot_service.render import fonts

PG_URL = os.environ.get("BALLOT_TEST_DATABASE_URL", "")  # as in conftest.py: PostgreSQL when set
sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="SQLite file checks")


@pytest.fixture
def settings(settings_env, app):
    """Settings of a migrated, empty instance (the `app` fixture upgrades the schema)."""
    keys.clear_cache()
    return Settings.from_env(settings_env)


def add_body(db, name="测试市人民代表大会"):
    body = create_body(db, name, "congress")
    db.commit()
    return body


def test_font(monkeypatch, tmp_path):
    assert doctor.check_font().ok
    monkeypatch.delenv("BALLOT_FONT", raising=False)
    monkeypatch.setattr(fonts, "FONT_CANDIDATES", (str(tmp_path / "none.ttc"),))
    monkeypatch.setattr(fonts, "PACKAGE_FONTS", tmp_path / "no-fonts")
    check = doctor.check_font()
    assert not check.ok and "fonts-wqy-zenhei" in check.en and "中文字体" in check.zh


def test_blind_signing(monkeypatch):
    assert doctor.check_blind_signing().ok == (ssl.OPENSSL_VERSION_INFO[0] >= 3)  # OpenSSL 3 here and in CI
    monkeypatch.setattr(openssl_rsa, "_lib", None)
    check = doctor.check_blind_signing()
    assert not check.ok and not check.fatal and "gmpy2" in check.en and "OpenSSL 3" in check.zh


def test_keys_good_missing_and_wrong_passphrase(settings, db):
    assert [c.ok for c in doctor.check_keys(settings)] == [True]  # no body yet
    body = add_body(db)
    [missing] = doctor.check_keys(settings)
    assert not missing.ok and not missing.fatal
    assert "测试市人民代表大会" in missing.en and f"keys create {body.id}" in missing.en
    keys.create_key(settings.keys_dir, keys.body_key_name(body.id), settings.key_passphrase)
    [good] = doctor.check_keys(settings)
    assert good.ok and "fingerprint" in good.en
    wrong = Settings(**{**settings.__dict__, "key_passphrase": "not-the-passphrase"})
    [bad] = doctor.check_keys(wrong)
    assert not bad.ok and bad.fatal and "wrong passphrase" in bad.en and "测试市人民代表大会" in bad.zh


def test_database_good_behind_newer_and_unreachable(settings, tmp_path):
    assert doctor.check_database(settings).ok
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_newer'"))
    engine.dispose()
    newer = doctor.check_database(settings)
    assert not newer.ok and newer.fatal and "9999_newer" in newer.en
    gone = Settings(**{**settings.__dict__, "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    down = doctor.check_database(gone)
    assert not down.ok and down.fatal and "BALLOT_DATABASE_URL" in down.en
    empty = Settings(**{**settings.__dict__, "database_url": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    create_engine(empty.database_url).connect().close()  # a file with no schema
    behind = doctor.check_database(empty)
    assert not behind.ok and not behind.fatal and "init-db" in behind.en
    assert doctor.check_database(empty, at_start=True).ok  # serve upgrades it


@sqlite_only
def test_permissions_reported_and_fixed(settings):
    db_file = Path(settings.database_url.removeprefix("sqlite:///"))
    os.chmod(db_file, 0o644)
    os.chmod(settings.instance_path, 0o755) if Path(settings.instance_path).exists() else None
    check = doctor.check_permissions(settings)
    assert not check.ok and f"{db_file} is 0644, expected 0600" in check.en and "doctor --fix" in check.en
    fixed = doctor.check_permissions(settings, fix=True)
    assert fixed.ok and "0644→0600" in fixed.en
    assert os.stat(db_file).st_mode & 0o777 == 0o600
    assert doctor.check_permissions(settings).ok


@pytest.fixture
def http_server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_public_url(settings, http_server):
    unset = doctor.check_public_url(settings)
    assert not unset.ok and "BALLOT_PUBLIC_URL" in unset.en
    up = Settings(**{**settings.__dict__, "public_url": http_server})
    assert doctor.check_public_url(up).ok
    down = Settings(**{**settings.__dict__, "public_url": f"http://127.0.0.1:{free_port()}"})
    check = doctor.check_public_url(down, timeout=1)
    assert not check.ok and "does not answer" in check.en and "无法访问" in check.zh


def test_clock(settings):
    good = doctor.check_clock(settings)
    assert good.ok, good.en
    ahead = doctor.check_clock(settings, database_now=lambda: dt.datetime.now(dt.timezone.utc)
                               + dt.timedelta(seconds=5))
    assert not ahead.ok and "+5" in ahead.en
    y2k = doctor.check_clock(settings, system_now=lambda: dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                             database_now=lambda: dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    assert not y2k.ok and "2000-01-01" in y2k.en


def test_doctor_command_exit_codes(settings_env, settings, http_server):
    env = {**settings_env, "BALLOT_PUBLIC_URL": http_server}
    if not PG_URL:
        Path(settings.database_url.removeprefix("sqlite:///")).chmod(0o644)
    r = CliRunner().invoke(main, ["doctor", "--fix"], env=env)
    assert r.exit_code == 0, r.output
    assert "全部正常 all OK" in r.output and re.search(r"OK +\[font\]", r.output)
    r = CliRunner().invoke(main, ["doctor"], env={**env, "BALLOT_PUBLIC_URL": ""})
    assert r.exit_code == 1 and re.search(r"PROBLEM +\[public_url\]", r.output) and "1 个问题 problem(s)" in r.output


def test_serve_refuses_a_key_that_does_not_unlock(settings_env, settings, db, monkeypatch):
    body = add_body(db)
    keys.create_key(settings.keys_dir, keys.body_key_name(body.id), "another-passphrase")
    started = []
    monkeypatch.setattr("ballot_service.cli.serve_cmd._granian", lambda *a, **k: started.append(a))
    r = CliRunner().invoke(main, ["serve"], env=settings_env)
    assert r.exit_code == 1 and not started
    assert re.search(r"FATAL +\[keys\]", r.output) and "wrong passphrase" in r.output and "not starting" in r.output
    r = CliRunner().invoke(main, ["serve", "--skip-checks"], env=settings_env)
    assert r.exit_code == 0 and started, r.output


def test_serve_refuses_an_unreachable_database(settings_env, monkeypatch):
    started = []
    monkeypatch.setattr("ballot_service.cli.serve_cmd._granian", lambda *a, **k: started.append(a))
    env = {**settings_env, "BALLOT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    r = CliRunner().invoke(main, ["serve"], env=env)
    assert r.exit_code == 1 and not started and re.search(r"FATAL +\[database\]", r.output)


def test_serve_starts_with_problems_that_are_not_fatal(settings_env, settings, db, monkeypatch):
    add_body(db)  # a body without a key yet: the console can make it
    started = []
    monkeypatch.setattr("ballot_service.cli.serve_cmd._granian", lambda *a, **k: started.append(a))
    r = CliRunner().invoke(main, ["serve"], env=settings_env)
    assert r.exit_code == 0 and started and re.search(r"PROBLEM +\[keys\]", r.output)


def test_secret_key_must_be_set_for_several_nodes(settings):
    """Unset, each node keeps its own secret: fine on SQLite (one server), a problem on
    PostgreSQL (app nodes would refuse each other's logins)."""
    pg = Settings.from_env({"BALLOT_DATABASE_URL": "postgresql+psycopg://u@db.example/ballots",
                            "BALLOT_INSTANCE_PATH": str(settings.instance_path)})
    assert doctor.check_secret_key(pg, {"BALLOT_SECRET_KEY": "shared"}).ok
    unset = doctor.check_secret_key(pg, {})
    assert not unset.ok and not unset.fatal and "every node" in unset.en and "所有节点" in unset.zh
    sqlite = Settings.from_env({"BALLOT_DATABASE_URL": "sqlite:////tmp/x.sqlite3",
                                "BALLOT_INSTANCE_PATH": str(settings.instance_path)})
    assert doctor.check_secret_key(sqlite, {}).ok
    assert "secret_key" in [c.name for c in doctor.run_checks(settings)]
    assert "secret_key" not in [c.name for c in doctor.run_checks(settings, at_start=True)]
