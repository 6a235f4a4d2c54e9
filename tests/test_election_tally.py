"""The election tally (rules/election_tally.py) over stored ballots, as rules/tally.py
and the audit bundle's recount call it: properties with Hypothesis (nobody elected in round 1
or a 另行选举 without 2*for > N, never more elected than seats, write-ins counted by
normalised name, a re-vote among the tied only), and the scenario checks of elections."""
from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballot_service.domain.ballot_marks import take_write_ins
from ballot_service.errors import InvalidInput
from ballot_service.formats.scenario import load_scenario
from ballot_service.rules import RuleError
from ballot_service.rules import election_tally as et

KEYS = ["A", "B", "C", "D"]
NAMES = ["张三", " 张三", "李四", "Zoe\u0308", "Zo\u00eb"]


@st.composite
def ballots(draw):
    n = draw(st.integers(1, 4))
    marks = st.fixed_dictionaries({}, optional={k: st.sampled_from(["for", "against", "abstain"])
                                                for k in KEYS[:n]})
    written = st.lists(st.sampled_from(NAMES), max_size=2)
    rows = draw(st.lists(st.tuples(marks, written), max_size=25))
    return KEYS[:n], [{**m, **{et.WRITE_IN + w: "for" for w in ws}} for m, ws in rows]


@settings(max_examples=150, deadline=None)
@given(ballots(), st.integers(1, 3), st.integers(1, 40), st.sampled_from(["first", "another"]))
def test_nobody_elected_without_a_majority_of_all_deputies_nor_beyond_the_seats(case, seats, members, stage):
    keys, stored = case
    members = max(members, len(stored))
    r = et.round_result(stage=stage, candidate_keys=keys, places=seats, members=members, present=members,
                        quorum_met=True, issued=members, ballots=stored)
    votes = {c["key"]: c["for"] for c in r["candidates"]} | {et.WRITE_IN + w["name"]: w["for"]
                                                              for w in r["write_ins"]}
    assert len(r["elected"]) <= seats
    assert all(2 * votes[k] > members for k in r["elected"])
    assert r["valid"] + r["invalid"] == len(stored)
    names = [w["name"] for w in r["write_ins"]]
    assert len(set(names)) == len(names)  # one person, one line: by normalised name
    assert all(n == unicodedata.normalize("NFC", n).strip() for n in names)
    if r["status"] == "runoff_pending":
        assert set(r["tied"]).isdisjoint(r["elected"]) and len(r["tied"]) > r["runoff_places"]
        assert len({votes[k] for k in r["tied"]}) == 1
    if r["status"] == "decided":
        assert et.item_result("x", [r])["unfilled"] == seats - len(r["elected"])


def test_a_re_vote_takes_no_write_ins_and_elects_the_most_votes():
    stored = [{"A": "for"}, {"A": "for"}, {"B": "for"}]
    r = et.round_result(stage="revote", candidate_keys=["A", "B"], places=1, members=9, present=9,
                        quorum_met=True, issued=9, ballots=stored)
    assert r["elected"] == ["A"] and r["threshold_votes"] is None  # 2 of 9: no second majority test
    with pytest.raises(RuleError):
        et.round_result(stage="revote", candidate_keys=["A", "B"], places=1, members=9, present=9,
                        quorum_met=True, issued=9, ballots=[{"A": "for", et.WRITE_IN + "张三": "for"}])
    with pytest.raises(InvalidInput):
        take_write_ins({et.WRITE_IN + "张三": "for"}, "revote")
    assert take_write_ins({et.WRITE_IN + " 张三 ": "for", "A": "for"}, "first") == {et.WRITE_IN + "张三": "for"}


def test_a_write_in_of_a_listed_candidate_or_a_non_deputy_is_no_vote():
    stored = [{et.WRITE_IN + "候选人甲": "for"}, {et.WRITE_IN + "路人": "for"}, {et.WRITE_IN + "M0009": "for"}]
    r = et.round_result(stage="first", candidate_keys=["A", "B"], places=1, members=3, present=3,
                        quorum_met=True, issued=3, ballots=stored, listed=["候选人甲", "候选人乙"],
                        eligible=["M0009", "代表甲"])
    assert r["write_ins"] == [{"name": "M0009", "for": 1, "elected": False}] and r["valid"] == 3


def _scenario(tmp_path, drop=(), **item):
    data = {
        "format": "ballot-scenario/1", "body": {"name": "县人大", "kind": "congress"}, "session": {"name": "一次"},
        "roster": {"size": 5}, "present": {"count": 5},
        "items": [{"key": "e", "kind": "election", "title": "选举", "office": "principal", "places": 1,
                   "candidates": [{"key": "A", "title": "甲"}, {"key": "B", "title": "乙"}],
                   "ballots": [{"marks": {"A": "for"}}], **item}]}
    for k in drop:
        del data["items"][0][k]
    p = tmp_path / "s.json"
    p.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return p


@pytest.mark.parametrize("item, drop, where", [
    ({"rule": {"base": "present"}}, (), "$.items[0].rule"),
    ({}, ("office",), "$.items[0].office"),
    ({}, ("places",), "$.items[0].places"),
    ({"another": {"ballots": [{"marks": {"Z": "for"}}]}}, (), "$.items[0].another.ballots[0].marks.Z"),
])
def test_scenario_elections_are_checked_with_the_json_path(tmp_path, item, drop, where):
    path = _scenario(tmp_path, drop, **item)
    with pytest.raises(InvalidInput) as exc:
        load_scenario(path)
    assert exc.value.where == where, exc.value.message


def test_write_ins_only_on_election_items(tmp_path):
    path = _scenario(tmp_path, ("office", "places"), kind="appointment",
                     ballots=[{"marks": {"A": "for"}, "write_ins": ["张三"]}])
    with pytest.raises(InvalidInput) as exc:
        load_scenario(path)
    assert exc.value.where == "$.items[0].ballots[0].write_ins"
