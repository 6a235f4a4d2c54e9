"""Requests that race, on one database. Issue #15 item 6: at most one open vote per sitting (a partial unique index on
items(sitting_id) WHERE status = 'open') and one record per item (records.item_id unique),
held by the database when requests race. Threads hit the app at once; run on PostgreSQL with
BALLOT_TEST_DATABASE_URL set (conftest.py), where requests really run concurrently."""
from __future__ import annotations

import os
import threading
import time
import traceback

import numpy as np
import pytest
from console_support import print_ballots, token
from helpers_live import OPERATOR, Api, blind_ballot, create_item, setup_sitting, tablets_poll, vote
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from station_support import mark, paper_item_handed_out, png_bytes, printed_pages
from terminal_support import n_casts, query

from ballot_service.crypto import tablet
from ballot_service.domain import (
    election_items,
    intake,
    item_drafts,
    paper_ballots,
    print_jobs,
    sittings,
    tally_sheets,
    terminals,
    voting,
)
from ballot_service.formats.ballots import BallotRefused
from ballot_service.models import AuditEvent, AuditHead, Item, PaperBallot, Record, Round, Sitting
from ballot_service.vocab import AuditKind
from ballot_service.web import admin_api

THREADS = 4


def _logged_in(app) -> Api:
    api = Api.flask(app.test_client())
    api.call("POST", "/api/admin/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    return api


def _at_once(app, calls):
    """Run each (method, url[, body]) in its own thread and client, released together by a barrier."""
    clients = [_logged_in(app) for _ in calls]
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i, method, url, body=None):
        barrier.wait()
        try:
            out[i] = clients[i].call(method, url, body, expect=None)
        except Exception:  # noqa: BLE001 — reported below, whole (an assertion's repr is cut short)
            out[i] = (None, traceback.format_exc())

    threads = [threading.Thread(target=run, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    failed = [f"{m} {u}:\n{o[1] if o else 'no answer within 120 s'}"
              for (m, u, *_), o in zip(calls, out) if o is None or o[0] is None]
    if failed:
        pytest.fail("a request raised instead of answering:\n" + "\n".join(failed), pytrace=False)
    return out


def _meet_in(monkeypatch, owner, name: str) -> None:
    """Patch owner.name so that two threads calling it meet there before going on together (a
    barrier of 3 s: if one waits for the other's lock instead, it goes on alone)."""
    barrier, real = threading.Barrier(2, timeout=3), getattr(owner, name)

    def meet(*args, **kw):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:  # the other waits for this one's lock: go on alone
            pass
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, meet)


def _until_a_lock_wait(engine, seconds: float, done=lambda: False) -> None:
    """Return once a session of this test's database waits for a lock, once `done()`, or after
    `seconds` (PostgreSQL)."""
    deadline = time.monotonic() + seconds
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:  # a fresh view each time
        while time.monotonic() < deadline and not done() and not watch.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")):
            time.sleep(0.05)


def test_concurrent_openings_leave_one_vote_open(app, api):
    """The attack: two concurrent opens left two votes open in one sitting."""
    s = setup_sitting(api, members=30, open_vote=False)
    ids = [s.item_id] + [create_item(api, s.sitting_id, key=f"item{i}") for i in range(2, THREADS + 1)]
    for _ in range(3):  # a few tries make a lost race likely to show
        tablets_poll(api, s.creds.values())  # online still, however slow the machine (helpers_live)
        answers = _at_once(app, [("POST", f"/api/admin/items/{i}/open") for i in ids])
        statuses = sorted(st for st, _ in answers)
        assert statuses == [200] + [409] * (len(ids) - 1), answers
        (n_open,) = query(app, select(func.count()).select_from(Item).where(Item.status == "open"))[0]
        assert n_open == 1
        opened = next(i for i, (st, _) in zip(ids, answers) if st == 200)
        api.call("POST", f"/api/admin/items/{opened}/close")
        api.call("POST", f"/api/admin/items/{opened}/tally")
        ids = [i for i in ids if i != opened]
        if len(ids) < 2:
            break


@pytest.mark.parametrize("channel", ["terminal", "paper"])
def test_concurrent_openings_of_one_vote_open_it_once(app, api, channel):
    """The attack (a double click on 开始表决 or 结束表决, or two secretariat operators at once):
    an opening that read the round as not started while another opening of the same vote
    committed found that vote open under its own name and opened the round again (the
    refusals' unique key stopped it: a server error, seen in CI on a ballot set); a closing
    likewise closed it twice. Each is one success and clear refusals."""
    s = setup_sitting(api, members=5, open_vote=False, channel=channel)
    item = s.item_id
    for attempt in range(3):  # a few tries make a lost race likely to show
        tablets_poll(api, s.creds.values())
        answers = _at_once(app, [("POST", f"/api/admin/items/{item}/open")] * THREADS)
        statuses = sorted(st for st, _ in answers)
        assert statuses == [200] + [409] * (THREADS - 1), answers
        opened = query(app, select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == AuditKind.VOTE_OPENED))[0][0]
        assert opened == attempt + 1, "one vote_opened per opening"
        answers = _at_once(app, [("POST", f"/api/admin/items/{item}/close")] * THREADS)
        assert sorted(st for st, _ in answers) == [200] + [409] * (THREADS - 1), answers
        closed = query(app, select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == AuditKind.VOTE_CLOSED))[0][0]
        assert closed == attempt + 1, "one vote_closed per closing"
        api.call("POST", f"/api/admin/items/{item}/tally")
        item = create_item(api, s.sitting_id, key=f"again{attempt}", channel=channel)
    assert query(app, select(func.count()).select_from(Round).where(Round.status == "open"))[0][0] == 0


