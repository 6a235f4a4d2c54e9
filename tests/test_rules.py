"""Example tests for every rule and edge of RULES.md, against the pure rules engine."""
from __future__ import annotations

import pytest

from ballot_service import rules
from ballot_service.rules import (
    CandidateCount,
    RoundFacts,
    Rule,
    RuleError,
    ballot_valid,
    count_ballots,
    decide_round,
    meets_majority,
    minimum_votes,
    normalise_marks,
    quorum_met,
    select_top,
    threshold_base,
)


def cc(key, for_, against=0, abstain=0, void=0):
    return CandidateCount(key, for_, against, abstain, void)


def facts(kind="livelihood_projects", members=60, present=50, quorum=None, issued=50,
          returned=50, valid=None, invalid=0, places=None, counts=(), rule=None):
    if quorum is None:
        quorum = quorum_met("congress", members, present)
    if valid is None:
        valid = returned - invalid
    return RoundFacts(kind, members, present, quorum, issued, returned, valid, invalid,
                      places, list(counts), rule or Rule())


def projects(*fors):
    """Candidates P01, P02, … with the given `for` counts."""
    return [cc(f"P{i + 1:02d}", n) for i, n in enumerate(fors)]


# --- §2 quorum ---------------------------------------------------------------------------

@pytest.mark.parametrize("members,present,met", [
    (60, 40, True), (60, 39, False), (60, 60, True), (60, 0, False),
    (61, 41, True), (61, 40, False),     # 3*41=123 >= 122; 3*40=120 < 122
    (62, 42, True), (62, 41, False),     # 126 >= 124; 123 < 124
    (3, 2, True), (3, 1, False),
    (0, 0, True),                        # 0 >= 0
])
def test_quorum_congress_two_thirds_inclusive(members, present, met):
    assert quorum_met("congress", members, present) is met


@pytest.mark.parametrize("members,present,met", [
    (35, 18, True), (35, 17, False),     # odd N: 36 > 35; 34 < 35
    (34, 17, False), (34, 18, True),     # even N: exact half is not "more than half"
    (1, 1, True), (1, 0, False), (2, 1, False), (0, 0, False),
])
def test_quorum_standing_committee_more_than_half(members, present, met):
    assert quorum_met("standing_committee", members, present) is met


def test_quorum_rule_text():
    assert rules.quorum_rule_text("congress") == "3*P >= 2*N"
    assert rules.quorum_rule_text("standing_committee") == "2*P > N"


@pytest.mark.parametrize("kind,members,present", [
    ("congress", 60, 61),               # present > members
    ("standing_committee", 35, 36),
    ("congress", -1, 0),
    ("congress", 60, -1),
    ("plenary", 60, 50),                # unknown body kind
    ("congress", 60.0, 50),             # not a whole number
    ("congress", 60, True),             # bool is not a count
])
def test_quorum_bad_inputs(kind, members, present):
    with pytest.raises(RuleError):
        quorum_met(kind, members, present)


# --- §1 thresholds -----------------------------------------------------------------------

@pytest.mark.parametrize("votes,base,ok", [
    (30, 60, False), (31, 60, True),    # even base: exactly half fails
    (17, 34, False), (18, 34, True),
    (30, 61, False), (31, 61, True),    # odd base
    (17, 35, False), (18, 35, True),
    (0, 0, False), (1, 1, True), (0, 1, False), (1, 2, False),
])
def test_more_than_half(votes, base, ok):
    assert meets_majority(votes, base, "half") is ok
    assert meets_majority(votes, base) is ok  # default


@pytest.mark.parametrize("votes,base,ok", [
    (40, 60, True), (39, 60, False),    # exactly two thirds passes (以上 includes)
    (41, 61, True), (40, 61, False),    # 123 >= 122; 120 < 122
    (42, 62, True), (41, 62, False),    # 126 >= 124; 123 < 124
    (2, 3, True), (1, 3, False),
    (0, 0, True),
])
def test_two_thirds_inclusive(votes, base, ok):
    assert meets_majority(votes, base, "two_thirds") is ok


