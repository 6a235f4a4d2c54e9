"""Shared test helpers: drive a session over HTTP, in-process (Flask test client) or against a
real `ballot-service serve` process (granian) started in its own process group.

    srv = LiveServer.start(env)               # env from server_env(tmp_path, db_url)
    api = Api.httpx(srv.base_url)             # or Api.flask(app.test_client())
    s = setup_sitting(api, OPERATOR, members=5)
    ...
    srv.kill()                                # SIGKILL to master and workers (killpg)

The operator is created directly in the database (there is no bootstrap API):
`create_operator_in_db(db_url)`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ballot_service.crypto import tablet
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain.operators import create_operator
from ballot_service.migrate import upgrade

OPERATOR = ("operator", "operator-password-1")
DISPLAY_OPERATOR = ("screen", "screen-password-1")
AUDITOR = ("auditor", "auditor-password-1")
COUNTER_NAME, SCRUTINEER_NAME = "计票人甲", "监票人乙"  # the tellers setup_sitting registers


# --- calling the API ---------------------------------------------------------------------

class Api:
    """One calling convention over httpx and the Flask test client: call() -> (status, json)."""

    def __init__(self, send):
        self._send = send

    @classmethod
    def httpx(cls, base_url: str, timeout: float = 30.0) -> "Api":
        client = httpx.Client(base_url=base_url, timeout=timeout)

        def send(method, url, body, headers):
            r = client.request(method, url, json=body, headers=headers)
            try:
                data = r.json()
            except ValueError:
                data = None
            return r.status_code, data

        api = cls(send)
        api.client = client
        return api

    @classmethod
    def flask(cls, test_client) -> "Api":
        def send(method, url, body, headers):
            r = test_client.open(url, method=method, json=body, headers=headers)
            return r.status_code, r.get_json(silent=True)

        api = cls(send)
        api.client = test_client
        return api

    def call(self, method: str, url: str, body=None, *, credential: str | None = None, expect=(200, 201)):
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        status, data = self._send(method, url, body, headers)
        if expect is not None and status not in expect:
            raise AssertionError(f"{method} {url} answered {status}: {data}")
        return status, data


@dataclass
class SessionSetup:
    body_id: int
    sitting_id: int
    item_id: int
    creds: dict[str, str]  # member_no -> seat terminal credential
    terminal_ids: dict[str, int]  # member_no -> terminal id
    station: str  # counting-station credential
    station_id: int
    counter: str = ""  # the 计票人's station credential (holder COUNTER_NAME): enters tally sheets
    scrutineer: str = ""  # the 监票人's station credential (holder SCRUTINEER_NAME): confirms them
    members: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def member_nos(n: int) -> list[str]:
    return [f"M{i:04d}" for i in range(1, n + 1)]


def setup_sitting(api: Api, operator=OPERATOR, *, members: int = 5, present: int | None = None,
                  kind: str = "resolution", secret: bool = True, channel: str = "terminal",
                  candidates: list[dict] | None = None, places: int | None = None,
                  open_vote: bool = True, body_kind: str = "congress", key: str = "item1") -> SessionSetup:
    """Log in, create a body with its key and roster, a session, one seat terminal per member and
    a counting station; check `present` members in at their own terminals; create one item and
    (by default) open it."""
    api.call("POST", "/api/admin/login", {"username": operator[0], "password": operator[1]})
    _, body = api.call("POST", "/api/admin/bodies", {"name": "测试市人民代表大会", "kind": body_kind})
    body_id = body["id"]
    api.call("POST", f"/api/admin/bodies/{body_id}/key")
    nos = member_nos(members)
    api.call("POST", f"/api/admin/bodies/{body_id}/roster",
             {"members": [{"id": no, "name": f"代表{no}", "seat": no} for no in nos]})
    _, sitting = api.call("POST", "/api/admin/sessions", {"body_id": body_id, "name": "第一次会议"})
    sid = sitting["id"]
    _, terms = api.call("POST", f"/api/admin/sessions/{sid}/terminals", {"terminals": [
        {"name": f"席位{no}", "kind": "seat", "seat": no} for no in nos]
        + [{"name": "计票站", "kind": "counting_station"},
           {"name": "计票站 计票人", "kind": "counting_station", "holder": COUNTER_NAME, "teller_role": "counter"},
           {"name": "计票站 监票人", "kind": "counting_station", "holder": SCRUTINEER_NAME,
            "teller_role": "scrutineer"}]})
    creds = {t["seat"]: t["credential"] for t in terms["terminals"] if t["kind"] == "seat"}
    tids = {t["seat"]: t["id"] for t in terms["terminals"] if t["kind"] == "seat"}
    station = next(t for t in terms["terminals"] if t["kind"] == "counting_station")
    tellers = {t["teller_role"]: t["credential"] for t in terms["terminals"] if t.get("teller_role")}
    present_nos = nos[: members if present is None else present]
    for no in present_nos:
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=creds[no])
    item_id = create_item(api, sid, kind=kind, secret=secret, channel=channel, candidates=candidates,
                          places=places, key=key)
    if open_vote:
        api.call("POST", f"/api/admin/items/{item_id}/open")
    return SessionSetup(body_id, sid, item_id, creds, tids, station["credential"], station["id"],
                        tellers.get("counter", ""), tellers.get("scrutineer", ""), nos, present_nos)


def publish(api: Api, item_id: int) -> dict:
    """Sign the item's record and publish it (公布): only then does the presiding screen show
    the result."""
    _, rec = api.call("POST", f"/api/admin/items/{item_id}/record")
    api.call("POST", f"/api/admin/items/{item_id}/publish")
    return rec


def tablets_poll(api: Api, creds) -> None:
    """The seats of `creds` ask for the state as their tablets do every few seconds, so they
    count as online when a vote opens (tablet_setup.ONLINE_S). A tablet's last seen is not
    written while a vote is open: a test whose members vote by API across several votes, on a
    busy machine, would otherwise find their tablets gone offline by the next opening."""
    for cred in creds:
        api.call("GET", "/api/terminal/state", credential=cred)


def blind_ballot(api: Api, cred: str) -> dict:
    """The seat's blind issuance, as the tablet does it: the announced round key (checked
    against the state's fingerprint), a random serial blinded, signed, unblinded."""
    return tablet.take_ballot(api.call, cred)


