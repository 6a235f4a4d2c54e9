"""Group commit of cast intake (intake._GroupCommit / _run_batch), on SQLite and PostgreSQL: one
batch decides each cast on its own (bad marks, a retry, a reuse, a forgery), an unexpected error
fails only its own cast, a failed commit gives no receipt, a process killed mid-batch loses no
acknowledged cast (the crash runs in a subprocess), and (PostgreSQL) a serial another process
stored while the batch was deciding is decided again, alone."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers_live import setup_sitting
from sqlalchemy import create_engine, select, text
from terminal_support import all_casts, cast, events, forge, get_ballot, n_casts, query, refusals

from ballot_service.crypto import tablet
from ballot_service.db import pg_batches, postgres
from ballot_service.domain import audit, intake, terminal_casts
from ballot_service.errors import InvalidInput
from ballot_service.formats import ballots
from ballot_service.formats.ballot_set import receipt_code
from ballot_service.models import AuditEvent


def _jobs(app, s, subs):
    """intake jobs, prepared as a request would (step 1, terminal_casts.prepare), for
    (ballot, marks) or (ballot, marks, retry id) tuples (a new retry id unless given)."""
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return [terminal_casts.prepare(db, app.config["SETTINGS"], {**sub[0], "marks": sub[1],
                                            "retry_id": sub[2] if len(sub) > 2 else tablet.new_retry_id()})
                for sub in subs]
    finally:
        db.close()


def _outcome(job):
    try:
        return job.outcome()
    except Exception as exc:  # noqa: BLE001 - the test looks at which error
        return exc


def _chain_is_whole(app) -> bool:
    """Every chain (one per body, and the server's) links from genesis without a gap."""
    prev, chain = audit.GENESIS, None
    for (e,) in query(app, select(AuditEvent).order_by(AuditEvent.chain, AuditEvent.seq)):
        if e.chain != chain:
            prev, chain = audit.GENESIS, e.chain
        at = e.at.isoformat() if e.at else None
        if e.prev_hash != prev or e.hash != audit.event_hash(prev, e.seq, at, e.kind, e.data):
            return False
        prev = e.hash
    return True


def test_group_commit_one_batch_decides_each_cast_on_its_own(app, api):
    s = setup_sitting(api, members=4)
    m = s.members
    b = {no: get_ballot(api, s.creds[no]) for no in m}
    retry = tablet.new_retry_id()
    jobs = _jobs(app, s, [
        (b[m[0]], {"motion": "for"}, retry),
        (b[m[1]], {"nobody": "for"}),          # bad marks: stores nothing
        (b[m[2]], {"motion": "against"}),
        (b[m[0]], {"motion": "for"}, retry),   # a retry within the batch (same retry id): the same receipt
        (b[m[0]], {"motion": "for"}),          # the serial again, another retry id: reused
        (forge(b[m[3]]), {"motion": "for"}),   # forged
    ])
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    got = [_outcome(j) for j in jobs]
    assert isinstance(got[0], intake.Receipt) and not got[0].repeated
    assert isinstance(got[1], InvalidInput)
    assert isinstance(got[2], intake.Receipt) and not got[2].repeated
    assert got[3] == intake.Receipt(got[0].serial, got[0].receipt, True)
    assert isinstance(got[4], ballots.BallotRefused) and got[4].reason == "reused"
    assert isinstance(got[5], ballots.BallotRefused) and got[5].reason == "forged"
    assert n_casts(app) == 2
    assert {r: c for r, c in refusals(app, s.item_id).items() if c} == {"reused": 1, "forged": 1}
    # one count for the batch, no serial in the chain
    assert [json.loads(e.data)["count"] for e in events(app, "casts_accepted")] == [2]
    assert len(events(app, "cast_refused")) == 2
    assert _chain_is_whole(app)
    # The member's retry over HTTP, after the batch, still gets the same receipt.
    status, again = cast(api, s.creds[m[0]], b[m[0]], {"motion": "for"}, retry_id=retry)
    assert status == 200 and again["receipt"] == got[0].receipt


def _accepted(app) -> int:
    """Casts accepted according to the chain: the sum of its per-batch counts."""
    return sum(json.loads(e.data)["count"] for e in events(app, "casts_accepted"))


def test_group_commit_an_unexpected_error_fails_only_its_own_cast(app, api, monkeypatch):
    s = setup_sitting(api, members=3)
    m = s.members
    b = {no: get_ballot(api, s.creds[no]) for no in m}
    jobs = _jobs(app, s, [(b[no], {"motion": "for"}) for no in m])
    poison = jobs[1].receipt_hash = "f" * 64
    # Sealed in the batch, where the error strikes (step 1 seals a cast whose round the process
    # knows already: blind signing taught it the round, round_facts.learn).
    jobs[1].staged = None
    real = intake.new_receipt

    def new_receipt(receipt_hash):
        if receipt_hash == poison:
            raise RuntimeError("disk on fire")
        return real(receipt_hash)

    monkeypatch.setattr(intake, "new_receipt", new_receipt)
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    got = [_outcome(j) for j in jobs]
    assert isinstance(got[1], RuntimeError)
    assert isinstance(got[0], intake.Receipt) and isinstance(got[2], intake.Receipt)
    assert {c.serial for c in all_casts(app)} == {jobs[0].serial, jobs[2].serial}
    assert _accepted(app) == 2 and _chain_is_whole(app)


def test_group_commit_failed_commit_gives_no_receipt(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    jobs = _jobs(app, s, [(get_ballot(api, s.creds[no]), {"motion": "for"}) for no in s.members])

    def commit_fails(db):
        raise OSError("fsync failed")

    monkeypatch.setattr(intake, "_commit_batch", commit_fails)
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    assert all(isinstance(_outcome(j), OSError) and j.result is None for j in jobs)
    assert n_casts(app) == 0 and events(app, "casts_accepted") == []


_CRASHING_CASTER = r"""
import json, os, sys, threading
from ballot_service import create_app
from ballot_service.domain import intake

env, jobs_path, crash_at = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
app = create_app(env)
batches, in_batch = [0], {}
real_store, real_commit = intake._store, intake._commit_batch

def store(db, jobs):
    in_batch[threading.get_ident()] = [j.serial for j in jobs]
    return real_store(db, jobs)

def commit(db):
    batches[0] += 1
    mine = in_batch[threading.get_ident()]
    if batches[0] >= crash_at and len(mine) > 1:
        # Statements executed, COMMIT not yet: the process dies here (kill -9 alike).
        sys.stderr.write("CRASH " + json.dumps(mine) + "\n"); sys.stderr.flush()
        os._exit(9)
    return real_commit(db)

intake._store, intake._commit_batch = store, commit
todo = json.load(open(jobs_path))
lock = threading.Lock()

def client():
    c = app.test_client()
    while True:
        with lock:
            if not todo:
                return
            ballot = todo.pop()
        r = c.post("/api/terminal/cast", json={**ballot, "marks": {"motion": "for"},
                                                "retry_id": "retry-" + ballot["serial"]})
        if r.status_code == 201:  # acknowledged: the member has the receipt
            with lock:
                sys.stdout.write("ACK " + json.dumps(r.get_json()) + "\n"); sys.stdout.flush()

threads = [threading.Thread(target=client) for _ in range(12)]
[t.start() for t in threads]
[t.join() for t in threads]
sys.stdout.write("DONE\n")
"""


def test_group_commit_crash_mid_batch_loses_no_acknowledged_cast(app, api, settings_env, tmp_path):
    s = setup_sitting(api, members=60)
    todo = [get_ballot(api, s.creds[no]) for no in s.members]  # a secret vote: cast anonymously
    jobs_path = tmp_path / "jobs.json"
    jobs_path.write_text(json.dumps(todo))
    app.extensions["ballot_engine"].dispose()
    proc = subprocess.run([sys.executable, "-c", _CRASHING_CASTER, json.dumps(settings_env), str(jobs_path), "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-3000:]
    crashed = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("CRASH "))[6:])
    acked = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ACK ")]
    assert len(crashed) > 1 and acked
    stored = {c.serial: c.receipt for c in all_casts(app)}
    for receipt in acked:  # every receipt given is a stored cast
        assert receipt_code(stored.get(receipt["serial"], "")) == receipt["receipt"]
    assert not set(crashed) & set(stored)  # the batch that died before its COMMIT left nothing
    assert not set(crashed) & {r["serial"] for r in acked}
    assert _accepted(app) == len(stored) and _chain_is_whole(app)


def test_a_serial_stored_meanwhile_by_another_process_is_decided_again(app, api, monkeypatch):
    """PostgreSQL runs several processes' batches side by side. A batch that read its serials
    before another process stored one of them finds it at its INSERT (the unique serial): the
    batch is undone and each cast stored alone, so the retry gets the first receipt and the
    other casts are accepted, each stored once and counted once."""
    engine = app.extensions["ballot_engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing is stored between a batch's read and insert")
    s = setup_sitting(api, members=3)
    m = s.members
    b = {no: get_ballot(api, s.creds[no]) for no in m}
    retry = tablet.new_retry_id()
    jobs = _jobs(app, s, [(b[m[0]], {"motion": "for"}, retry), (b[m[1]], {"motion": "against"}),
                          (b[m[2]], {"motion": "for"})])
    elsewhere = _jobs(app, s, [(b[m[0]], {"motion": "for"}, retry)])  # the same retry, at another node
    real = pg_batches.insert_or_nothing
    raced = []

    def insert_after_the_other(conn, table, rows):
        if not raced:  # the other process commits its batch between our read and our insert
            raced.append(True)
            intake._run_batch(engine, elsewhere)
        return real(conn, table, rows)

    monkeypatch.setattr(pg_batches, "insert_or_nothing", insert_after_the_other)
    intake._run_batch(engine, jobs)
    first = _outcome(elsewhere[0])
    got = [_outcome(j) for j in jobs]
    assert isinstance(first, intake.Receipt) and not first.repeated
    assert got[0] == intake.Receipt(first.serial, first.receipt, True)
    assert all(isinstance(g, intake.Receipt) and not g.repeated for g in got[1:]), got
    assert n_casts(app) == 3 and _accepted(app) == 3 and _chain_is_whole(app)


def _kill_app_connections(engine) -> None:
    """Terminate, server side, every client connection to the app's database but this one."""
    admin = create_engine(engine.url)
    with admin.connect() as c:
        assert c.execute(text("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                              "AND backend_type = 'client backend'")).scalar()
    admin.dispose()


@pytest.mark.parametrize("size", [1, 3])
def test_a_batch_on_a_connection_that_died_is_stored_again_cast_by_cast(app, api, monkeypatch, size):
    """PostgreSQL: a connection used within the last second is not pinged (db/postgres.py). If
    the server dropped it meanwhile, the batch's first statement fails: the batch (of several
    casts, or of one) is undone and each cast stored alone on a new connection, so every cast
    gets its receipt."""
    engine = app.extensions["ballot_engine"]
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's connection pool")
    s = setup_sitting(api, members=size)
    b = {no: get_ballot(api, s.creds[no]) for no in s.members}
    jobs = _jobs(app, s, [(b[no], {"motion": "for"}) for no in s.members])
    monkeypatch.setattr(postgres, "IDLE_PING_S", float("inf"))  # no connection is tested before use
    _kill_app_connections(engine)
    stores = []
    real = intake._store
    monkeypatch.setattr(intake, "_store", lambda db, batch: (stores.append(len(batch)), real(db, batch)))
    intake._run_batch(engine, jobs)
    got = [_outcome(j) for j in jobs]
    assert all(isinstance(g, intake.Receipt) for g in got), got
    assert stores == [size] + [1] * size  # the batch failed, then each cast alone
    assert n_casts(app) == size and _accepted(app) == size and _chain_is_whole(app)