def test_replacements_racing_the_close_are_counted_before_it_or_refused(app, api):
    """The attack: a replacement ballot (补发选票) read the round as open while the close
    committed, then added its replacement after vote_closed (the close's count of them, and
    the audit bundle's check of it, wrong for good); two at once lost one of the counts."""
    s = setup_sitting(api, members=6)
    for no in s.members:
        blind_ballot(api, s.creds[no])  # each has used their ballot: a replacement is allowed
    calls = [("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": no, "reason": "平板故障"})
             for no in s.members[:THREADS - 1]] + [("POST", f"/api/admin/items/{s.item_id}/close")]
    answers = _at_once(app, calls)
    assert answers[-1][0] == 200, answers
    allowed = sum(1 for st, _ in answers[:-1] if st == 200)
    assert all(st in (200, 409) for st, _ in answers[:-1]), answers
    assert query(app, select(Round.replacements).where(Round.item_id == s.item_id))[0][0] == allowed
    kinds = [k for (k,) in query(app, select(AuditEvent.kind).order_by(AuditEvent.chain, AuditEvent.seq))]
    assert kinds.count(AuditKind.BALLOT_REPLACEMENT) == allowed
    assert AuditKind.BALLOT_REPLACEMENT not in kinds[kinds.index(AuditKind.VOTE_CLOSED):]


def test_concurrent_record_requests_make_one_record(app, api):
    """The attack: four concurrent /record calls made four Record rows."""
    s = setup_sitting(api, members=5)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    answers = _at_once(app, [("POST", f"/api/admin/items/{s.item_id}/record")] * THREADS)
    assert all(st == 201 for st, _ in answers), answers
    assert len({data["id"] for _, data in answers}) == 1
    assert query(app, select(func.count()).select_from(Record))[0][0] == 1


def test_the_database_itself_refuses_a_second_open_vote_and_record(app, api, db):
    """Not only the code's checks: the schema refuses the rows a lost race would write."""
    s = setup_sitting(api, members=5)
    other = create_item(api, s.sitting_id, key="item2")
    db.get(Item, other).status = "open"
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    db.add(Record(item_id=s.item_id, body_json="{}", signature="x", key_fingerprint="x", audit_head="x"))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


# --- every other secretariat step on one item: a double click, two operators, two nodes -----------
# Each read the item's state, then wrote: two at once both passed the check (PostgreSQL) and did
# the step twice — two tallied events, a second publish, a time extension after vote_closed, two
# 另行选举 rounds, a record signed beside a 另行选举 that made it stale, an opening of an item
# deleted meanwhile (a server error). Now each waits for the other (ballot_sets.item_for_change).

def _count(app, kind) -> int:
    return query(app, select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == kind))[0][0]


def test_concurrent_tallies_and_publishes_each_happen_once(app, api):
    s = setup_sitting(api, members=5)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    answers = _at_once(app, [("POST", f"/api/admin/items/{s.item_id}/tally")] * THREADS)
    assert sorted(st for st, _ in answers) == [200] + [409] * (THREADS - 1), answers
    assert _count(app, AuditKind.TALLIED) == 1
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    answers = _at_once(app, [("POST", f"/api/admin/items/{s.item_id}/publish")] * THREADS)
    assert sorted(st for st, _ in answers) == [200] + [409] * (THREADS - 1), answers
    assert _count(app, AuditKind.RECORD_PUBLISHED) == 1


def test_extensions_racing_the_close_land_before_it_or_are_refused(app, api):
    s = setup_sitting(api, members=5)
    calls = [("POST", f"/api/admin/items/{s.item_id}/extend", {"minutes": 5})] * (THREADS - 1) + \
        [("POST", f"/api/admin/items/{s.item_id}/close")]
    answers = _at_once(app, calls)
    assert answers[-1][0] == 200 and all(st in (200, 409) for st, _ in answers[:-1]), answers
    kinds = [k for (k,) in query(app, select(AuditEvent.kind).order_by(AuditEvent.chain, AuditEvent.seq))]
    assert kinds.count(AuditKind.VOTE_TIME_EXTENDED) == sum(1 for st, _ in answers[:-1] if st == 200)
    assert AuditKind.VOTE_TIME_EXTENDED not in kinds[kinds.index(AuditKind.VOTE_CLOSED):]