def vote(api: Api, cred: str, marks: dict) -> None:
    """Take the seat's ballot and cast it with `marks` (both must succeed). The credential
    goes with the cast too: a secret vote ignores it, a named one needs it."""
    ballot = blind_ballot(api, cred)
    api.call("POST", "/api/terminal/cast", {**ballot, "marks": marks, "retry_id": tablet.new_retry_id()},
             credential=cred)


def login_client(app, operator):
    """A fresh Flask test client logged in (POST /api/admin/login) as `operator`."""
    c = app.test_client()
    r = c.post("/api/admin/login", json={"username": operator[0], "password": operator[1]})
    assert r.status_code == 200, r.get_json()
    return c


def create_item(api: Api, sitting_id: int, *, kind: str = "resolution", secret: bool = True,
                channel: str = "terminal", candidates=None, places=None, key: str = "item1") -> int:
    spec = {"key": key, "kind": kind, "title": f"表决事项 {key}", "secret": secret, "channel": channel}
    if candidates is not None:
        spec["candidates"] = candidates
    if places is not None:
        spec["places"] = places
    _, created = api.call("POST", f"/api/admin/sessions/{sitting_id}/items", spec)
    return created["id"]


# --- database ----------------------------------------------------------------------------

def create_operator_in_db(db_url: str, operator=OPERATOR, role: str = "secretariat",
                          body_id: int | None = None) -> None:
    """Upgrade the schema and create an operator directly in the database, with `role` in body
    `body_id` (None: in every body)."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        db = make_sessionmaker(engine)()
        create_operator(db, operator[0], operator[1], role, body_id)
        db.commit()
        db.close()
    finally:
        engine.dispose()


# --- a real server process ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp_path: Path, db_url: str, passphrase: str = "live-test-passphrase") -> dict:
    """Environment for a server whose state all lives under tmp_path."""
    for d in ("keys", "ballots", "instance"):
        (tmp_path / d).mkdir(exist_ok=True)
    return {
        "BALLOT_DATABASE_URL": db_url,
        "BALLOT_KEYS_DIR": str(tmp_path / "keys"),
        "BALLOT_BALLOTS_DIR": str(tmp_path / "ballots"),
        "BALLOT_INSTANCE_PATH": str(tmp_path / "instance"),
        "BALLOT_KEY_PASSPHRASE": passphrase,
        "BALLOT_SECRET_KEY": "live-test-secret-" + tmp_path.name,
    }


def _serve_command() -> list[str]:
    exe = Path(sys.executable).with_name("ballot-service")
    if exe.exists():
        return [str(exe), "serve"]
    return [sys.executable, "-c", "from ballot_service.cli import main; main()", "serve"]


class LiveServer:
    """`ballot-service serve` in its own process group (so kill() reaches master and workers)."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, env: dict, workers: int):
        self.proc, self.port, self.log_path, self.env, self.workers = proc, port, log_path, env, workers
        self.base_url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, env: dict, *, workers: int = 2, threads: int | None = None, port: int | None = None,
              log_path: Path | None = None, timeout: float = 60.0, args: list[str] = ()) -> "LiveServer":
        port = port or free_port()
        log_path = log_path or Path(env["BALLOT_INSTANCE_PATH"]) / f"server-{port}.log"
        cmd = _serve_command() + ["--port", str(port), "--workers", str(workers)]
        if threads:
            cmd += ["--threads", str(threads)]
        cmd += list(args)
        full_env = {**os.environ, **env}
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        srv = cls(proc, port, log_path, env, workers)
        srv.wait_ready(timeout)
        return srv

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Ready when the unauthenticated state endpoint answers (401) from a worker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.base_url + "/api/terminal/state", timeout=2.0)
                if r.status_code in (401, 403):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-5000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9 the master and every worker (the whole process group), then reap."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM to the master); SIGKILL the group if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