@pytest.mark.parametrize("base,majority,expected", [
    (60, "half", 31), (61, "half", 31), (34, "half", 18), (35, "half", 18), (1, "half", 1),
    (0, "half", 1),
    (60, "two_thirds", 40), (61, "two_thirds", 41), (62, "two_thirds", 42), (3, "two_thirds", 2),
    (0, "two_thirds", 0),
])
def test_minimum_votes(base, majority, expected):
    m = minimum_votes(base, majority)
    assert m == expected
    assert meets_majority(m, base, majority)
    if m > 0:
        assert not meets_majority(m - 1, base, majority)


@pytest.mark.parametrize("votes,base,majority", [
    (-1, 60, "half"), (31, -1, "half"), (31, 60, "simple"), (31, 60, "three_quarters"),
    (31.0, 60, "half"),
])
def test_meets_majority_bad_inputs(votes, base, majority):
    with pytest.raises(RuleError):
        meets_majority(votes, base, majority)


def test_minimum_votes_unknown_majority_refused():
    with pytest.raises(RuleError):
        minimum_votes(60, "simple")


def test_rule_options_validated():
    assert Rule() == Rule("members", "half")
    Rule("present", "two_thirds")
    Rule("valid", "half")
    with pytest.raises(RuleError):
        Rule(base="registered")
    with pytest.raises(RuleError):
        Rule(majority="simple")


def test_threshold_base():
    assert threshold_base(Rule("members"), 60, 50, 45) == 60
    assert threshold_base(Rule("present"), 60, 50, 45) == 50
    assert threshold_base(Rule("valid"), 60, 50, 45) == 45


@pytest.mark.parametrize("base,for_,passed,expected_base", [
    ("members", 30, False, 60),   # 60 members: 30 is exactly half
    ("members", 31, True, 60),
    ("present", 25, False, 50),   # 50 present
    ("present", 26, True, 50),
    ("valid", 23, True, 44),      # 44 valid: 23 > 22
    ("valid", 22, False, 44),
])
def test_resolution_threshold_base_options(base, for_, passed, expected_base):
    d = decide_round(facts("resolution", members=60, present=50, issued=50, returned=46,
                           invalid=2, counts=[cc("motion", for_)], rule=Rule(base)))
    assert d.base == expected_base
    assert d.passed is passed
    assert d.candidates[0].passed is passed


def test_resolution_two_thirds_of_members():
    for for_, ok in ((40, True), (39, False)):
        d = decide_round(facts("resolution", members=60, present=60, issued=60, returned=60,
                               counts=[cc("motion", for_, 60 - for_)], rule=Rule("members", "two_thirds")))
        assert d.status == "decided"
        assert d.passed is ok


# --- §3 ballot marks ---------------------------------------------------------------------

KEYS = ["P01", "P02", "P03", "P04"]


def test_unmarked_counts_as_abstain():
    assert normalise_marks({"P01": "for"}, KEYS) == {
        "P01": "for", "P02": "abstain", "P03": "abstain", "P04": "abstain"}
    bc = count_ballots(KEYS, [{"P01": "for"}, {}], places=2)
    assert (bc.valid, bc.invalid) == (2, 0)
    assert [(c.key, c.for_, c.against, c.abstain, c.void) for c in bc.candidates] == [
        ("P01", 1, 0, 1, 0), ("P02", 0, 0, 2, 0), ("P03", 0, 0, 2, 0), ("P04", 0, 0, 2, 0)]


def test_void_mark_affects_only_that_candidate():
    ballots = [{"P01": "void", "P02": "for", "P03": "against"},
               {"P01": "for", "P02": "for"}]
    bc = count_ballots(KEYS, ballots, places=2)
    assert (bc.valid, bc.invalid) == (2, 0)
    p01, p02, p03, p04 = bc.candidates
    assert (p01.for_, p01.void, p01.abstain) == (1, 1, 0)
    assert (p02.for_, p02.void) == (2, 0)
    assert (p03.against, p03.abstain) == (1, 1)
    assert (p04.abstain, p04.void) == (2, 0)


def test_void_mark_does_not_count_toward_over_selection():
    # 2 places: two `for` plus voids is still valid
    assert ballot_valid({"P01": "for", "P02": "for", "P03": "void", "P04": "void"}, 2)
    bc = count_ballots(KEYS, [{"P01": "for", "P02": "for", "P03": "void", "P04": "void"}], 2)
    assert (bc.valid, bc.invalid) == (1, 0)


