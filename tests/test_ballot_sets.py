"""Ballot sets (issue 20): elections printed on one ballot paper (主任, 副主任, 委员) share a
`ballot_set` and open, close and are tallied together; records stay one per item. The
database itself allows one open item or one open set per sitting (OpenBallot): a write that
would open a second is refused by it, and concurrent openings of two sets leave one open
(on PostgreSQL with BALLOT_TEST_DATABASE_URL set, requests really run concurrently)."""
from __future__ import annotations

import pytest
from bundle_support import export_and_verify
from console_support import post
from helpers_live import Api, create_item, setup_sitting
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from terminal_support import query
from test_races import _at_once

from ballot_service.models import Item, OpenBallot, Record, Round

SET = "换届选举"


def _election(api, sid, key, office, places, cands, *, ballot_set=SET, channel="paper", expect=201):
    spec = {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": places,
            "channel": channel, "candidates": [{"key": c, "title": f"候选人{key}{c}"} for c in cands],
            **({"ballot_set": ballot_set} if ballot_set else {})}
    status, data = api.call("POST", f"/api/admin/sessions/{sid}/items", spec, expect=None)
    assert status == expect, data
    return data["id"] if status == 201 else data


def _paper_vote(api, s, item_id, ballots):
    """Print the set's sheets (one per ballot) and hand them out: each election's own ballot texts."""
    _, printed = api.call("POST", f"/api/admin/items/{item_id}/paper-ballots", {"count": len(ballots)})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    return {int(k): v for k, v in printed["sections"].items()}


def _enter(api, s, texts, ballots):
    for text, marks in zip(texts, ballots):
        api.call("POST", "/api/station/paper", {"ballot": text, "marks": marks}, credential=s.scrutineer)


def _statuses(app, ids):
    return [st for (st,) in query(app, select(Item.status).where(Item.id.in_(ids)).order_by(Item.id))]


def test_a_ballot_set_opens_closes_and_is_tallied_together_with_one_record_each(app, api):
    s = setup_sitting(api, members=5, open_vote=False, channel="paper")
    head = _election(api, s.sitting_id, "zr", "principal", 1, "AB")
    vice = _election(api, s.sitting_id, "fzr", "vice", 1, "CD")
    alone = _election(api, s.sitting_id, "mz", "principal", 1, "EF", ballot_set=None)
    texts = _paper_vote(api, s, head, [None] * 5)
    _, opened = api.call("POST", f"/api/admin/items/{vice}/open")
    assert opened["ballot_set"] == [head]                       # opening one opened both
    assert _statuses(app, [head, vice, alone]) == ["open", "open", "draft"]
    status, err = api.call("POST", f"/api/admin/items/{alone}/open", expect=None)
    assert status == 409 and "仍在进行" in err["errors"][0]["message_zh"]
    # 主任: A 3 (more than half of 5), B 2; 副主任: C 2, D 2 — nobody elected, 另行选举 later
    _enter(api, s, texts[head], [{"A": "for"}] * 3 + [{"B": "for"}] * 2)
    # one paper over-selected in 副主任 (2 for 1 seat): invalid there only
    _enter(api, s, texts[vice], [{"C": "for"}] * 2 + [{"D": "for"}] * 2 + [{"C": "for", "D": "for"}])
    api.call("POST", f"/api/admin/items/{head}/close")
    assert _statuses(app, [head, vice]) == ["closed", "closed"]
    assert query(app, select(func.count()).select_from(OpenBallot))[0][0] == 0
    result = api.call("POST", f"/api/admin/items/{head}/tally")[1]
    assert result["elected"] == ["A"] and result["invalid"] == 0
    assert result["ballot_set"]["fzr"]["elected"] == [] and result["ballot_set"]["fzr"]["invalid"] == 1
    for i in (head, vice):
        api.call("POST", f"/api/admin/items/{i}/record")
    assert query(app, select(func.count()).select_from(Record))[0][0] == 2
    api.call("POST", f"/api/admin/items/{alone}/open")             # the set is closed: the next vote opens


def test_a_re_vote_after_the_sets_tally_opens_only_the_tied_election(app, api):
    s = setup_sitting(api, members=4, open_vote=False, channel="paper")
    head = _election(api, s.sitting_id, "zr", "principal", 1, "AB")
    vice = _election(api, s.sitting_id, "fzr", "vice", 1, "CD")
    texts = _paper_vote(api, s, head, [None] * 4)
    api.call("POST", f"/api/admin/items/{head}/open")
    _enter(api, s, texts[head], [{"A": "for"}] * 3 + [{"B": "for"}])
    _enter(api, s, texts[vice], [{"C": "for"}] * 4)
    api.call("POST", f"/api/admin/items/{head}/close")
    result = api.call("POST", f"/api/admin/items/{vice}/tally")[1]
    assert result["elected"] == ["C"] and result["ballot_set"]["zr"]["elected"] == ["A"]
    assert _statuses(app, [head, vice]) == ["decided", "decided"]
    status, _ = api.call("POST", f"/api/admin/items/{vice}/open", expect=None)
    assert status == 409                                           # nothing left to vote in the set


def test_what_a_ballot_set_may_hold(api):
    s = setup_sitting(api, members=5, open_vote=False)
    _election(api, s.sitting_id, "t1", "principal", 1, "AB", channel="terminal", ballot_set="表决器票组")  # one tablet ballot
    spec = {"key": "r", "kind": "resolution", "title": "决议", "channel": "paper", "ballot_set": SET}
    status, err = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec, expect=None)
    assert status == 400 and err["errors"][0]["where"] == "ballot_set"
    _election(api, s.sitting_id, "zr", "principal", 1, "AB")
    err = _election(api, s.sitting_id, "fzr", "vice", 1, "CD", channel="tally_sheet", expect=400)
    assert err["errors"][0]["where"] == "channel"


