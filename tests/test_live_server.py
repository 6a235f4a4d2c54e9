"""Against a real `ballot-service serve` (granian, several workers): concurrent submissions
of one blind-signed ballot (retries with one retry id, resends with others), and kill -9 of
the whole server while casts are in flight. Runs on SQLite, and
on PostgreSQL when BALLOT_TEST_DATABASE_URL is set (the db_url fixture)."""
from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest
from helpers_live import Api, LiveServer, blind_ballot, create_operator_in_db, server_env, setup_sitting
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from terminal_support import opened_casts

from ballot_service.config import Settings
from ballot_service.crypto import tablet
from ballot_service.domain import audit
from ballot_service.formats.ballot_set import receipt_code
from ballot_service.models import AuditEvent

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path, db_url):
    create_operator_in_db(db_url)
    env = server_env(tmp_path, db_url)
    servers = []

    def start(**kw):
        srv = LiveServer.start(env, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def stored_casts(srv: LiveServer) -> dict:
    """The server's accepted casts by serial, an open secret vote's opened with the body's key."""
    engine = create_engine(srv.env["BALLOT_DATABASE_URL"])
    try:
        with Session(engine) as db:
            return {c.serial: c for c in opened_casts(db, Settings.from_env({**os.environ, **srv.env}))}
    finally:
        engine.dispose()


CANDS = [{"key": f"c{j}", "title": f"项目{j}"} for j in range(6)]


def test_concurrent_submissions_of_one_ballot(live, db_url):
    srv = live(workers=2)
    api = Api.httpx(srv.base_url)
    s = setup_sitting(api, members=3, kind="livelihood_projects", candidates=CANDS, places=6)
    cred = s.creds[s.members[0]]
    ballot = blind_ballot(api, cred)
    same = {c["key"]: "for" for c in CANDS}
    retry = tablet.new_retry_id()
    # 25 retries of one submission (one retry id, as a tablet resends after a lost answer) and
    # 25 others, each with its own retry id and marks different from every other one.
    subs = [(retry, same)] * 25 + [(tablet.new_retry_id(),
                                    {f"c{j}": ("against" if (i >> j) & 1 else "for") for j in range(6)})
                                   for i in range(1, 26)]
    results: list = [None] * len(subs)
    barrier = threading.Barrier(len(subs))

    def send(i):
        with httpx.Client(base_url=srv.base_url, timeout=60) as c:
            barrier.wait()
            r = c.post("/api/terminal/cast", json={**ballot, "marks": subs[i][1], "retry_id": subs[i][0]})
            results[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(subs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(r is not None for r in results), srv.log()
    statuses = [st for st, _ in results]
    assert statuses.count(201) == 1, statuses
    winner = statuses.index(201)
    (win_retry, win_marks), win_receipt = subs[winner], results[winner][1]["receipt"]
    for i, (status, data) in enumerate(results):
        if i == winner:
            continue
        if subs[i][0] == win_retry:
            assert status == 200 and data["receipt"] == win_receipt and data["repeated"] is True, \
                (data, srv.log())
        else:
            assert status == 409 and data["errors"][0]["reason"] == "reused", (data, srv.log())
    n_same = sum(1 for r, _ in subs if r == win_retry)
    assert statuses.count(200) == n_same - 1 and statuses.count(409) == len(subs) - n_same
    casts = stored_casts(srv)
    assert len(casts) == 1
    (row,) = casts.values()
    assert receipt_code(row.receipt) == win_receipt and row.marks == win_marks
    # The group of retries is the one expected to win most often; either way the
    # refused ones were counted as refusals, not casts.
    _, results_json = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/results")
    assert results_json is not None


def test_kill_9_keeps_every_receipted_cast(live, db_url):
    srv = live(workers=2)
    api = Api.httpx(srv.base_url)
    n = 80
    s = setup_sitting(api, members=n)
    ballots = {no: blind_ballot(api, s.creds[no]) for no in s.members}
    retry_of = {no: tablet.new_retry_id() for no in s.members}
    serial_of = {no: b["serial"] for no, b in ballots.items()}
    receipts: dict[str, str] = {}  # serial -> receipt for every 201/200 answer
    unanswered: list[str] = []
    lock = threading.Lock()
    n_threads = 8
    chunks = [s.members[i::n_threads] for i in range(n_threads)]

    def voter(nos):
        with httpx.Client(base_url=srv.base_url, timeout=30) as c:
            for no in nos:
                try:
                    r = c.post("/api/terminal/cast", json={**ballots[no], "marks": {"motion": "for"},
                                                           "retry_id": retry_of[no]})
                except httpx.HTTPError:
                    with lock:
                        unanswered.append(no)
                    continue
                with lock:
                    if r.status_code in (200, 201):
                        receipts[r.json()["serial"]] = r.json()["receipt"]
                    else:
                        unanswered.append(no)

    threads = [threading.Thread(target=voter, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(receipts) < 20 and time.monotonic() < deadline:
        time.sleep(0.002)
    srv.kill()  # SIGKILL to the master and all workers at once, mid-stream
    print(f"receipts at kill: {len(receipts)} of {n}")
    for t in threads:
        t.join(60)
    assert 20 <= len(receipts), f"only {len(receipts)} receipts before the kill"
    assert len(receipts) < n or not unanswered  # the kill landed while casts were in flight

    srv2 = live(workers=2)
    stored = stored_casts(srv2)
    missing = {serial for serial in receipts if serial not in stored}
    assert not missing, f"{len(missing)} receipted casts lost by kill -9"
    assert all(receipt_code(stored[serial].receipt) == receipt for serial, receipt in receipts.items())

    # Every other ballot can still be cast once: a retry of a submission whose answer was lost
    # gets the same receipt (200), the rest are accepted (201).
    api2 = Api.httpx(srv2.base_url)
    answered = set(receipts)
    for no in s.members:
        if serial_of[no] in answered:
            continue
        status, data = api2.call("POST", "/api/terminal/cast", {**ballots[no], "marks": {"motion": "for"},
                                                                "retry_id": retry_of[no]})
        assert status == (200 if serial_of[no] in stored else 201), (status, data)
    assert len(stored_casts(srv)) == n


def test_concurrent_casts_from_two_workers_keep_the_audit_chain_whole(live, db_url):
    """Many terminals at once across two worker processes: every 201 is stored exactly once,
    and the hash chain has no gap or fork (seq 1..n, each prev_hash the hash before it)."""
    srv = live(workers=2, threads=4)
    api = Api.httpx(srv.base_url)
    n = 60
    s = setup_sitting(api, members=n)
    ballots = {no: blind_ballot(api, s.creds[no]) for no in s.members}
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def voter(nos):
        with httpx.Client(base_url=srv.base_url, timeout=60) as c:
            barrier.wait()
            for no in nos:
                r = c.post("/api/terminal/cast", json={**ballots[no], "marks": {"motion": "for"},
                                                       "retry_id": tablet.new_retry_id()})
                with lock:
                    statuses.append(r.status_code)

    threads = [threading.Thread(target=voter, args=(s.members[i::12],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses.count(201) == n, (statuses, srv.log())
    assert len(stored_casts(srv)) == n
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            evs = conn.execute(select(AuditEvent).where(AuditEvent.chain == s.body_id)
                               .order_by(AuditEvent.seq)).all()
    finally:
        engine.dispose()
    prev = audit.GENESIS
    for i, e in enumerate(evs, 1):  # the body's chain: the casts' batch counts are on it
        assert e.seq == i and e.prev_hash == prev, e
        at = e.at.isoformat() if e.at else None  # aware UTC, as audit.append hashes it
        assert audit.event_hash(prev, e.seq, at, e.kind, e.data) == e.hash, e
        prev = e.hash
    assert sum(json.loads(e.data)["count"] for e in evs if e.kind == "casts_accepted") == n
