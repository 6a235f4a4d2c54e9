"""Issue #20 item 2 on a hand count (issue #18): an election's tally sheet (计票单) records the
written-in persons (另选他人) with their 赞成 votes beside the listed candidates. Names are
checked and normalised as ballot write-ins are (a 常委会委员 must be a deputy, art. 47), the
same person twice, a listed candidate, a negative count or more 赞成 than seats × valid ballots
is refused with the reason, the second teller confirms the same figures (names compared
normalised), and the tally elects a written-in person like one written on ballots. Only an
election round that allows write-ins takes them."""
from __future__ import annotations

import pytest
from bundle_support import export_app_bundle
from helpers_live import setup_sitting
from terminal_support import assert_error_shape, events

from ballot_service.bundle.verify import verify_bundle

CANDIDATES = [{"key": "A", "title": "甲一"}, {"key": "B", "title": "乙二"}, {"key": "C", "title": "丙三"}]


def _election(api, office="vice", members=5):
    s = setup_sitting(api, members=members, open_vote=False)
    _, created = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "elect", "kind": "election", "title": "选举副主任", "office": office, "places": 2,
        "candidates": CANDIDATES, "channel": "tally_sheet"})
    s.item_id = created["id"]
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    return s


def _sheet(write_ins, a_for=1, valid=5):
    """5 ballots returned, none invalid; A gets `a_for`, B and C none."""
    return {"issued": 5, "returned": valid, "invalid": 0, "write_ins": write_ins,
            "counts": {"A": {"for": a_for, "against": valid - a_for},
                       "B": {"abstain": valid}, "C": {"against": valid}}}


def _send(api, s, credential, sheet):
    return api.call("POST", "/api/station/tally-sheet", {"item_id": s.item_id, "sheet": sheet},
                    credential=credential, expect=None)


def test_a_written_in_person_on_both_tellers_sheets_is_elected(app, api):
    s = _election(api)
    first = _sheet([{"name": "张三", "for": 4}, {"name": "李四", "for": 1}])
    assert _send(api, s, s.counter, first) == (201, {"state": "entered"})
    # the 监票人 writes the names in another order, blanks around one, a row of no votes: the same figures
    again = _sheet([{"name": "李四", "for": 1}, {"name": "王五", "for": 0}, {"name": " 张三\u3000", "for": 4}])
    assert _send(api, s, s.scrutineer, again) == (201, {"state": "confirmed"})
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["write_ins"] == [{"name": "张三", "for": 4, "elected": True},
                                   {"name": "李四", "for": 1, "elected": False}], result
    assert result["elected"] == ["write_in:张三"]


def test_the_confirming_teller_must_give_the_same_written_in_persons(app, api):
    s = _election(api)
    assert _send(api, s, s.counter, _sheet([{"name": "张三", "for": 4}]))[0] == 201
    for other in ([{"name": "张三", "for": 3}], [{"name": "李四", "for": 4}], []):
        status, data = _send(api, s, s.scrutineer, _sheet(other))
        assert status == 409 and assert_error_shape(data, "Conflict")["where"] == "sheet", other
    assert events(app, "tally_sheet_confirmed") == []


@pytest.mark.parametrize("write_ins, where", [
    ([{"name": "张三", "for": 2}, {"name": "张三 ", "for": 1}], "sheet.write_ins.1.name"),  # the same person
    ([{"name": "甲一", "for": 1}], "sheet.write_ins.0.name"),                           # a listed candidate
    ([{"name": "", "for": 1}], "sheet.write_ins.0.name"),
    ([{"name": "张三", "for": -1}], "sheet.write_ins.0.for"),
    ([{"name": "张三", "for": 1.5}], "sheet.write_ins.0.for"),
    ([{"name": "张三"}], "sheet.write_ins.0.for"),
    ([{"name": "张三", "for": 1, "against": 2}], "sheet.write_ins.0"),
    (["张三"], "sheet.write_ins.0"),
    ({"张三": 1}, "sheet.write_ins"),
    # 5 valid ballots × 2 seats = 10 赞成 at most: A has 5, so 6 more is one too many
    ([{"name": "张三", "for": 5}, {"name": "李四", "for": 1}], "sheet.write_ins"),
])
def test_a_bad_written_in_row_is_refused_with_the_reason(app, api, write_ins, where):
    s = _election(api)
    status, data = _send(api, s, s.counter, _sheet(write_ins, a_for=5))
    assert status == 400 and assert_error_shape(data, "InvalidInput")["where"] == where, data
    assert events(app, "tally_sheet_entered") == []