def test_the_database_refuses_a_second_open_vote_whatever_the_application_does(app, api):
    """Not through the service's checks: two open items under different names, written directly."""
    s = setup_sitting(api, members=3, open_vote=False)
    other = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    db = app.extensions["ballot_sessionmaker"]()
    try:
        with pytest.raises(IntegrityError):   # open without naming what is open
            db.execute(update(Item).where(Item.id == other).values(status="open"))
            db.flush()
        db.rollback()
        with pytest.raises(IntegrityError):   # open under another name than the sitting's open ballot
            db.execute(update(Item).where(Item.id == other).values(status="open", open_ballot=f"item:{other}"))
            db.flush()
        db.rollback()
        with pytest.raises(IntegrityError):   # a second OpenBallot row for the sitting
            db.add(OpenBallot(sitting_id=s.sitting_id, ballot=f"item:{other}"))
            db.flush()
        db.rollback()
    finally:
        db.close()


def test_concurrent_openings_of_two_ballot_sets_leave_one_set_open(app, api):
    s = setup_sitting(api, members=5, open_vote=False, channel="paper")
    sets = {name: [_election(api, s.sitting_id, f"{name}{n}", "principal", 1, "AB", ballot_set=name)
                   for n in range(2)] for name in ("甲组", "乙组")}
    answers = _at_once(app, [("POST", f"/api/admin/items/{sets['甲组'][0]}/open"),
                             ("POST", f"/api/admin/items/{sets['乙组'][1]}/open"),
                             ("POST", f"/api/admin/items/{sets['甲组'][1]}/open"),
                             ("POST", f"/api/admin/items/{sets['乙组'][0]}/open")])
    statuses = [st for st, _ in answers]
    assert 200 in statuses and set(statuses) <= {200, 409}, answers
    open_sets = {bs for (bs,) in query(app, select(Item.ballot_set).where(Item.status == "open"))}
    assert len(open_sets) == 1, open_sets
    (winner,) = open_sets
    assert _statuses(app, sets[winner]) == ["open", "open"]      # the whole set, not a part of it
    (ballot,) = query(app, select(OpenBallot.ballot))[0]
    assert ballot == f"set:{winner}"


def test_the_console_groups_a_set_and_opens_it_as_one_and_the_bundle_verifies(app, console, settings_env, tmp_path):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False, channel="paper")
    head = _election(api, s.sitting_id, "zr", "principal", 1, "AB")
    vice = _election(api, s.sitting_id, "fzr", "vice", 1, "CD")
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)
    assert page.count(f"票组 {SET}") == 2
    page = console.get(f"/console/items/{vice}").get_data(as_text=True)
    assert f"选举票组 {SET}" in page and "选举zr、选举fzr" in page
    assert f'name="ballot_set" size="12" value="{SET}"' in page   # the 修改 form keeps it
    texts = _paper_vote(api, s, head, [None] * 3)
    post(console, f"/console/items/{vice}/open", {}, follow_redirects=True)
    assert _statuses(app, [head, vice]) == ["open", "open"]
    _enter(api, s, texts[head], [{"A": "for"}] * 3)
    _enter(api, s, texts[vice], [{"C": "for"}] * 2 + [{"D": "for"}])
    post(console, f"/console/items/{head}/close", {}, follow_redirects=True)
    post(console, f"/console/items/{head}/tally", {}, follow_redirects=True)
    assert _statuses(app, [head, vice]) == ["decided", "decided"]
    for i in (head, vice):
        api.call("POST", f"/api/admin/items/{i}/record")
    export_and_verify(settings_env, tmp_path / "bundle")


def test_without_quorum_the_whole_set_is_recorded_and_an_extension_extends_every_open_election(app, api):
    s = setup_sitting(api, members=5, present=2, open_vote=False, channel="paper")
    head = _election(api, s.sitting_id, "zr", "principal", 1, "AB")
    vice = _election(api, s.sitting_id, "fzr", "vice", 1, "CD")
    result = api.call("POST", f"/api/admin/items/{vice}/quorum-failed")[1]
    assert result["status"] == "quorum_not_met" and result["ballot_set"]["zr"]["status"] == "quorum_not_met"
    assert _statuses(app, [head, vice]) == ["quorum_not_met", "quorum_not_met"]
    t = setup_sitting(api, members=3, open_vote=False, channel="paper")
    spec = {"kind": "election", "office": "principal", "places": 1, "channel": "paper", "ballot_set": SET,
            "time_limit_s": 600, "candidates": [{"key": "A", "title": "甲"}, {"key": "B", "title": "乙"}]}
    ids = [api.call("POST", f"/api/admin/sessions/{t.sitting_id}/items", {**spec, "key": k, "title": k})[1]["id"]
           for k in ("x", "y")]
    api.call("POST", f"/api/admin/items/{ids[0]}/open")
    before = api.call("POST", f"/api/admin/items/{ids[1]}/extend", {"minutes": 5})[1]["closes_at"]
    after = [c for (c,) in query(app, select(Round.closes_at).where(Round.item_id.in_(ids)))]
    assert len(set(after)) == 1 and after[0].isoformat()[:19] == before[:19]