def test_marks_for_unknown_candidates_refused():
    with pytest.raises(RuleError, match="P99"):
        normalise_marks({"P01": "for", "P99": "for"}, KEYS)
    with pytest.raises(RuleError):
        count_ballots(KEYS, [{"P01": "for"}, {"motion": "for"}], places=2)


@pytest.mark.parametrize("mark", ["yes", "FOR", "", None, "赞成"])
def test_unknown_mark_value_refused(mark):
    with pytest.raises(RuleError):
        normalise_marks({"P01": mark}, KEYS)


def test_candidate_count_add_unknown_mark():
    c = CandidateCount("P01")
    c.add("for", 3)
    c.add("void")
    assert (c.for_, c.void) == (3, 1)
    with pytest.raises(RuleError):
        c.add("maybe")


# --- §4 validity -------------------------------------------------------------------------

def test_over_selection_invalidates_whole_ballot():
    k = 2
    exactly_k = {"P01": "for", "P02": "for", "P03": "against"}
    k_plus_1 = {"P01": "for", "P02": "for", "P03": "for"}
    blank = {}
    assert ballot_valid(exactly_k, k) is True
    assert ballot_valid(k_plus_1, k) is False
    assert ballot_valid(blank, k) is True
    assert ballot_valid(normalise_marks(blank, KEYS), k) is True
    bc = count_ballots(KEYS, [exactly_k, k_plus_1, blank], places=k)
    assert (bc.valid, bc.invalid, bc.returned) == (2, 1, 3)
    # the invalid ballot adds nothing to any candidate, not even to P03's `for`
    p01, p02, p03, p04 = bc.candidates
    assert (p01.for_, p01.abstain) == (1, 1)
    assert (p03.for_, p03.against, p03.abstain) == (0, 1, 1)
    assert (p04.for_, p04.against, p04.abstain, p04.void) == (0, 0, 2, 0)


def test_no_places_means_no_over_selection():
    assert ballot_valid({"A": "for", "B": "for", "C": "for"}, None)
    bc = count_ballots(["A", "B", "C"], [{"A": "for", "B": "for", "C": "for"}], places=None)
    assert (bc.valid, bc.invalid) == (1, 0)


def test_over_return_voids_the_vote():
    d = decide_round(facts(members=60, present=50, issued=50, returned=51, places=2,
                           counts=projects(50, 49, 48)))
    assert d.status == "void"
    assert d.selected == [] and d.tied == []
    assert not any(c.passed for c in d.candidates)
    assert not any(c.selected for c in d.candidates)
    assert [c.for_ for c in d.candidates] == [50, 49, 48]  # counts are still shown
    r = decide_round(facts("resolution", issued=50, returned=51, counts=[cc("motion", 51)]))
    assert (r.status, r.passed) == ("void", False)
    a = decide_round(facts("appointment", issued=50, returned=51, counts=[cc("N1", 51)]))
    assert a.status == "void" and a.candidates[0].passed is False


def test_returned_equal_issued_is_fine():
    d = decide_round(facts(members=60, present=50, issued=50, returned=50, places=2,
                           counts=projects(50, 49, 48)))
    assert d.status == "decided"
    assert d.selected == ["P01", "P02"]
    assert d.not_voted == 0


def test_not_voted_is_issued_minus_returned():
    d = decide_round(facts("resolution", members=60, present=50, issued=50, returned=47,
                           counts=[cc("motion", 31, 10, 6)]))
    assert d.not_voted == 3
    assert d.passed is True


def test_quorum_not_met_nothing_passes():
    d = decide_round(facts(members=60, present=39, issued=39, returned=39, places=2,
                           counts=projects(39, 39, 39)))
    assert d.status == "quorum_not_met"
    assert d.selected == [] and d.tied == []
    assert not any(c.passed or c.selected for c in d.candidates)
    r = decide_round(facts("resolution", members=60, present=39, issued=39, returned=39,
                           counts=[cc("motion", 39)]))
    assert (r.status, r.passed) == ("quorum_not_met", False)
    a = decide_round(facts("appointment", members=35, present=17, quorum=False, issued=17,
                           returned=17, counts=[cc("N1", 17)]))
    assert a.status == "quorum_not_met" and a.candidates[0].passed is False


# --- §5.1 livelihood projects -------------------------------------------------------------

