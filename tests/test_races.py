"""Issue #15 item 6: at most one open vote per sitting (a partial unique index on
items(sitting_id) WHERE status = 'open') and one record per item (records.item_id unique),
held by the database when requests race. Threads hit the app at once; run on PostgreSQL with
BALLOT_TEST_DATABASE_URL set (conftest.py), where requests really run concurrently."""
from __future__ import annotations

import threading
import traceback

import pytest
from helpers_live import OPERATOR, Api, blind_ballot, create_item, setup_sitting, tablets_poll
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from terminal_support import query

from ballot_service.models import AuditEvent, Item, Record, Round
from ballot_service.vocab import AuditKind

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