def _unfilled_election(api) -> int:
    """An election of one 主任 among 7 deputies that elected nobody (A 3, B 2): one seat unfilled."""
    s = setup_sitting(api, members=7, open_vote=False)
    item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "el", "kind": "election", "title": "选举县监察委员会主任", "office": "principal", "places": 1,
        "candidates": [{"key": k, "title": f"候选人{k}"} for k in "AB"]})[1]["id"]
    api.call("POST", f"/api/admin/items/{item}/open")
    for cred, marks in zip(s.creds.values(), [{"B": "for"}] * 2 + [{"A": "for"}] * 3):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item}/close")
    assert api.call("POST", f"/api/admin/items/{item}/tally")[1]["unfilled"] == 1
    return item


def test_concurrent_further_elections_start_one_round(app, api):
    item = _unfilled_election(api)
    answers = _at_once(app, [("POST", f"/api/admin/items/{item}/another", {})] * THREADS)
    assert sorted(st for st, _ in answers) == [201] + [409] * (THREADS - 1), answers
    assert query(app, select(func.count()).select_from(Round).where(Round.item_id == item))[0][0] == 2
    assert _count(app, AuditKind.ELECTION_ANOTHER_CREATED) == 1


def test_a_record_racing_a_further_election_is_one_or_the_other(app, api):
    item = _unfilled_election(api)
    answers = _at_once(app, [("POST", f"/api/admin/items/{item}/record"),
                             ("POST", f"/api/admin/items/{item}/another", {})])
    assert sorted(st for st, _ in answers) == [201, 409], answers
    records = query(app, select(func.count()).select_from(Record))[0][0]
    rounds = query(app, select(func.count()).select_from(Round).where(Round.item_id == item))[0][0]
    assert (records, rounds) in ((1, 1), (0, 2))


