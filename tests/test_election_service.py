"""The `election` kind through the real endpoints (issue 20): the 差额 check when the item is
saved (article named; too many nominees starts a 预选), no rule options, write-ins (另选他人)
counted by normalised name and refused where the law has none, a re-vote among the tied
only, the 另行选举 started in one console step, tellers who are candidates refused."""
from __future__ import annotations

from display_support import get_state
from helpers_live import COUNTER_NAME, publish, setup_sitting, vote
from sqlalchemy import func, select
from terminal_support import cast, get_ballot, query

from ballot_service.models import Item, Round

W = "write_in:"


def _election(api, sid, *, key="el", office="committee_member", places=2, cands=("A", "B", "C"), **extra):
    spec = {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": places,
            "candidates": [{"key": k, "title": f"候选人{k}"} for k in cands], **extra}
    return api.call("POST", f"/api/admin/sessions/{sid}/items", spec, expect=None)


def _session(api, members=7, **kw):
    return setup_sitting(api, members=members, open_vote=False, **kw)


def _vote_round(api, s, item_id, ballots):
    api.call("POST", f"/api/admin/items/{item_id}/open")
    for cred, marks in zip(s.creds.values(), ballots):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    return api.call("POST", f"/api/admin/items/{item_id}/tally")[1]


def _result(api, s, key="el"):
    _, res = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/results")
    return next(r for r in res["items"] if r["key"] == key)


def test_too_few_candidates_is_refused_naming_the_article_and_saves_nothing(app, api):
    s = _session(api)
    status, data = _election(api, s.sitting_id, places=2, cands=("A", "B"))  # 委员 2 seats: 3 candidates
    assert status == 400
    err = data["errors"][0]
    assert err["where"] == "candidates" and "组织法第二十七条" in err["message"]
    status, data = _election(api, s.sitting_id, key="zz", office="vice", places=1, cands=("A",))
    assert status == 400 and "组织法第二十七条" in data["errors"][0]["message"]
    assert query(app, select(func.count()).select_from(Item).where(Item.key.in_(["el", "zz"])))[0][0] == 0


def test_rule_options_and_unknown_office_are_refused(api):
    s = _session(api)
    status, data = _election(api, s.sitting_id, rule={"base": "present"})
    assert status == 400 and data["errors"][0]["where"] == "rule"
    status, data = _election(api, s.sitting_id, office="mayor")
    assert status == 400 and data["errors"][0]["where"] == "office"


def test_too_many_nominees_start_a_preliminary_vote(app, api):
    s = _session(api)
    status, data = _election(api, s.sitting_id, office="principal", places=1, cands=("A", "B", "C"))
    assert status == 201
    item_id = data["id"]
    (rnd,), = query(app, select(Round).where(Round.item_id == item_id))
    assert (rnd.stage, rnd.places) == ("preliminary", 2)  # 正职: one more than the seats
    # 预选 ranks without a threshold; write-ins have no place in it.
    api.call("POST", f"/api/admin/items/{item_id}/open")
    status, data = cast(api, None, get_ballot(api, s.creds["M0001"]), {f"{W}张三": "for"})
    assert status == 400 and "另选他人" in data["errors"][0]["message_zh"]
    for cred, pick in zip(s.creds.values(), ["C", "C", "B", "B", "B", "A", "A"]):
        if cred != s.creds["M0001"]:
            vote(api, cred, {pick: "for"})
    api.call("POST", f"/api/admin/items/{item_id}/close")
    result = api.call("POST", f"/api/admin/items/{item_id}/tally")[1]
    assert result["stage"] == "preliminary" and result["elected"] == ["B", "A"]
    rounds = query(app, select(Round).where(Round.item_id == item_id).order_by(Round.number))
    assert [(r.stage, r.places, r.candidate_keys) for (r,) in rounds][-1] == ("first", 1, ["B", "A"])


def test_tie_at_the_last_seat_is_re_voted_among_the_tied_only_without_write_ins(app, api):
    s = _session(api)
    item_id = _election(api, s.sitting_id)[1]["id"]
    both = [{"A": "for", "B": "for"}] * 2 + [{"A": "for", "C": "for"}] * 2 + [{"B": "for", "C": "for"}] * 2
    result = _vote_round(api, s, item_id, both)
    assert result["status"] == "runoff_pending" and result["tied"] == ["A", "B", "C"]
    (rnd,), = query(app, select(Round).where(Round.item_id == item_id, Round.number == 2))
    assert (rnd.stage, rnd.places, rnd.candidate_keys) == ("revote", 2, ["A", "B", "C"])
    api.call("POST", f"/api/admin/items/{item_id}/open")
    status, data = cast(api, None, get_ballot(api, s.creds["M0001"]), {"A": "for", f"{W}张三": "for"})
    assert status == 400
    for cred, marks in zip(list(s.creds.values())[1:], [{"A": "for", "B": "for"}] * 3 + [{"C": "for"}]):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    result = api.call("POST", f"/api/admin/items/{item_id}/tally")[1]
    # the most votes win, no second majority test (A and B have 3 of 7)
    assert result["elected"] == ["A", "B"] and {c["passed"] for c in result["candidates"]} == {None}
    final = _result(api, s)
    assert final["elected"] == ["A", "B"] and final["unfilled"] == 0 and final["runoff"]["places"] == 2