def test_projects_ranked_descending_ties_in_candidate_order():
    # N=60: a project needs 31. P05 (30) fails.
    d = decide_round(facts(members=60, places=4, counts=projects(40, 45, 40, 50, 30)))
    assert d.status == "decided"
    assert d.selected == ["P04", "P02", "P01", "P03"]
    assert [c.passed for c in d.candidates] == [True, True, True, True, False]
    assert [c.selected for c in d.candidates] == [True, True, True, True, False]
    assert d.shortfall == 0 and d.tied == []


def test_project_at_exact_half_fails():
    d = decide_round(facts(members=60, places=3, counts=projects(31, 30, 45)))
    assert [c.passed for c in d.candidates] == [True, False, True]
    assert d.selected == ["P03", "P01"]
    assert d.shortfall == 1


def test_tie_straddling_cutoff_goes_to_runoff():
    # k=3: P02 (50) above; P01, P03, P04 tied at 40 for 2 places; P05 passes but below.
    d = decide_round(facts(members=60, places=3, counts=projects(40, 50, 40, 40, 35)))
    assert d.status == "runoff_pending"
    assert d.selected == ["P02"]
    assert d.tied == ["P01", "P03", "P04"]
    assert d.runoff_places == 2
    assert d.shortfall == 0
    assert [c.selected for c in d.candidates] == [False, True, False, False, False]
    assert [c.passed for c in d.candidates] == [True] * 5


def test_tie_at_first_place_straddling():
    d = decide_round(facts(members=60, places=1, counts=projects(40, 40, 35)))
    assert d.status == "runoff_pending"
    assert d.selected == []
    assert d.tied == ["P01", "P02"]
    assert d.runoff_places == 1


def test_tie_entirely_inside_places_no_runoff():
    # k=3: P01 and P02 tie at 45 but both fit; P03 the unique third.
    d = decide_round(facts(members=60, places=3, counts=projects(45, 45, 40, 35)))
    assert d.status == "decided"
    assert d.selected == ["P01", "P02", "P03"]
    assert d.tied == [] and d.runoff_places == 0


def test_tie_exactly_filling_last_places_no_runoff():
    d = decide_round(facts(members=60, places=3, counts=projects(50, 40, 40, 35)))
    assert d.status == "decided"
    assert d.selected == ["P01", "P02", "P03"]


def test_tie_below_cutoff_no_runoff():
    d = decide_round(facts(members=60, places=2, counts=projects(50, 45, 40, 40)))
    assert d.status == "decided"
    assert d.selected == ["P01", "P02"]
    assert d.tied == []


def test_tie_among_failing_projects_is_not_a_runoff():
    # Only P01 passes; P02 and P03 tie at 30 (exactly half of 60): not passing, so no runoff.
    d = decide_round(facts(members=60, places=2, counts=projects(40, 30, 30)))
    assert d.status == "decided"
    assert d.selected == ["P01"]
    assert d.tied == []
    assert d.shortfall == 1


def test_shortfall_when_fewer_than_k_pass():
    d = decide_round(facts(members=60, places=10, counts=projects(31, 29, 50, 10, 45)))
    assert d.status == "decided"
    assert d.selected == ["P03", "P05", "P01"]
    assert d.shortfall == 7
    d0 = decide_round(facts(members=60, places=2, counts=projects(1, 2)))
    assert d0.selected == [] and d0.shortfall == 2 and d0.status == "decided"


def test_equal_candidates_and_places():
    d = decide_round(facts(members=60, places=3, counts=projects(40, 40, 40)))
    assert d.status == "decided"
    assert d.selected == ["P01", "P02", "P03"]


def test_runoff_round_same_rules():
    # Runoff for 2 places among three tied: a ballot with 3 fors is invalid; must still pass 2*for > N.
    keys = ["P01", "P03", "P04"]
    ballots = ([{"P01": "for", "P03": "for"}] * 31 + [{"P04": "for", "P03": "for"}] * 10
               + [{"P01": "for", "P03": "for", "P04": "for"}] * 5)
    bc = count_ballots(keys, ballots, places=2)
    assert (bc.valid, bc.invalid) == (41, 5)
    d = decide_round(facts(members=60, present=50, issued=50, returned=46, valid=bc.valid,
                           invalid=bc.invalid, places=2, counts=bc.candidates))
    assert [c.for_ for c in d.candidates] == [31, 41, 10]
    assert d.selected == ["P03", "P01"]
    assert d.status == "decided"


