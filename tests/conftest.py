"""Test fixtures. Every test gets a fresh database: SQLite in a temp folder by default, or
PostgreSQL when BALLOT_TEST_DATABASE_URL names a server (set by .ci/run). A test that starts
an app gets it already migrated, copied from one database migrated once per run (running every
migration per test cost a third of a second on SQLite and a second on PostgreSQL under load);
any other test gets it empty (the upgrade and live-server tests migrate it themselves)."""
from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from console_support import post
from helpers_live import AUDITOR, DISPLAY_OPERATOR, OPERATOR, Api, create_operator_in_db, login_client
from sqlalchemy import create_engine, make_url, text

from ballot_service import create_app
from ballot_service.crypto import keys
from ballot_service.domain.operators import create_operator
from ballot_service.migrate import upgrade

PG_URL = os.environ.get("BALLOT_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """The database migrated to head once per run: a SQLite file, or a PostgreSQL template."""
    if not PG_URL:
        path = tmp_path_factory.mktemp("migrated") / "head.sqlite3"
        upgrade(f"sqlite:///{path}")
        yield path
        return
    name = "head_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    with admin.connect() as c:  # a template takes no connections while it is copied
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                  {"n": name})
    yield name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _wants_migrated(request) -> bool:
    return "app" in request.fixturenames


@pytest.fixture
def db_url(request, tmp_path):
    migrated = request.getfixturevalue("migrated_template") if _wants_migrated(request) else None
    if not PG_URL:
        path = tmp_path / "test.sqlite3"
        if migrated is not None:
            with sqlite3.connect(migrated) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
        yield f"sqlite:///{path}"
        return
    # A throwaway database per test on the CI's local server.
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        template = f' TEMPLATE "{migrated}" STRATEGY FILE_COPY' if migrated else ""
        c.execute(text(f'CREATE DATABASE "{name}"{template}'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings_env(db_url, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    ballots = tmp_path / "ballots"
    ballots.mkdir()
    return {
        "BALLOT_DATABASE_URL": db_url,
        "BALLOT_INSTANCE_PATH": str(tmp_path / "instance"),
        "BALLOT_KEYS_DIR": str(keys),
        "BALLOT_BALLOTS_DIR": str(ballots),
        "BALLOT_KEY_PASSPHRASE": "test-passphrase",
        "BALLOT_SECRET_KEY": "test-secret",
    }


@pytest.fixture
def app(settings_env):
    upgrade(settings_env["BALLOT_DATABASE_URL"])  # at head already: the check every start makes
    app = create_app(settings_env)
    app.config["TESTING"] = True
    yield app
    app.extensions["ballot_engine"].dispose()


@pytest.fixture
def db(app):
    session = app.extensions["ballot_sessionmaker"]()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(app, client):
    """The admin and terminal API through Flask's test client, with a secretariat operator
    (helpers_live.OPERATOR) created; log in with setup_sitting() or api.call(...)."""
    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, OPERATOR[0], OPERATOR[1], "secretariat")
    db.commit()
    db.close()
    return Api.flask(client)


@pytest.fixture
def staff(app):
    """The display operator and the auditor (helpers_live.DISPLAY_OPERATOR, AUDITOR), beside the
    secretariat operator the `api` fixture creates."""
    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, DISPLAY_OPERATOR[0], DISPLAY_OPERATOR[1], "display")
    create_operator(db, AUDITOR[0], AUDITOR[1], "auditor")
    db.commit()
    db.close()


@pytest.fixture
def screen(app, api, staff):
    """A test client logged in as the display operator (the presiding screen's login)."""
    return login_client(app, DISPLAY_OPERATOR)


@pytest.fixture
def console(app, settings_env):
    """A test client logged in to the secretariat console (HTML forms) as helpers_live.OPERATOR."""
    create_operator_in_db(settings_env["BALLOT_DATABASE_URL"])
    client = app.test_client()
    r = post(client, "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code == 302 and r.headers["Location"] == "/console"
    return client


@pytest.fixture
def body_key(settings_env, item):
    """A fresh signing key of the body of the test module's `item` fixture (an Item row)."""
    keys.clear_cache()
    return keys.create_key(Path(settings_env["BALLOT_KEYS_DIR"]), keys.body_key_name(item.sitting.body_id), "pw")


# Where the tests that touch no database run: "run" or "skip". By default on SQLite and not on
# PostgreSQL; CI runs its two suites side by side and puts them in the shorter one (.ci/run).
DATABASELESS = os.environ.get("BALLOT_TEST_DATABASELESS") or ("skip" if PG_URL else "run")
_reads_database_variable: dict[str, bool] = {}


def _touches_the_test_database(item) -> bool:
    """True if a test uses the test database: it asks for `db_url` (itself or through `app`,
    `settings_env`, ...), or its module reads BALLOT_TEST_DATABASE_URL and decides for itself."""
    if "db_url" in getattr(item, "fixturenames", ()):
        return True
    path = str(item.path)
    if path not in _reads_database_variable:
        _reads_database_variable[path] = "BALLOT_TEST_DATABASE_URL" in Path(path).read_text(encoding="utf-8")
    return _reads_database_variable[path]


def pytest_collection_modifyitems(config, items):
    """Skip the tests that touch no database (the rules, the mark reader, the packaging and
    install tests) where DATABASELESS says so: they run the same on either database. Not the
    Chromium ones: they run where Chromium tests run (CI: SQLite)."""
    if DATABASELESS == "run":
        return
    if DATABASELESS != "skip":
        raise pytest.UsageError(f"BALLOT_TEST_DATABASELESS={DATABASELESS!r}: use run or skip")
    elsewhere = pytest.mark.skip(reason="uses no database: run in the other suite (BALLOT_TEST_DATABASELESS)")
    for item in items:
        if not _touches_the_test_database(item) and item.get_closest_marker("browser") is None:
            item.add_marker(elsewhere)
