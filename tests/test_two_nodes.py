"""Two app nodes on one PostgreSQL (issue 21 item 3): two real `ballot-service serve`
processes on different ports, each with its own instance folder, sharing only the database,
the keys folder and BALLOT_SECRET_KEY (README, "Production layout"). Tablets are spread over
both; one node is killed (SIGKILL) in the middle of the vote; its tablets carry on through the
other, resending an unanswered cast with the same retry id; tablets whose blind signature
node A counted but whose answer they never got send the same blinded message to node B and
vote with the signature it answers. Then: every receipted cast is stored once with its
receipt, the count matches (no ballot issued twice), and the audit bundle verifies.

PostgreSQL only (several nodes on one SQLite file is not a supported layout): skipped unless
BALLOT_TEST_DATABASE_URL names a PostgreSQL server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers_live import Api, LiveServer, create_operator_in_db, server_env, setup_sitting
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from terminal_support import opened_casts

from ballot_service.config import Settings
from ballot_service.crypto import tablet
from ballot_service.formats.ballot_set import receipt_code

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                       reason="two app nodes need PostgreSQL (BALLOT_TEST_DATABASE_URL)"),
]

MEMBERS = 90
LATE = 10  # tablets that take their ballot only after the kill, through the node left


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ballot-service")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from ballot_service.cli import main; main()"]
    return subprocess.run(cmd + list(args), env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def _node_env(shared: dict, root: Path, name: str) -> dict:
    """A node's own instance and ballots folders; database, keys and secret shared."""
    own = {d: root / name / d for d in ("instance", "ballots")}
    for d in own.values():
        d.mkdir(parents=True)
    return {**shared, "BALLOT_INSTANCE_PATH": str(own["instance"]), "BALLOT_BALLOTS_DIR": str(own["ballots"])}


def _stored(env: dict) -> list[tuple[str, str]]:
    """(serial, receipt) of every accepted cast, the open secret vote's sealed ones opened with
    the body's key from the shared keys folder."""
    engine = create_engine(env["BALLOT_DATABASE_URL"])
    try:
        with Session(engine) as db:
            return [(c.serial, c.receipt) for c in opened_casts(db, Settings.from_env({**os.environ, **env}))]
    finally:
        engine.dispose()


def test_two_nodes_one_killed_mid_vote(tmp_path, db_url):
    create_operator_in_db(db_url)
    (tmp_path / "shared").mkdir()
    shared = server_env(tmp_path / "shared", db_url)  # keys folder, passphrase, secret key
    nodes = [LiveServer.start(_node_env(shared, tmp_path, name), workers=2, threads=8) for name in ("a", "b")]
    try:
        _run_sitting(tmp_path, db_url, shared, nodes)
    finally:
        for srv in nodes:
            srv.stop()


def _blind_sign_unanswered(node, cred: str):
    """A blind-signature request the node counts and signs, whose answer the tablet never reads;
    what the tablet kept to send it again: (round key, pending blinding)."""
    call = Api.httpx(node.base_url).call
    _, state = call("GET", "/api/terminal/state", credential=cred)
    vote = state["vote"]
    pub = tablet.round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"])
    pending = tablet.start(pub, vote["round_ref"])
    call("POST", "/api/terminal/blind-sign", {"round_ref": pending.round_ref, "blinded_msg": pending.blinded_text},
         credential=cred)
    return pub, pending