def test_selection_with_base_present_and_two_thirds():
    # base present = 45: two thirds = 30
    d = decide_round(facts(members=60, present=45, issued=45, returned=45, places=2,
                           counts=projects(30, 29, 44), rule=Rule("present", "two_thirds")))
    assert d.base == 45
    assert [c.passed for c in d.candidates] == [True, False, True]
    assert d.selected == ["P03", "P01"]


def test_select_top_direct():
    s = select_top(projects(9, 8, 8, 7), 2)
    assert (s.selected, s.tied, s.runoff_places, s.shortfall) == (["P01"], ["P02", "P03"], 1, 0)
    s = select_top(projects(9, 8), 3)
    assert (s.selected, s.tied, s.runoff_places, s.shortfall) == (["P01", "P02"], [], 0, 1)
    s = select_top([], 2)
    assert (s.selected, s.shortfall) == ([], 2)


# --- §5.2 appointment --------------------------------------------------------------------

def test_appointment_each_nominee_decided_separately():
    # Standing committee N=35, 30 present: each needs 18 of all 35 members.
    d = decide_round(facts("appointment", members=35, present=30,
                           quorum=quorum_met("standing_committee", 35, 30), issued=30, returned=30,
                           counts=[cc("N1", 18, 10, 2), cc("N2", 17, 10, 3), cc("N3", 30)]))
    assert d.status == "decided"
    assert [(c.key, c.passed) for c in d.candidates] == [("N1", True), ("N2", False), ("N3", True)]
    assert all(c.selected is None for c in d.candidates)
    assert d.selected == [] and d.passed is None
    assert d.base == 35


def test_appointment_even_membership_exact_half_fails():
    d = decide_round(facts("appointment", members=34, present=34, quorum=True, issued=34,
                           returned=34, counts=[cc("N1", 17, 17)]))
    assert d.candidates[0].passed is False


def test_appointment_combined_ballot_has_no_over_selection():
    bc = count_ballots(["N1", "N2", "N3"], [{"N1": "for", "N2": "for", "N3": "for"}] * 3, places=None)
    assert (bc.valid, bc.invalid) == (3, 0)
    assert [c.for_ for c in bc.candidates] == [3, 3, 3]


# --- §5.3 resolution ---------------------------------------------------------------------

def test_resolution_passed_via_motion():
    d = decide_round(facts("resolution", members=60, present=55, issued=55, returned=55,
                           counts=[cc("motion", 31, 20, 4)]))
    assert (d.status, d.passed) == ("decided", True)
    assert d.candidates[0].passed is True and d.candidates[0].selected is None
    d = decide_round(facts("resolution", members=60, present=55, issued=55, returned=55,
                           counts=[cc("motion", 30, 20, 5)]))
    assert d.passed is False


def test_resolution_needs_motion_key():
    d = decide_round(facts("resolution", counts=[cc("other", 60)]))
    assert d.passed is False


# --- bad inputs --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(members=-1),
    dict(present=-1),
    dict(issued=-1),
    dict(returned=-1, valid=-1),
    dict(invalid=-1, valid=51),
    dict(valid=49, invalid=0),        # valid + invalid != returned
    dict(valid=48, invalid=1),
    dict(kind="referendum"),          # unknown item kind
    dict(places=0),                   # livelihood_projects needs places >= 1
    dict(places=None),
])
def test_decide_round_bad_inputs(kwargs):
    kind = kwargs.pop("kind", "livelihood_projects")
    kw = dict(members=60, present=50, quorum=True, issued=50, returned=50, places=2,
              counts=projects(40, 35))
    kw.update(kwargs)
    with pytest.raises(RuleError):
        decide_round(facts(kind, **kw))


def test_decide_round_negative_candidate_count_refused():
    with pytest.raises(RuleError):
        decide_round(facts("resolution", counts=[cc("motion", -1)]))


def test_round_facts_unknown_base_refused():
    with pytest.raises(RuleError):
        facts("resolution", counts=[cc("motion", 40)], rule=Rule(base="seated"))


def test_decide_round_present_exceeding_members_refused():
    with pytest.raises(RuleError):
        decide_round(facts("resolution", members=60, present=61, quorum=True, issued=61,
                           returned=61, counts=[cc("motion", 40)]))