def test_an_opening_racing_the_deletion_of_its_draft_is_refused_not_a_server_error(app, console):
    api = _logged_in(app)  # the console fixture made the operator
    s = setup_sitting(api, members=5, open_vote=False)
    for attempt in range(3):
        item = create_item(api, s.sitting_id, key=f"draft{attempt}")
        tablets_poll(api, s.creds.values())
        opener, out, csrf = _logged_in(app), {}, token(console)
        barrier = threading.Barrier(2)

        def open_it():
            barrier.wait()
            try:
                out["open"] = opener.call("POST", f"/api/admin/items/{item}/open", expect=None)
            except Exception:  # noqa: BLE001 — the server error, shown whole below
                out["open"] = (None, traceback.format_exc())

        def delete_it():
            barrier.wait()
            out["delete"] = console.post(f"/console/items/{item}/delete", data={"csrf_token": csrf}).status_code

        threads = [threading.Thread(target=f) for f in (open_it, delete_it)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert out["open"][0] in (200, 404, 409), out
        left = query(app, select(Item.status).where(Item.id == item))
        assert (out["open"][0] == 200) == (left == [("open",)]), (out, left)
        if left == [("open",)]:
            api.call("POST", f"/api/admin/items/{item}/close")
            api.call("POST", f"/api/admin/items/{item}/tally")


def test_concurrent_moves_in_the_order_of_business_keep_every_place_distinct(app, console):
    """上移 of two neighbours at once: each swapped positions it read before the other's swap
    (two items at one place), or the two waited on each other (a deadlock: a server error)."""
    api = _logged_in(app)
    s = setup_sitting(api, members=3, open_vote=False)
    ids = [s.item_id] + [create_item(api, s.sitting_id, key=f"item{i}") for i in range(2, 5)]
    csrf = token(console)
    clients = [console] + [app.test_client() for _ in range(THREADS - 1)]
    for c in clients[1:]:
        c.post("/login", data={"csrf_token": token(c), "username": OPERATOR[0], "password": OPERATOR[1]})
    tokens = [csrf] + [token(c) for c in clients[1:]]
    for _ in range(3):
        barrier, out = threading.Barrier(THREADS), [None] * THREADS

        def move(i):
            barrier.wait()
            try:
                out[i] = clients[i].post(f"/console/items/{ids[i]}/move",
                                         data={"csrf_token": tokens[i], "direction": "up"}).status_code
            except Exception:  # noqa: BLE001 — the server error, shown whole below
                out[i] = traceback.format_exc()

        threads = [threading.Thread(target=move, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert out == [302] * THREADS, out
        places = [p for (p,) in query(app, select(Item.position).where(Item.sitting_id == s.sitting_id))]
        assert len(set(places)) == len(ids), places


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_cast_batch_takes_its_rounds_in_the_order_a_close_does(app, api, db_url):
    """A batch holding casts of two rounds (a ballot set's elections) locked them in the order
    its casts arrived; a close of the set locks them in id order: each held one and waited for
    the other (a deadlock, which PostgreSQL breaks by failing one of them). Here a close holds
    the first round while the batch arrives with the second round's cast first."""
    s = setup_sitting(api, members=3, open_vote=False)
    second = create_item(api, s.sitting_id, key="item2")
    rounds = dict(query(app, select(Round.item_id, Round.id).where(Round.item_id.in_([s.item_id, second]))))
    assert rounds[s.item_id] < rounds[second]
    engine = create_engine(db_url)
    closing = engine.connect()
    closing.execute(text("SET lock_timeout = '5s'"))
    closing.execute(select(Round.id).where(Round.id == rounds[s.item_id]).with_for_update())
    jobs = []
    for item in (second, s.item_id):  # the second round's cast first
        job = intake.Job(intake.SittingRef(s.sitting_id, s.body_id), None, None, "terminal", None)
        job.key, job.signature_refusal = (s.sitting_id, item, 1), ("forged", "test: refused, counted")
        jobs.append(job)
    batch_failed: list = []

    def run_batch():
        with Session(engine) as db:
            try:
                intake._store(db, jobs)
                db.commit()
            except Exception:  # noqa: BLE001 — shown below
                batch_failed.append(traceback.format_exc())

    batch = threading.Thread(target=run_batch)
    batch.start()
    _until_a_lock_wait(engine, 30)  # the batch waits for the first round
    closing.execute(select(Round.id).where(Round.id == rounds[second]).with_for_update())
    closing.commit()
    batch.join(30)
    closing.close()
    engine.dispose()
    assert not batch_failed, batch_failed[0]
    assert all(isinstance(j.error, BallotRefused) for j in jobs), [j.error for j in jobs]


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_two_counting_stations_counting_one_round_at_once_do_not_deadlock(app, api, db_url, monkeypatch):
    """Two stations' scans, each stored in its own transaction: each read the paper round FOR
    SHARE, then wrote the round's own row (a 重复扫描's count; a hybrid vote's paper count), so
    each waited for the other's share (a deadlock: one scan failed). Here both rescan one
    counted ballot and meet after their round lock, as two tellers' scans can."""
    s, item, texts, _, keys = paper_item_handed_out(app, api, {
        "key": "jueyi", "kind": "resolution", "title": "关于召开会议的决定", "channel": "paper"}, 1)
    marks = {keys[0]: "for"}
    api.call("POST", "/api/station/paper", {"ballot": texts[0], "marks": marks}, credential=s.scrutineer)
    _meet_in(monkeypatch, intake.paper_ballots, "check_paper_serial")  # after the round's lock, before its row
    engine, failed, receipts = create_engine(db_url), [], []

    def rescan():
        with Session(engine) as db:
            try:
                db.execute(text("SELECT 1"))  # the scan's own transaction, as the station's upload holds
                receipts.append(intake.accept(db, app.config["SETTINGS"], db.get(Sitting, s.sitting_id), texts[0],
                                              marks, channel="paper"))
                db.commit()
            except Exception:  # noqa: BLE001 — shown below
                failed.append(traceback.format_exc())

    threads = [threading.Thread(target=rescan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.dispose()
    assert not failed, failed[0]
    assert [r.repeated for r in receipts] == [True, True]
    assert query(app, select(Round.rescanned).where(Round.item_id == item))[0][0] == 2


def test_an_election_joining_a_ballot_set_as_it_opens_opens_with_it_or_is_refused(app, api):
    """The attack: an election saved into a ballot set read the set's others as drafts while
    the set was being opened, and joined an open set as a draft of its own (never on the
    sheet, its round never opened with the set's)."""
    s = setup_sitting(api, members=5, open_vote=False)

    def election(key, office, ballot_set):
        return {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": 1,
                "channel": "paper", "ballot_set": ballot_set,
                "candidates": [{"key": c, "title": f"候选人{key}{c}"} for c in "AB"]}

    items = f"/api/admin/sessions/{s.sitting_id}/items"
    for attempt in range(3):
        name = f"换届选举{attempt}"
        head = api.call("POST", items, election(f"zr{attempt}", "principal", name))[1]["id"]
        opened, joined = _at_once(app, [("POST", f"/api/admin/items/{head}/open"),
                                        ("POST", items, election(f"fzr{attempt}", "vice", name))])
        assert opened[0] == 200 and joined[0] in (201, 409), (opened, joined)
        statuses = dict(query(app, select(Item.key, Item.status).where(Item.ballot_set == name)))
        assert set(statuses.values()) == {"open"}, statuses  # opened with the set, or it did not join
        api.call("POST", f"/api/admin/items/{head}/close")
        api.call("POST", f"/api/admin/items/{head}/tally")


def test_stacks_handed_out_as_the_vote_closes_are_counted_before_it_or_refused(app, api):
    """The attack: the desk's stack read its round as open while the close committed, then
    activated its ballots after the close had frozen the ballots issued (I): the record's
    figure short of the ballots really handed out."""
    s = setup_sitting(api, members=5, open_vote=False)
    item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "jueyi", "kind": "resolution", "title": "关于召开会议的决定", "channel": "paper"})[1]["id"]
    texts = api.call("POST", f"/api/admin/items/{item}/paper-ballots", {"count": 3 * (THREADS - 1)})[1]["ballots"]
    api.call("POST", f"/api/admin/items/{item}/open")
    stacks = [texts[i::THREADS - 1] for i in range(THREADS - 1)]
    clients = [Api.flask(app.test_client()) for _ in stacks]
    barrier, out = threading.Barrier(THREADS), [None] * (THREADS - 1)

    def hand_out(i):
        barrier.wait()
        out[i] = clients[i].call("POST", "/api/station/hand-out", {"ballots": stacks[i]}, credential=s.station,
                                 expect=None)[0]

    threads = [threading.Thread(target=hand_out, args=(i,)) for i in range(THREADS - 1)]
    for t in threads:
        t.start()
    closer = _logged_in(app)
    barrier.wait()
    closed = closer.call("POST", f"/api/admin/items/{item}/close", expect=None)
    for t in threads:
        t.join(120)
    assert closed[0] == 200 and all(st in (201, 409) for st in out), (closed, out)
    handed = query(app, select(func.count()).select_from(PaperBallot).where(PaperBallot.handed_out.is_(True)))[0][0]
    assert handed == 3 * out.count(201)
    assert query(app, select(Round.issued).where(Round.item_id == item))[0][0] == handed


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_check_in_at_the_moment_a_vote_opens_does_not_deadlock_it(app, api, db_url, monkeypatch):
    """The attack: a member checked in by the secretariat taps 签到 on their tablet as the vote opens. The check-in
    locked the terminal's row FOR UPDATE and then wrote to the chain; the opening held the
    chain's head (the round key's announcement) and inserted that terminal's issuance, whose
    foreign key waits for a FOR UPDATE: each waited for the other (one failed)."""
    s = setup_sitting(api, members=3, present=2, open_vote=False)
    late = s.members[2]  # checked in by the secretariat (补签到); their seat's tablet then takes their ballot
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": [late]})
    tablets_poll(api, s.creds.values())
    engine, opening_done = create_engine(db_url), threading.Event()
    real = terminals.find_member

    def wait_for_the_opening(*args, **kw):  # the terminal is locked: let the opening reach it
        _until_a_lock_wait(engine, 10, opening_done.is_set)
        return real(*args, **kw)

    monkeypatch.setattr(terminals, "find_member", wait_for_the_opening)
    tablet, out = Api.flask(app.test_client()), {}
    opener = _logged_in(app)

    def check_in():
        out["checkin"] = tablet.call("POST", "/api/terminal/checkin", {"member": late}, credential=s.creds[late],
                                     expect=None)

    def open_vote():
        time.sleep(0.3)  # the check-in first
        try:
            out["open"] = opener.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
        except Exception:  # noqa: BLE001 — shown below
            out["open"] = (None, traceback.format_exc())
        opening_done.set()

    threads = [threading.Thread(target=f) for f in (check_in, open_vote)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    engine.dispose()
    assert out["open"][0] == 200 and out["checkin"][0] == 200, out


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_an_edit_while_the_api_prints_paper_ballots_waits_and_is_refused(app, api, db_url, monkeypatch):
    """The attack: POST …/paper-ballots signs and records in its request; an edit of the draft
    at that moment found no printed ballot yet (not committed), so it changed the candidates
    under ballots being printed. Now it waits for the print, then is refused."""
    s = setup_sitting(api, members=3, open_vote=False)
    item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "jueyi", "kind": "resolution", "title": "关于召开会议的决定", "channel": "paper"})[1]["id"]
    editor, out = _logged_in(app), {}
    engine, real = create_engine(db_url), paper_ballots.sign_paper_ballots

    def edit():
        out["edit"] = editor.call("PUT", f"/api/admin/items/{item}", {
            "key": "jueyi", "kind": "resolution", "title": "改过的标题", "channel": "paper"}, expect=None)

    def sign_while_editing(*args, **kw):
        editing = threading.Thread(target=edit)
        editing.start()
        _until_a_lock_wait(engine, 10, lambda: "edit" in out)  # the edit answered, or waits for this print's lock
        out["editing"] = editing
        return real(*args, **kw)

    monkeypatch.setattr(paper_ballots, "sign_paper_ballots", sign_while_editing)
    printed = api.call("POST", f"/api/admin/items/{item}/paper-ballots", {"count": 3}, expect=None)
    out["editing"].join(60)
    engine.dispose()
    assert printed[0] == 201 and out["edit"][0] == 409, out
    assert query(app, select(Item.title).where(Item.id == item))[0][0] == "关于召开会议的决定"


def _page_one_teller_decided(app, api):
    """An open paper vote with one scanned page waiting for its second teller (a stray mark:
    queued; the 计票人 has decided): (setup, item id, page id, candidate keys)."""
    s, item, texts, layout, keys = paper_item_handed_out(app, api, {
        "key": "jueyi", "kind": "resolution", "title": "关于召开会议的决定", "channel": "paper"}, 2)
    page = mark(printed_pages(layout, texts[:1])[0], keys, {keys[0]: "for"}, np.random.default_rng(5), stray=True)
    r = app.test_client().post("/api/station/scans", data=png_bytes(page), headers={
        "Authorization": f"Bearer {s.counter}", "Content-Type": "image/png"})
    assert r.status_code == 201 and r.get_json()["pages"][0]["status"] == "queued", r.get_json()
    pid = r.get_json()["pages"][0]["id"]
    api.call("POST", f"/api/station/pages/{pid}/decision", {"decision": {"marks": {keys[0]: "for"}}},
             credential=s.counter)
    return s, item, pid, keys


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_tellers_final_decision_as_a_scan_of_its_round_is_stored_does_not_deadlock(app, api, db_url):
    """The attack: the 监票人 decides a queued page while another page of the same round is being
    stored. The decision wrote its step to the chain (the head locked) and then counted the
    ballot, which takes the paper round; a scan holds the round first and then appends to the
    chain: each waited for the other (PostgreSQL failed one). Here a transaction holds the
    round as a scan does, lets the decision arrive, then takes the chain's head."""
    s, item, pid, keys = _page_one_teller_decided(app, api)
    rid = query(app, select(Round.id).where(Round.item_id == item))[0][0]
    engine = create_engine(db_url)
    scan = engine.connect()
    scan.execute(text("SET lock_timeout = '10s'"))
    scan.execute(select(Round.id).where(Round.id == rid).with_for_update(key_share=True))  # as intake's scan
    teller, out = Api.flask(app.test_client()), {}

    def decide():
        out["decision"] = teller.call("POST", f"/api/station/pages/{pid}/decision",
                                      {"decision": {"marks": {keys[0]: "for"}}}, credential=s.scrutineer, expect=None)

    deciding = threading.Thread(target=decide)
    deciding.start()
    _until_a_lock_wait(engine, 30, lambda: "decision" in out)  # the decision waits for the round
    try:  # the scan's chain append: the head must not be held by the waiting decision
        scan.execute(select(AuditHead.seq).where(AuditHead.chain == s.body_id).with_for_update())
        scan.commit()
    finally:
        scan.close()
    deciding.join(60)
    engine.dispose()
    assert out["decision"][0] == 201 and out["decision"][1]["status"] == "counted", out
    assert n_casts(app) == 1


def test_a_final_decision_racing_the_close_is_counted_before_it_or_the_close_is_refused(app, api):
    """The 监票人's decision of the last waiting page and the secretariat's 表决结束 at once: the
    close waits while a page waits, so either the page is counted and then the vote closes, or
    the close is refused (a page waits) and the page is counted; never a closed vote with a
    page counted after it, nor one left waiting."""
    s, item, pid, keys = _page_one_teller_decided(app, api)
    station = Api.flask(app.test_client())
    out = {}
    barrier = threading.Barrier(2)

    def decide():
        barrier.wait()
        out["decision"] = station.call("POST", f"/api/station/pages/{pid}/decision",
                                       {"decision": {"marks": {keys[0]: "for"}}}, credential=s.scrutineer,
                                       expect=None)

    closer = _logged_in(app)

    def close():
        barrier.wait()
        out["close"] = closer.call("POST", f"/api/admin/items/{item}/close", expect=None)

    threads = [threading.Thread(target=f) for f in (decide, close)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out["decision"][0] == 201 and out["decision"][1]["status"] == "counted", out
    assert out["close"][0] in (200, 409), out
    if out["close"][0] == 409:
        assert "adjudication" in out["close"][1]["errors"][0]["message"], out
        api.call("POST", f"/api/admin/items/{item}/close")
    assert query(app, select(Round.status).where(Round.item_id == item))[0][0] == "closed"
    assert n_casts(app) == 1


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_members_own_checkin_during_the_secretariats_list_does_not_deadlock(app, api, db_url, monkeypatch):
    """The attack: the secretariat checks in two latecomers (补签到) as the second taps 签到 on
    their tablet. The list wrote the first member's row and appended to the chain (its head
    held); the tablet wrote the second member's row and waited for the head; the list then
    reached that row: each waited for the other (PostgreSQL failed one, with a 500)."""
    s = setup_sitting(api, members=3, present=1, open_vote=False)
    first, second = s.members[1], s.members[2]
    tablets_poll(api, s.creds.values())
    engine, out = create_engine(db_url), {}
    tablet = Api.flask(app.test_client())
    real = admin_api.find_member

    def tablet_checks_in():
        out["tablet"] = tablet.call("POST", "/api/terminal/checkin", {"member": second}, credential=s.creds[second],
                                    expect=None)

    def find_member(db, body_id, no):  # the list reaches its second member: the tablet taps 签到 now
        if no == second and "thread" not in out:
            out["thread"] = threading.Thread(target=tablet_checks_in)
            out["thread"].start()
            _until_a_lock_wait(engine, 10, lambda: "tablet" in out)  # it waits for a lock this request holds, or has answered
        return real(db, body_id, no)

    monkeypatch.setattr(admin_api, "find_member", find_member)
    listed = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": [first, second]},
                      expect=None)
    out["thread"].join(60)
    engine.dispose()
    assert listed[0] == 200 and out["tablet"][0] == 200, (listed, out)
    assert listed[1]["present"] == 3 and out["tablet"][1]["attendance"]["present"] == 3, (listed, out)


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_leave_while_a_secret_vote_is_being_opened_waits_and_is_refused(app, api, db_url, monkeypatch):
    """The attack: a present member's 请假 entered as the secret vote opens. The leave read "no
    vote open" (the opening not committed yet) and was recorded, while the opening counted the
    member in its 实到: a round whose present count no attendance list gives. Now the leave
    waits for the opening, then is refused as during any secret vote."""
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    engine, out = create_engine(db_url), {}
    clerk = _logged_in(app)
    real = voting.attendance_state

    def leave():
        out["leave"] = clerk.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance",
                                  {"members": [s.members[0]], "status": "leave"}, expect=None)

    def state_then_leave(db, sitting):  # the opening has read who is present: the leave comes in now
        state = real(db, sitting)
        if "thread" not in out:
            out["thread"] = threading.Thread(target=leave)
            out["thread"].start()
            _until_a_lock_wait(engine, 10, lambda: "leave" in out)  # it waits for a lock this opening holds, or has answered
        return state

    monkeypatch.setattr(voting, "attendance_state", state_then_leave)
    opened = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    out["thread"].join(60)
    engine.dispose()
    assert opened[0] == 200, opened
    assert out["leave"][0] == 409 and out["leave"][1]["errors"][0]["where"] == "attendance", out
    present = query(app, select(Round.present).where(Round.item_id == s.item_id))[0][0]
    assert present == api.call("GET", f"/api/admin/sessions/{s.sitting_id}/attendance")[1]["present"] == 3


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_two_tellers_entering_one_tally_sheet_at_once_enter_and_confirm_it(app, api, db_url, monkeypatch):
    """The attack: the 计票人 and the 监票人 press 录入 on the same hand count at the same moment.
    Each looked for the round's sheet under FOR UPDATE, which locks nothing while there is no
    sheet, and each inserted one: the second broke the unique key (a 500). Now the round is
    locked first: one enters, the other, after it, confirms the same figures."""
    s = setup_sitting(api, members=5, channel="tally_sheet")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    sheet = {"issued": 5, "returned": 5, "invalid": 0,
             "counts": {"motion": {"for": 4, "against": 1, "abstain": 0, "void": 0}}}
    _meet_in(monkeypatch, tally_sheets, "validate_sheet")  # both tellers have passed the round's checks
    out = {}

    def enter(cred):
        out[cred] = Api.flask(app.test_client()).call("POST", "/api/station/tally-sheet",
                                                      {"item_id": s.item_id, "sheet": sheet}, credential=cred,
                                                      expect=None)

    threads = [threading.Thread(target=enter, args=(c,)) for c in (s.counter, s.scrutineer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o[0] for o in out.values()) == [201, 201], out
    assert sorted(o[1]["state"] for o in out.values()) == ["confirmed", "entered"], out


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
@pytest.mark.parametrize("step", ["screen", "close"])
def test_a_sitting_held_for_a_change_still_takes_rows_that_refer_to_it(app, api, db_url, step):
    """The attack: a counting station uploads a page while no vote is open (late, or of a vote
    not yet opened) as the secretariat switches the presiding screen (or closes the session).
    Intake appended the page's refusal to the chain (its head held), then inserted the page,
    whose foreign key takes the sitting FOR KEY SHARE; the secretariat's step held the sitting
    FOR UPDATE and waited for the head: each waited for the other. Here the step holds the
    sitting as it does, and a row referring to the sitting must still go in at once."""
    s = setup_sitting(api, members=3, open_vote=False)
    engine = create_engine(db_url)
    holder = Session(engine)
    sitting = holder.get(Sitting, s.sitting_id)
    if step == "screen":
        sittings.open_item_locked(holder, sitting)  # as 切换大屏 and 下一次全体会议 take it
    else:
        sittings.close_sitting(holder, app.config["SETTINGS"], sitting)  # 闭会, not committed yet
    try:
        with engine.connect() as page:
            page.execute(text("SET lock_timeout = '2s'"))
            # the lock a foreign key to the sitting takes as a row referring to it goes in
            page.execute(select(Sitting.id).where(Sitting.id == s.sitting_id).with_for_update(key_share=True, read=True))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_two_elections_starting_one_new_ballot_set_at_once_keep_its_rules(app, api, monkeypatch):
    """The attack: two operators each add the first election of a new ballot set, one voted on
    paper and one on the tablets. Each checked the set under a lock of its elections, of which
    there were none yet, so both passed: a set of mixed channels (refused when added one after
    the other), and both took the same place in the order of business. Now additions take
    turns: the second sees the first and is refused."""
    s = setup_sitting(api, members=5, open_vote=False)
    _meet_in(monkeypatch, election_items, "check_ballot_set")  # both additions have passed their first checks

    def election(key, channel):
        return {"key": key, "kind": "election", "title": f"选举{key}", "office": "principal", "places": 1,
                "channel": channel, "ballot_set": "换届选举",
                "candidates": [{"key": c, "title": f"候选人{key}{c}"} for c in "AB"]}

    items = f"/api/admin/sessions/{s.sitting_id}/items"
    added = _at_once(app, [("POST", items, election("zr", "paper")), ("POST", items, election("fzr", "terminal"))])
    assert sorted(a[0] for a in added) == [201, 400], added
    assert [a for a in added if a[0] == 400][0][1]["errors"][0]["where"] == "channel", added
    places = [p for (p,) in query(app, select(Item.position).where(Item.sitting_id == s.sitting_id))]
    assert len(places) == len(set(places)) == 2, places


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_editing_a_draft_while_a_vote_is_open_does_not_hold_up_its_casts(app, api, monkeypatch):
    """The fault: an edit (or 上移/下移) of a draft locked every round of the sitting, the open
    vote's too, so every cast waited until the operator's edit committed. Now it locks the
    sitting's items and its own set's rounds only. Here the edit is held open mid-way; a cast
    of the open vote must be stored before it goes on."""
    s = setup_sitting(api, members=3)  # item1 open
    draft = create_item(api, s.sitting_id, key="item2")
    ballot = blind_ballot(api, s.creds[s.members[0]])  # taken before: issuance is not what is tested
    paused, release, out = threading.Event(), threading.Event(), {}
    real = item_drafts.check_item

    def hold_the_edit(*args, **kw):  # the edit holds its locks here until the cast is answered
        paused.set()
        out["cast_came_first"] = release.wait(15)
        return real(*args, **kw)

    monkeypatch.setattr(item_drafts, "check_item", hold_the_edit)
    editor = _logged_in(app)

    def edit():
        out["edit"] = editor.call("PUT", f"/api/admin/items/{draft}", {
            "key": "item2", "kind": "resolution", "title": "改过的标题"}, expect=None)

    editing = threading.Thread(target=edit)
    editing.start()
    assert paused.wait(15)
    cast = Api.flask(app.test_client()).call("POST", "/api/terminal/cast", {
        **ballot, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id()}, expect=None)
    release.set()
    editing.join(60)
    assert cast[0] == 201 and out["cast_came_first"], (cast, out)
    assert out["edit"][0] == 200, out


@pytest.mark.skipif(not os.environ.get("BALLOT_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="row locks: PostgreSQL only (SQLite's one write lock orders everything)")
def test_a_check_in_while_a_print_job_signs_is_not_held_up(app, console, monkeypatch):
    """The fault: a print job (console, CLI) checked the session open under a shared lock of
    its row and kept it while it signed, seconds for thousands of ballots; a check-in, which
    takes that row for a change, waited all that time (a tablet gives up after 15 s). Now the
    job checks without the lock there, and again under it when it records the batch."""
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, present=2, open_vote=False, channel="paper")
    late = s.members[2]
    tablets_poll(api, s.creds.values())
    real, out = print_jobs.sign_paper_ballots, {}
    tablet = Api.flask(app.test_client())

    def check_in_while_signing(*args, **kw):
        checking = threading.Thread(target=lambda: out.setdefault("checkin", tablet.call(
            "POST", "/api/terminal/checkin", {"member": late}, credential=s.creds[late], expect=None)))
        checking.start()
        checking.join(10)
        out["answered_while_signing"] = "checkin" in out
        return real(*args, **kw)

    monkeypatch.setattr(print_jobs, "sign_paper_ballots", check_in_while_signing)
    state = print_ballots(console, s.item_id, 3)
    assert state["state"] == "done", state
    assert out["answered_while_signing"] and out["checkin"][0] == 200, out