def test_a_committee_member_written_in_must_be_a_deputy_of_the_roster(app, api):
    """Art. 47: 常委会组成人员 are deputies; the sheet names one by 代表证号 (or roster name)."""
    s = _election(api, office="committee_member")
    status, data = _send(api, s, s.counter, _sheet([{"name": "张三", "for": 3}]))
    assert status == 400 and data["errors"][0]["where"] == "sheet.write_ins.0.name"
    assert "代表" in data["errors"][0]["message"], data
    sheet = _sheet([{"name": "M0004", "for": 3}])
    assert _send(api, s, s.counter, sheet)[0] == 201
    assert _send(api, s, s.scrutineer, sheet) == (201, {"state": "confirmed"})
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["write_ins"] == [{"name": "M0004", "for": 3, "elected": True}]


def test_the_listed_candidates_alone_still_respect_the_seats(app, api):
    s = _election(api)
    sheet = {"issued": 5, "returned": 5, "invalid": 0,
             "counts": {"A": {"for": 5}, "B": {"for": 5}, "C": {"for": 1, "against": 4}}}
    status, data = _send(api, s, s.counter, sheet)
    assert status == 400 and data["errors"][0]["where"] == "sheet.counts"


def test_only_an_election_takes_written_in_persons(app, api):
    s = setup_sitting(api, members=5, channel="tally_sheet")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    sheet = {"issued": 5, "returned": 5, "invalid": 0, "write_ins": [],
             "counts": {"motion": {"for": 4, "against": 1}}}
    status, data = _send(api, s, s.counter, sheet)
    assert status == 400 and data["errors"][0]["where"] == "sheet.write_ins"
    del sheet["write_ins"]
    assert _send(api, s, s.counter, sheet)[0] == 201


def test_the_auditor_recounts_a_sheet_with_a_written_in_deputy(app, api, settings_env, tmp_path):
    """The bundle's recount (rules.tally over the exported sheet and the election's eligible
    deputies) gives the tallied result and the signed record."""
    s = _election(api, office="committee_member")
    sheet = _sheet([{"name": "代表M0002", "for": 3}], a_for=4)
    _send(api, s, s.counter, sheet)
    _send(api, s, s.scrutineer, sheet)
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert sorted(result["elected"]) == ["A", "write_in:代表M0002"], result
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    export_app_bundle(app, tmp_path / "bundle")
    verify_bundle(tmp_path / "bundle")


def test_a_re_vote_sheet_takes_no_written_in_persons(app, api):
    """RULES.md §5.4: nobody is written in on a re-vote among the tied, nor on its sheet or form."""
    s = _election(api)
    tie = {"issued": 5, "returned": 5, "invalid": 0, "write_ins": [{"name": "张三", "for": 3}],
           "counts": {"A": {"for": 4, "against": 1}, "B": {"for": 3, "against": 2}, "C": {"for": 0, "against": 5}}}
    _send(api, s, s.counter, tie)
    _send(api, s, s.scrutineer, tie)
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "runoff_pending" and result["tied"] == ["B", "write_in:张三"], result
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, board = api.call("GET", "/api/station/board", credential=s.counter)
    (row,) = [i for i in board["items"] if i["item_id"] == s.item_id]
    assert row["write_ins"] is False and row["candidates"] == ["B", "write_in:张三"], row
    revote = {"issued": 5, "returned": 5, "invalid": 0, "write_ins": [{"name": "李四", "for": 1}],
              "counts": {"B": {"for": 2, "against": 3}, "write_in:张三": {"for": 3, "against": 2}}}
    status, data = _send(api, s, s.counter, revote)
    assert status == 400 and data["errors"][0]["where"] == "sheet.write_ins", data
    del revote["write_ins"]
    assert _send(api, s, s.counter, revote) == (201, {"state": "entered"})
