"""The 宣布稿 of an election and the turnout line every 宣布稿 carries, from a signed record's
content: a written-in person who is not elected is told why, as a listed candidate is; the
present deputies whose tablets took no ballot (P − I) are read out on a line of their own;
and `audit verify` holds a record's `not_issued` to P − I."""
from __future__ import annotations

import pytest

from ballot_service.bundle.checks_records import check_not_issued
from ballot_service.bundle.errors import BundleInvalid
from ballot_service.render import announcement, election_announcement


def _election(channel: str = "paper", present: int = 7, issued: int = 7) -> dict:
    rnd = {"status": "decided", "stage": "first", "members": 7, "present": present, "quorum_met": True,
           "issued": issued, "returned": 7, "valid": 7, "invalid": 0, "refused": 0, "not_voted": 0,
           "places": 1, "threshold_votes": 4,
           "candidates": [{"key": "A", "for": 5, "against": 1, "abstain": 1, "void": 0, "passed": True,
                           "elected": True},
                          {"key": "B", "for": 2, "against": 4, "abstain": 1, "void": 0, "passed": False,
                           "elected": False}],
           "write_ins": [{"name": "M0003", "for": 1, "elected": False}],
           "elected": ["A"], "tied": [], "runoff_places": 0, "unfilled": 0}
    return {"body": {"kind": "congress"}, "result": {**rnd, "unfilled": 0},
            "item": {"kind": "election", "title": "选举主任", "channel": channel, "places": 1,
                     "candidates": [{"key": "A", "title": "王磊"}, {"key": "B", "title": "石静"}],
                     "written_in": {"M0003": "李秀英"}},
            "rounds": [{"number": 1, "result": rnd}]}


def test_a_written_in_person_not_elected_is_told_why():
    text = election_announcement.announcement(_election())
    assert "石静得票2票，未获得全体代表过半数选票，未当选。" in text
    assert "李秀英（M0003）（另选他人）得票1票，未获得全体代表过半数选票，未当选。" in text


def test_more_than_half_but_outranked_says_so():
    content = _election()
    rnd = content["rounds"][0]["result"]
    rnd["candidates"][1].update({"for": 4, "passed": True})
    assert "石静得票4票，得票过半数但未进入应选名额，未当选。" in election_announcement.announcement(content)


def test_present_deputies_without_a_ballot_are_read_apart():
    assert "未领取选票" not in election_announcement.announcement(_election("paper", present=9, issued=7))
    text = election_announcement.announcement(_election("terminal", present=9, issued=7))
    assert "发出选票7张" in text and "实到代表中未领取选票2名。" in text
    resolution = {"body": {"kind": "congress"},
                  "item": {"kind": "resolution", "title": "决议", "channel": "terminal",
                           "candidates": [{"key": "motion", "title": "决议"}]},
                  "result": {"members": 12, "present": 9, "quorum_met": True, "issued": 3, "returned": 2,
                             "valid": 2, "invalid": 0, "refused": 0, "not_voted": 1, "status": "decided",
                             "passed": False, "candidates": [{"key": "motion", "for": 2, "against": 0,
                                                              "abstain": 0, "passed": False}]}}
    lines = announcement.sentences(resolution)
    assert "实到代表中未领取选票6名。" in lines and "未按表决器1名" in lines[1]


def test_audit_verify_holds_not_issued_to_p_minus_i():
    content = {"item": {"channel": "terminal"},
               "rounds": [{"number": 1, "not_issued": 6, "result": {"present": 9, "issued": 3}}]}
    check_not_issued("records/x.json", content)
    content["rounds"][0]["not_issued"] = 5
    with pytest.raises(BundleInvalid):
        check_not_issued("records/x.json", content)
    del content["rounds"][0]["not_issued"]  # a record signed before the field existed
    check_not_issued("records/x.json", content)


def test_the_read_aloud_page_of_an_election_is_the_election_wording():
    """The 宣布稿 page and PDF take sentences(): for an election, its rounds' paragraphs."""
    assert announcement.sentences(_election()) == election_announcement.announcement(_election()).split("\n")
    assert any("当选为主任" in line for line in announcement.sentences(_election()))


def test_audit_verify_refuses_a_boolean_for_a_count():
    content = {"item": {"channel": "terminal"},
               "rounds": [{"number": 1, "not_issued": True, "result": {"present": 4, "issued": 3}}]}
    with pytest.raises(BundleInvalid):
        check_not_issued("records/x.json", content)
    content["item"]["channel"] = "paper"  # no P − I on paper: the field may only be null
    content["rounds"][0]["not_issued"] = None
    check_not_issued("records/x.json", content)