def test_write_ins_count_by_normalised_name_and_another_election_fills_the_seat(app, api):
    s = _session(api)
    item_id = _election(api, s.sitting_id, office="principal", places=1, cands=("A", "B"))[1]["id"]
    ballots = [{"A": "for"}] * 3 + [{"B": "for"}, {f"{W}张三": "for"}, {f"{W} 张三 ": "for"},
                                    {"A": "for", f"{W}李四": "for"}]  # the last: 2 chosen for 1 seat
    result = _vote_round(api, s, item_id, ballots)
    assert (result["valid"], result["invalid"]) == (6, 1)
    assert result["write_ins"] == [{"name": "张三", "for": 2, "elected": False}]
    assert result["elected"] == [] and result["unfilled"] == 1  # nobody has more than half of 7
    # 另行选举 in one step, with a newly nominated candidate beside a first-round one.
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another",
                            {"candidates": ["A", {"key": "D", "title": "新提名"}, "B"]}, expect=None)
    assert status == 400 and "组织法第二十七条" in data["errors"][0]["message"]  # 正职: exactly 2
    status, data = api.call("POST", f"/api/admin/items/{item_id}/another",
                            {"candidates": ["A", {"key": "D", "title": "新提名"}]})
    assert data == {"round": 2, "places": 1, "candidates": ["A", "D"]}
    result = _vote_round(api, s, item_id, [{"D": "for"}] * 4 + [{"A": "for"}] * 3)
    assert result["stage"] == "another" and result["elected"] == ["D"]
    final = _result(api, s)
    assert final["elected"] == ["D"] and final["unfilled"] == 0 and final["status"] == "decided"
    assert final["another"]["elected"] == ["D"]
    assert api.call("POST", f"/api/admin/items/{item_id}/another", {}, expect=None)[0] == 409  # all filled
    _, rec = api.call("POST", f"/api/admin/items/{item_id}/record")
    assert rec["id"]


def test_a_teller_who_is_a_candidate_is_refused_by_the_station(app, api):
    s = _session(api, channel="paper")
    spec = {"key": "el", "kind": "election", "title": "选举主任", "office": "principal", "places": 1,
            "channel": "paper", "candidates": [{"key": "A", "title": COUNTER_NAME}, {"key": "B", "title": "乙"}]}
    item_id = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"]
    _, printed = api.call("POST", f"/api/admin/items/{item_id}/paper-ballots", {"count": 2})
    status, data = api.call("POST", "/api/station/hand-out", {"ballots": [printed["ballots"][0]]},
                            credential=s.counter, expect=None)
    assert status == 403 and COUNTER_NAME in data["errors"][0]["message"]
    api.call("POST", "/api/station/hand-out", {"ballots": [printed["ballots"][0]]}, credential=s.scrutineer)
    api.call("POST", f"/api/admin/items/{item_id}/open")
    status, _ = api.call("POST", "/api/station/paper", {"ballot": printed["ballots"][0], "marks": {"B": "for"}},
                         credential=s.counter, expect=None)
    assert status == 403
    assert api.call("POST", "/api/station/paper", {"ballot": printed["ballots"][0], "marks": {"B": "for"}},
                    credential=s.scrutineer)[0] == 201


def test_a_tie_at_the_preliminary_cut_off_is_re_voted_and_the_official_list_follows(app, api):
    s = _session(api)
    item_id = _election(api, s.sitting_id, office="principal", places=1, cands=("A", "B", "C"))[1]["id"]
    first = _vote_round(api, s, item_id, [{"B": "for"}] * 3 + [{"A": "for"}] * 2 + [{"C": "for"}] * 2)
    assert first["stage"] == "preliminary" and first["elected"] == ["B"] and first["tied"] == ["A", "C"]
    revote = _vote_round(api, s, item_id, [{"A": "for"}] * 2 + [{"C": "for"}])
    assert revote["stage"] == "revote" and revote["elected"] == ["A"]
    rounds = query(app, select(Round).where(Round.item_id == item_id).order_by(Round.number))
    assert [(r.stage, r.places, r.candidate_keys) for (r,) in rounds][-1] == ("first", 1, ["B", "A"])
    result = _vote_round(api, s, item_id, [{"A": "for"}] * 4 + [{"B": "for"}] * 3)
    assert result["elected"] == ["A"]
    final = _result(api, s)  # the 预选 made the list; the election itself is round 3
    assert final["elected"] == ["A"] and [c["key"] for c in final["candidates"]] == ["B", "A"]


def test_an_election_is_a_secret_ballot(api):
    s = _session(api)
    status, data = _election(api, s.sitting_id, office="principal", places=1, cands=("A", "B"), secret=False)
    assert status == 400 and data["errors"][0]["where"] == "secret" and "第二十八条" in data["errors"][0]["message_zh"]


def test_the_hall_reads_the_another_elections_own_counts(app, api, screen):
    """After 另行选举 the screen says 第2轮 · 另行选举: its figures and its 当选 are that round's,
    not round 1's (where nobody had more than half and the two were level)."""
    s = _session(api)
    item_id = _election(api, s.sitting_id, office="principal", places=1, cands=("A", "B"))[1]["id"]
    first = _vote_round(api, s, item_id, [{"A": "for"}] * 3 + [{"B": "for"}] * 3)
    assert first["elected"] == [] and first["unfilled"] == 1
    api.call("POST", f"/api/admin/items/{item_id}/another", {"candidates": ["A", "B"]})
    _vote_round(api, s, item_id, [{"A": "for"}] * 5 + [{"B": "for"}] * 2)
    publish(api, item_id)
    r = get_state(screen, s.sitting_id)["result"]
    assert r["stage"] == "another" and r["issued"] == 7 and r["returned"] == 7
    shown = {p["key"]: (p["for"], p["elected"]) for p in r["nominees"]}
    assert shown == {"A": (5, True), "B": (2, False)}