def _run_sitting(tmp_path, db_url, shared, nodes):
    a, b = nodes
    api_a = Api.httpx(a.base_url)
    s = setup_sitting(api_a, members=MEMBERS, open_vote=False)
    # The operator's login (a session cookie signed with the shared secret) works on node B.
    api_b = Api.httpx(b.base_url)
    api_b.client.cookies = api_a.client.cookies
    api_b.call("POST", f"/api/admin/items/{s.item_id}/open")

    home = {no: (a if i % 2 == 0 else b) for i, no in enumerate(s.members)}  # tablets spread over both
    early, late = s.members[:-LATE], s.members[-LATE:]
    ballots = {}
    for no in early:  # ballot fetch (blind issuance) on each tablet's own node, across both
        ballots[no] = tablet.take_ballot(Api.httpx(home[no].base_url).call, s.creds[no])
    # Late tablets homed on A whose blind signature A counts and signs, but whose answer is lost.
    unanswered = {no: _blind_sign_unanswered(a, s.creds[no]) for no in late if home[no] is a}
    assert unanswered
    retry_of = {no: tablet.new_retry_id() for no in s.members}
    receipt_secret = {no: tablet.new_receipt() for no in s.members}
    receipts: dict[str, str] = {}  # serial -> receipt code answered (201 or 200)
    failed_over: list[str] = []
    problems: list = []
    lock = threading.Lock()

    def cast(no: str) -> None:
        body = {**ballots[no], "marks": {"motion": "for" if int(no[1:]) % 3 else "against"},
                "retry_id": retry_of[no], "receipt_hash": receipt_secret[no][1]}
        for srv in (home[no], b):  # the tablet knows both addresses; B is the one left standing
            try:
                r = httpx.post(srv.base_url + "/api/terminal/cast", json=body, timeout=30)
            except httpx.HTTPError:
                with lock:
                    failed_over.append(no)
                continue
            with lock:
                if r.status_code in (200, 201):
                    receipts[r.json()["serial"]] = r.json()["receipt"]
                else:
                    problems.append((no, srv.port, r.status_code, r.text))
            return
        with lock:
            problems.append((no, "no node answered"))

    def tablets(nos):
        for no in nos:
            cast(no)
            time.sleep(0.01)  # a voter's think time, so the kill lands mid-vote

    threads = [threading.Thread(target=tablets, args=(early[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(receipts) < len(early) // 4 and time.monotonic() < deadline:
        time.sleep(0.002)
    a.kill()  # SIGKILL: master and workers of node A, casts in flight
    at_kill = len(receipts)
    for t in threads:
        t.join(120)
    assert not problems, (problems, b.log())
    assert at_kill < len(early), "the kill came after the last cast: nothing was in flight"

    # Tablets homed on A that had not fetched their ballot carry on through B from the start;
    # those whose answer A never gave send B the very same blinded message again.
    for no in late:
        if no in unanswered:
            pub, pending = unanswered[no]
            status, signed = api_b.call("POST", "/api/terminal/blind-sign", {
                "round_ref": pending.round_ref, "blinded_msg": pending.blinded_text}, credential=s.creds[no])
            ballots[no] = tablet.finish(pub, pending, signed["blind_sig"])
        else:
            ballots[no] = tablet.take_ballot(api_b.call, s.creds[no])
        home[no] = b
        cast(no)
    assert not problems, (problems, b.log())
    assert len(receipts) == MEMBERS, f"{len(receipts)} receipts of {MEMBERS}"

    # Nothing receipted was lost, nothing counted twice, and each receipt is the one stored.
    casts = _stored(shared)
    stored = dict(casts)
    assert set(stored) == set(receipts) and len(casts) == MEMBERS == len(stored)
    assert all(receipt_code(stored[serial]) == code for serial, code in receipts.items())

    api_b.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api_b.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api_b.call("POST", f"/api/admin/items/{s.item_id}/record")
    text = json.dumps(result)
    assert result["returned"] == MEMBERS and result["issued"] == MEMBERS, text
    against = sum(1 for no in s.members if int(no[1:]) % 3 == 0)
    assert str(MEMBERS - against) in text and str(against) in text, text

    bundle = tmp_path / "bundle"
    env = {**shared, "BALLOT_INSTANCE_PATH": str(tmp_path / "cli-instance")}
    exported = _cli(env, "audit", "export", "--body", str(s.body_id), str(bundle))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    verified = _cli(env, "audit", "verify", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    counts = json.loads((bundle / "counts.json").read_text())
    assert str(MEMBERS) in json.dumps(counts), counts
    print(f"receipts before the kill: {at_kill}; casts failed over to node B: {len(failed_over)}")
