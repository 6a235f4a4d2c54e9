"""The setup commands of `ballot-service` (init-db, body, session, roster, checkin, state),
the demo loader, and --help for every command, run through click's CliRunner against
the settings_env fixture's database (SQLite, or PostgreSQL in CI)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers_live import free_port
from sqlalchemy import select

from ballot_service import create_app
from ballot_service.cli import main
from ballot_service.cli.demo_data import DEMO_OPERATORS
from ballot_service.crypto.keys import fingerprint, load_public_key
from ballot_service.domain.operators import check_login
from ballot_service.errors import Unauthorized
from ballot_service.models import AuditEvent, Body, Item

SAMPLE = Path(__file__).resolve().parent.parent / "sample"


@pytest.fixture
def cli(settings_env):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=settings_env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"{args} exited {result.exit_code}: {result.output}"
        return result

    return invoke


def _state(cli) -> list[dict]:
    return json.loads(cli("state", "--json").output)


def _setup_body(cli, tmp_path) -> None:
    cli("init-db")
    assert "body 1:" in cli("body", "create", "示范市第十七届人民代表大会", "--kind", "congress").output
    assert "session 1:" in cli("session", "create", "1", "第四次会议").output


def _write_csv(path: Path, rows: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    return path


def test_init_db_is_repeatable(cli, settings_env):
    first = cli("init-db")
    assert "database ready" in first.output
    cli("init-db")  # upgrading an up-to-date database is a no-op
    assert _state(cli) == []


def test_init_db_creates_the_sqlite_folder(settings_env, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'instance' / 'ballot.sqlite3'}"
    res = CliRunner().invoke(main, ["init-db"], env={**settings_env, "BALLOT_DATABASE_URL": url})
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fresh" / "instance" / "ballot.sqlite3").exists()


def test_serve_and_demo_create_the_sqlite_folder(settings_env, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'ballot.sqlite3'}"
    res = CliRunner().invoke(main, ["demo", "--load-only"],
                             env={**settings_env, "BALLOT_DATABASE_URL": url})
    assert res.exit_code == 0, res.output
    assert "sample data loaded" in res.output


def test_body_session_roster_checkin_state(cli, tmp_path):
    _setup_body(cli, tmp_path)
    roster = _write_csv(tmp_path / "roster.csv", [
        "代表证号,姓名,代表团,座位号",
        "001,王建国,城东区代表团,1排01座",
        "002,李秀英,城东区代表团,1排02座",
        "003,张志强,城西区代表团,1排03座",
        "004,刘丽华,城西区代表团,1排04座",
        "005,陈海燕,高新区代表团,1排05座",
    ])
    out = json.loads(cli("roster", "import", "1", str(roster)).output)
    assert out == {"added": 5, "updated": 0, "left_office": 0, "in_office": 5}

    att = json.loads(cli("checkin", "1", "001", "002").output)
    assert (att["members"], att["present"], att["leave"], att["absent"]) == (5, 2, 0, 3)
    assert att["quorum_met"] is False  # a congress needs two thirds present (3P >= 2N)
    att = json.loads(cli("checkin", "1", "003").output)
    assert att["present"] == 3 and att["quorum_met"] is False
    att = json.loads(cli("checkin", "1", "005").output)
    assert att["present"] == 4 and att["quorum_met"] is True
    att = json.loads(cli("checkin", "--leave", "1", "004").output)
    assert (att["present"], att["leave"], att["absent"]) == (4, 1, 0)

    state = _state(cli)
    assert [b["name"] for b in state] == ["示范市第十七届人民代表大会"]
    session = state[0]["sessions"][0]
    assert session["name"] == "第四次会议"
    assert session["attendance"]["present"] == 4

    text = cli("state").output
    assert "应到5 实到4 请假1 缺席0 符合法定人数" in text



def test_session_close(cli, tmp_path):
    """闭会 from the command line: needs the body's key (it signs a checkpoint), refused a second
    time, and check-in is refused afterwards."""
    _setup_body(cli, tmp_path)
    roster = _write_csv(tmp_path / "roster.csv", ["代表证号,姓名", "001,王建国", "002,李秀英"])
    cli("roster", "import", "1", str(roster))
    cli("checkin", "1", "001")
    res = cli("session", "close", "1", ok=False)
    assert res.exit_code == 2 and "signing key body-1 not found" in res.output
    cli("keys", "create", "1")
    res = cli("session", "close", "1")
    assert "session 1 第四次会议 closed" in res.output and "checkpoint signed at event" in res.output
    res = cli("session", "close", "1", ok=False)
    assert res.exit_code == 2 and "already closed" in res.output and "已经闭会" in res.output
    res = cli("checkin", "1", "002", ok=False)
    assert res.exit_code == 2 and "check-in or leave is no longer possible" in res.output
    assert _state(cli)[0]["sessions"][0]["status"] == "closed"
    assert _state(cli)[0]["sessions"][0]["attendance"]["present"] == 1
    assert "session 1 第四次会议 [已闭会 closed]:" in cli("state").output

def test_roster_reimport_updates_and_retires(cli, tmp_path):
    _setup_body(cli, tmp_path)
    cli("roster", "import", "1", str(_write_csv(tmp_path / "a.csv", [
        "代表证号,姓名", "001,王建国", "002,李秀英", "003,张志强"])))
    out = json.loads(cli("roster", "import", "1", str(_write_csv(tmp_path / "b.csv", [
        "代表证号,姓名", "001,王建国", "002,李秀英", "004,赵敏"]))).output)
    assert out == {"added": 1, "updated": 2, "left_office": 1, "in_office": 3}
    res = cli("checkin", "1", "003", ok=False)
    assert res.exit_code == 2 and "no longer holds office" in res.output


def test_roster_import_gbk_csv_from_excel(cli, tmp_path):
    _setup_body(cli, tmp_path)
    out = json.loads(cli("roster", "import", "1", str(SAMPLE / "roster-gbk.csv")).output)
    assert out["added"] == 60 and out["in_office"] == 60
    # The same names as the UTF-8 file: the GBK bytes were decoded, not mangled.
    again = json.loads(cli("roster", "import", "1", str(SAMPLE / "roster.csv")).output)
    assert again == {"added": 0, "updated": 60, "left_office": 0, "in_office": 60}
    first = (SAMPLE / "roster.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    att = json.loads(cli("checkin", "1", first[0]).output)
    assert att["present"] == 1


def test_roster_import_small_gbk_file(cli, tmp_path):
    _setup_body(cli, tmp_path)
    path = _write_csv(tmp_path / "名册.csv", [
        "编号,姓名,小组,座位号", "101,欧阳晓东,第一组,2排01座", "102,司马婷,第二组,2排02座"],
        encoding="gbk")
    out = json.loads(cli("roster", "import", "1", str(path)).output)
    assert out["added"] == 2
    assert "应到2" in cli("state").output


def test_bad_roster_imports_nothing(cli, tmp_path):
    _setup_body(cli, tmp_path)
    bad = _write_csv(tmp_path / "bad.csv", [
        "代表证号,姓名,代表团,座位号",
        "001,王建国,城东区代表团,1排01座",
        "002,李秀英,城东区代表团,1排02座",
        "001,张志强,城西区代表团,1排03座",  # duplicate 代表证号
    ])
    res = cli("roster", "import", "1", str(bad), ok=False)
    assert res.exit_code == 2
    assert "duplicate" in res.output and "row 4" in res.output
    assert _state(cli)[0]["sessions"][0]["attendance"]["members"] == 0

    no_name = _write_csv(tmp_path / "no-name.csv", ["代表证号,代表团", "001,城东区代表团"])
    res = cli("roster", "import", "1", str(no_name), ok=False)
    assert res.exit_code == 2 and "姓名" in res.output

    binary = tmp_path / "old.xls"
    binary.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    res = cli("roster", "import", "1", str(binary), ok=False)
    assert res.exit_code == 2 and ".xlsx" in res.output

    missing = cli("roster", "import", "1", str(tmp_path / "nope.csv"), ok=False)
    assert missing.exit_code == 2
    assert _state(cli)[0]["sessions"][0]["attendance"]["members"] == 0


def test_errors_name_what_is_wrong(cli, tmp_path):
    cli("init-db")
    res = cli("session", "create", "99", "第一次会议", ok=False)
    assert res.exit_code == 2 and "no body with id 99" in res.output
    res = cli("body", "create", "某市", "--kind", "senate", ok=False)
    assert res.exit_code == 2  # click refuses the choice
    _setup_body(cli, tmp_path)
    res = cli("checkin", "1", "999", ok=False)
    assert res.exit_code == 2 and "999" in res.output


def test_demo_loads_sample_data_once(cli):
    out = cli("demo", "--load-only").output
    assert "sample data loaded" in out
    state = _state(cli)
    congress, committee = state
    assert congress["name"] == "示范市第十七届人民代表大会"
    session = congress["sessions"][0]
    assert session["name"] == "第四次会议"
    a = session["attendance"]
    assert (a["members"], a["present"]) == (60, 55) and a["quorum_met"]
    kinds = {i["kind"]: i for i in session["items"]}
    assert kinds["livelihood_projects"]["title"] == "2027年度民生实事项目票决"
    assert "resolution" in kinds
    assert committee["kind"] == "standing_committee"
    c = committee["sessions"][0]
    assert c["attendance"]["members"] == 35
    assert [i["kind"] for i in c["items"]] == ["appointment"]

    assert "not loaded" in cli("demo", "--load-only").output
    assert _state(cli) == state


def test_demo_items_have_their_candidates(cli, settings_env):
    cli("demo", "--load-only")
    app = create_app(settings_env)
    try:
        with app.extensions["ballot_sessionmaker"]() as db:
            items = {i.kind: i for i in db.query(Item)}
            projects = items["livelihood_projects"]
            assert projects.places == 10 and len(projects.candidates) == 12
            assert projects.candidates[0].title == "城区老旧小区改造"
            assert len(items["appointment"].candidates) == 3
            assert [c.key for c in items["resolution"].candidates] == ["motion"]
    finally:
        app.extensions["ballot_engine"].dispose()


def test_demo_creates_its_logins_and_signing_keys(cli, settings_env):
    out = cli("demo", "--load-only").output
    assert "mishu/mishu-demo-2026 (secretariat)" in out
    app = create_app(settings_env)
    try:
        with app.extensions["ballot_sessionmaker"]() as db:
            for username, password, role in DEMO_OPERATORS:
                assert check_login(db, username, password).role == role
                with pytest.raises(Unauthorized):
                    check_login(db, username, password + "x")
            for body in db.scalars(select(Body)):
                pub = Path(settings_env["BALLOT_KEYS_DIR"]) / f"{body.key_name}.pub.pem"
                created = [json.loads(e.data) for e in db.scalars(
                    select(AuditEvent).where(AuditEvent.kind == "key_created"))]
                created = [d for d in created if d["body_id"] == body.id]
                assert len(created) == 1
                assert created[0]["fingerprint"] == fingerprint(load_public_key(pub))
                assert created[0]["fingerprint"] in out
    finally:
        app.extensions["ballot_engine"].dispose()


def test_demo_without_a_passphrase_says_how_to_make_keys(cli, settings_env):
    env = {**settings_env, "BALLOT_KEY_PASSPHRASE": ""}
    res = CliRunner().invoke(main, ["demo", "--load-only"], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "no signing key for 示范市第十七届人民代表大会: set BALLOT_KEY_PASSPHRASE" in res.output
    assert not list(Path(settings_env["BALLOT_KEYS_DIR"]).iterdir())


def test_sample_files_are_consistent():
    utf8 = (SAMPLE / "roster.csv").read_bytes().decode("utf-8")
    assert (SAMPLE / "roster-gbk.csv").read_bytes().decode("gbk") == utf8
    rows = utf8.splitlines()
    assert rows[0] == "代表证号,姓名,代表团,座位号" and len(rows) == 61
    assert len({r.split(",")[2] for r in rows[1:]}) == 4
    assert len((SAMPLE / "committee.csv").read_text(encoding="utf-8").splitlines()) == 36


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + (name,))


def test_help_for_every_command():
    runner = CliRunner()
    res = runner.invoke(main, ["--help"])
    assert res.exit_code == 0 and "Usage:" in res.output
    paths = list(_all_commands(main))
    names = {p[0] for p in paths}
    assert {"init-db", "body", "session", "roster", "checkin", "state", "serve", "demo"} <= names
    for path in paths:
        res = runner.invoke(main, [*path, "--help"])
        assert res.exit_code == 0, f"{' '.join(path)} --help: {res.output}"
        assert "Usage:" in res.output


def test_console_script_help():
    exe = str(Path(sys.executable).parent / "ballot-service")  # this interpreter's own
    if not os.access(exe, os.X_OK):
        exe = shutil.which("ballot-service") or exe
    if not os.access(exe, os.X_OK):
        pytest.skip("the ballot-service console script is not installed (pip install -e .)")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "serve" in res.stdout and "roster" in res.stdout


@pytest.mark.slow
def test_serve_runs_under_granian(settings_env, tmp_path):
    port = free_port()
    env = {**os.environ, **settings_env}
    env.pop("BALLOT_SECRET_KEY")  # serve must then keep one in the instance folder
    code = "import sys; from ballot_service.cli import main; sys.exit(main(prog_name='ballot-service'))"
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), "--workers", "1", "--threads", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
                break
            except urllib.error.HTTPError as exc:  # any answer means it is serving
                status = exc.code
                break
            except OSError:
                time.sleep(0.2)
        log.seek(0)
        output = log.read()
        assert status is not None, f"server did not answer:\n{output}"
        assert "granian" in output.lower()
        assert (Path(settings_env["BALLOT_INSTANCE_PATH"]) / "secret_key").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    # No access log: the request above must not appear in what the server wrote.
    output = (tmp_path / "serve.log").read_text()
    assert "GET /" not in output
