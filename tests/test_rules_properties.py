"""Property tests (Hypothesis) for the pure rules engine."""
from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service import rules
from ballot_service.rules import (
    CandidateCount,
    RoundFacts,
    Rule,
    ballot_valid,
    count_ballots,
    decide_round,
    meets_majority,
    minimum_votes,
    quorum_met,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MARK = st.sampled_from(["for", "against", "abstain", "void"])


@st.composite
def project_rounds(draw):
    """A livelihood_projects round with quorum met and R <= I."""
    members = draw(st.integers(1, 80))
    present = draw(st.integers(0, members))
    n = draw(st.integers(1, 8))
    places = draw(st.integers(1, n + 2))
    # `for` counts drawn from a few values so that ties (also at the cut-off) are frequent
    pool = draw(st.lists(st.integers(0, members), min_size=1, max_size=3))
    fors = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    valid = draw(st.integers(0, present))
    rule = Rule(draw(st.sampled_from(["members", "present", "valid"])),
                draw(st.sampled_from(["half", "two_thirds"])))
    return dict(members=members, present=present, places=places, fors=fors, valid=valid, rule=rule)


def make_facts(p, fors=None):
    fors = p["fors"] if fors is None else fors
    counts = [CandidateCount(f"P{i:02d}", f) for i, f in enumerate(fors)]
    return RoundFacts("livelihood_projects", p["members"], p["present"], True, p["present"],
                      p["valid"], p["valid"], 0, p["places"], counts, p["rule"])


def base_of(p):
    return {"members": p["members"], "present": p["present"], "valid": p["valid"]}[p["rule"].base]


@FAST
@given(project_rounds())
def test_selection_invariants(p):
    d = decide_round(make_facts(p))
    base = base_of(p)
    by_key = {c.key: c for c in d.candidates}
    passing = {c.key for c in d.candidates if c.passed}
    # passed agrees with the threshold
    for c in d.candidates:
        assert c.passed == meets_majority(c.for_, base, p["rule"].majority)
    # selected always pass; never more than places
    assert set(d.selected) <= passing
    assert len(d.selected) <= p["places"]
    assert len(set(d.selected)) == len(d.selected)
    # rank order: non-increasing `for`
    fs = [by_key[k].for_ for k in d.selected]
    assert fs == sorted(fs, reverse=True)
    # candidate flags agree with the list
    assert {c.key for c in d.candidates if c.selected} == set(d.selected)
    if d.tied:
        assert d.status == "runoff_pending"
        assert len(d.selected) + d.runoff_places == p["places"]
        assert set(d.tied) <= passing and not (set(d.tied) & set(d.selected))
        assert len(d.tied) > d.runoff_places >= 1
        assert len({by_key[k].for_ for k in d.tied}) == 1
        tie_for = by_key[d.tied[0]].for_
        assert all(by_key[k].for_ > tie_for for k in d.selected)
        # tied are in candidate order
        order = [c.key for c in d.candidates]
        assert d.tied == sorted(d.tied, key=order.index)
        assert d.shortfall == 0
    else:
        assert d.status == "decided"
        assert d.runoff_places == 0
        assert len(d.selected) == min(p["places"], len(passing))
        assert d.shortfall == p["places"] - len(d.selected)
    # every passing candidate left out has strictly fewer `for` than every selected one
    rest = passing - set(d.selected) - set(d.tied)
    for k in rest:
        for s in d.selected:
            assert by_key[k].for_ < by_key[s].for_
        for t in d.tied:
            assert by_key[k].for_ < by_key[t].for_


@FAST
@given(project_rounds(), st.data())
def test_one_more_for_vote_never_drops_a_selected_candidate(p, data):
    before = decide_round(make_facts(p))
    if not before.selected:
        return
    key = data.draw(st.sampled_from(before.selected))
    i = int(key[1:])
    fors = list(p["fors"])
    fors[i] += 1
    after = decide_round(make_facts(p, fors))
    assert key in after.selected or key in after.tied


@FAST
@given(project_rounds(), st.data())
def test_one_more_for_vote_to_tied_or_passing_candidate(p, data):
    """A candidate that was tied at the cut-off and gains one vote is selected outright."""
    before = decide_round(make_facts(p))
    if not before.tied:
        return
    key = data.draw(st.sampled_from(before.tied))
    fors = list(p["fors"])
    fors[int(key[1:])] += 1
    after = decide_round(make_facts(p, fors))
    assert key in after.selected


@FAST
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_meets_majority_exact_fractions(y, n):
    assert meets_majority(y, n, "half") == (Fraction(y) > Fraction(n, 2))
    assert meets_majority(y, n, "two_thirds") == (Fraction(y) >= Fraction(2 * n, 3))


@FAST
@given(st.integers(0, 10_000), st.sampled_from(["half", "two_thirds"]))
def test_minimum_votes_is_least_passing(n, majority):
    m = minimum_votes(n, majority)
    assert meets_majority(m, n, majority)
    assert m == 0 or not meets_majority(m - 1, n, majority)


@FAST
@given(st.integers(0, 10_000), st.data())
def test_quorum_equals_fraction_form(n, data):
    p = data.draw(st.integers(0, n))
    assert quorum_met("congress", n, p) == (Fraction(p) >= Fraction(2 * n, 3))
    assert quorum_met("standing_committee", n, p) == (Fraction(p) > Fraction(n, 2))


KEYS = ["A", "B", "C", "D", "E"]
BALLOTS = st.lists(st.dictionaries(st.sampled_from(KEYS), MARK, max_size=5), max_size=40)


@FAST
@given(BALLOTS, st.one_of(st.none(), st.integers(0, 5)))
def test_count_ballots_totals(ballots, places):
    bc = count_ballots(KEYS, ballots, places)
    assert bc.valid + bc.invalid == len(ballots) == bc.returned
    for c in bc.candidates:
        assert c.for_ + c.against + c.abstain + c.void == bc.valid
    expected_invalid = 0 if places is None else sum(
        1 for b in ballots if sum(1 for m in b.values() if m == "for") > places)
    assert bc.invalid == expected_invalid
    for b in ballots:
        nfor = sum(1 for m in b.values() if m == "for")
        assert ballot_valid(b, places) == (places is None or nfor <= places)
    # `for` counts are exactly the fors on valid ballots
    for c in bc.candidates:
        assert c.for_ == sum(1 for b in ballots if b.get(c.key) == "for" and ballot_valid(b, places))


@FAST
@given(BALLOTS, st.integers(1, 5), st.integers(0, 60), st.randoms(use_true_random=False))
def test_decision_deterministic_and_order_invariant(ballots, places, extra_members, rnd):
    members = len(ballots) + extra_members
    present = len(ballots)

    def decide(bs):
        bc = count_ballots(KEYS, bs, places)
        return decide_round(RoundFacts("livelihood_projects", members, present,
                                       quorum_met("congress", members, present), present,
                                       bc.returned, bc.valid, bc.invalid, places, bc.candidates))

    first = decide(ballots)
    assert decide(ballots) == first
    shuffled = list(ballots)
    rnd.shuffle(shuffled)
    assert decide(shuffled) == first


@given(st.sampled_from(["congress", "standing_committee"]), st.integers(0, 5000), st.data())
def test_quorum_minimum_is_the_quorum_rule(kind, members, data):
    present = data.draw(st.integers(0, members))
    assert rules.quorum_met(kind, members, present) == (present >= rules.quorum_minimum(kind, members))
    zh, en = rules.quorum_sentence(kind, members, present)
    assert f"应到 {members} 人" in zh and f"为 {rules.quorum_minimum(kind, members)} 人" in zh
    assert zh.endswith("符合法定人数") == rules.quorum_met(kind, members, present)
