"""Worked examples and properties for the election rules (RULES.md §5.4, 组织法 art. 25–30, 47)."""
from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service.rules import RuleError
from ballot_service.rules.election import (
    ANOTHER,
    DECIDED,
    FIRST,
    PRELIMINARY,
    QUORUM_NOT_MET,
    RUNOFF_PENDING,
    VOID,
    ElectionCount,
    PersonTally,
    RoundFacts,
    candidate_range,
    check_slate,
    combine,
    count_ballots,
    decide_preliminary,
    decide_revote,
    decide_round,
    normalise_name,
    read_ballot,
    write_in_key,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tallies(*fors, prefix="C"):
    return tuple(PersonTally(f"{prefix}{i + 1:02d}", f) for i, f in enumerate(fors))


def facts(fors, seats, members=170, present=158, quorum=True, issued=None, valid=None, invalid=0,
          write_ins=()):
    count = ElectionCount(valid if valid is not None else present, invalid, tallies(*fors),
                          tuple(PersonTally(write_in_key(n), f) for n, f in write_ins))
    return RoundFacts(members, present, quorum, present if issued is None else issued, seats, count)


# --- 差额 (art. 27, 29 ¶3, 30) -----------------------------------------------------------------

@pytest.mark.parametrize("office,seats,nominees,status", [
    ("principal", 1, 2, "ok"),
    ("principal", 1, 1, "ok"),            # 等额 when only one is nominated
    ("principal", 1, 3, "preliminary"),
    ("principal", 1, 0, "refused"),
    ("vice", 4, 5, "ok"), ("vice", 4, 7, "ok"), ("vice", 4, 8, "preliminary"), ("vice", 4, 4, "refused"),
    ("committee_member", 1, 2, "ok"),     # k = 1 → 2 candidates
    ("committee_member", 12, 14, "ok"),   # ceil(12/10) = 2 = floor(12/5): exactly two more
    ("committee_member", 12, 13, "refused"), ("committee_member", 12, 15, "preliminary"),
    ("committee_member", 14, 16, "ok"), ("committee_member", 14, 17, "preliminary"),
    ("committee_member", 15, 17, "ok"), ("committee_member", 15, 18, "ok"),
    ("committee_member", 30, 33, "ok"), ("committee_member", 30, 36, "ok"),
    ("committee_member", 30, 37, "preliminary"), ("committee_member", 30, 32, "refused"),
    ("deputy_higher", 10, 12, "ok"), ("deputy_higher", 10, 15, "ok"),
    ("deputy_higher", 10, 16, "preliminary"), ("deputy_higher", 10, 11, "refused"),
    ("deputy_higher", 1, 2, "ok"),        # no integer in [1/5, 1/2]: one more, as for 委员
])
def test_slate(office, seats, nominees, status):
    assert check_slate(office, seats, nominees).status == status


def test_committee_member_range_in_integers():
    # ceil(k/10) <= extra <= max(ceil(k/10), floor(k/5)) (RULES.md §5.4); its aside "one more
    # for k <= 14" does not follow from the formula for k = 10..14 — the formula is what we apply
    for k in range(1, 200):
        lo, hi, _ = candidate_range("committee_member", k)
        extra_lo, extra_hi = lo - k, hi - k
        assert 10 * extra_lo >= k and 10 * (extra_lo - 1) < k
        assert extra_hi == max(extra_lo, k // 5)
        assert extra_lo <= extra_hi


def test_deputy_range_is_a_fifth_to_a_half():
    for k in range(2, 200):
        lo, hi, article = candidate_range("deputy_higher", k)
        assert 5 * (lo - k) >= k and 2 * (hi - k) <= k and article == "选举法第三十一条"


def test_refusal_names_the_article():
    c = check_slate("vice", 2, 2)
    assert c.status == "refused" and "组织法第二十七条" in c.message and c.min_candidates == 3
    c = check_slate("committee_member", 1, 1, another=True)
    assert c.status == "refused" and "第二十九条第三款" in c.article
    c = check_slate("deputy_higher", 10, 10)
    assert c.status == "refused" and "选举法第三十一条" in c.message


def test_by_election_may_be_equal_or_more():
    assert check_slate("vice", 2, 2, by_election=True).status == "ok"
    assert check_slate("vice", 2, 9, by_election=True).status == "ok"
    c = check_slate("vice", 2, 1, by_election=True)
    assert c.status == "refused" and "第三十条" in c.article


def test_unknown_office_and_no_seats():
    with pytest.raises(RuleError):
        check_slate("mayor", 1, 2)
    with pytest.raises(RuleError):
        check_slate("vice", 0, 2)


# --- ballots --------------------------------------------------------------------------------

CANDS = ["C01", "C02", "C03"]


def test_for_marks_plus_write_ins_over_seats_is_invalid():
    assert read_ballot({"C01": "for", "C02": "for"}, CANDS, 2).valid
    assert not read_ballot({"C01": "for", "C02": "for"}, CANDS, 2, ["张三"]).valid
    assert read_ballot({"C01": "for", "C02": "against"}, CANDS, 2, ["张三"]).valid
    assert read_ballot({}, CANDS, 2).valid  # blank is valid
    assert not read_ballot({}, CANDS, 2, ["张三", "李四", "王五"]).valid


def test_unmarked_is_abstain_and_void_is_not_a_for():
    b = read_ballot({"C01": "void", "C02": "for"}, CANDS, 1)
    assert b.valid and b.marks == (("C01", "void"), ("C02", "for"), ("C03", "abstain"))


def test_write_in_of_a_listed_candidate_is_no_vote():
    b = read_ballot({"C01": "for", "C02": "for"}, CANDS, 2, ["丁一"], listed=["丁一", "马力"])
    assert b.valid and b.write_ins == () and b.no_vote_lines == (("丁一", "listed_candidate"),)
    b = read_ballot({}, CANDS, 2, ["C03"])  # a key is an identity of a listed candidate too
    assert b.no_vote_lines == (("C03", "listed_candidate"),)


def test_write_in_must_be_on_the_roster_for_committee_members():
    b = read_ballot({}, CANDS, 2, ["M0101", "外人"], eligible={"M0101", "M0102"})
    assert b.write_ins == ("M0101",) and b.no_vote_lines == (("外人", "not_eligible"),)
    b = read_ballot({}, CANDS, 2, ["外人"])  # government office: any voter may be named
    assert b.write_ins == ("外人",)


def test_write_ins_are_nfc_normalised_and_counted_once_per_ballot():
    decomposed = unicodedata.normalize("NFD", "Zoë")
    assert decomposed != "Zoë" and normalise_name(decomposed) == "Zoë"
    b = read_ballot({}, CANDS, 3, [decomposed, " Zoë ", ""])
    assert b.write_ins == ("Zoë",)
    assert [r for _, r in b.no_vote_lines] == ["repeated", "blank"]
    c = count_ballots([read_ballot({}, CANDS, 3, ["Zoë"]), b, read_ballot({}, CANDS, 3, ["安"])], CANDS)
    assert [(w.name, w.for_) for w in c.write_ins] == [("Zoë", 2), ("安", 1)]


def test_no_write_ins_in_a_revote_and_unknown_marks_refused():
    with pytest.raises(RuleError, match="re-vote"):
        read_ballot({}, CANDS, 1, ["张三"], write_ins_allowed=False)
    with pytest.raises(RuleError):
        read_ballot({"C09": "for"}, CANDS, 1)
    with pytest.raises(RuleError):
        read_ballot({"C01": "yes"}, CANDS, 1)


def test_count_skips_invalid_ballots_and_orders_write_ins():
    bs = [read_ballot({"C01": "for"}, CANDS, 1, ["乙"]),      # invalid: 2 > 1
          read_ballot({"C01": "for"}, CANDS, 1),
          read_ballot({"C02": "against"}, CANDS, 1, ["乙"]),
          read_ballot({}, CANDS, 1, ["甲"])]
    c = count_ballots(bs, CANDS)
    assert (c.valid, c.invalid, c.returned) == (3, 1, 4)
    assert [(p.key, p.for_, p.against, p.abstain) for p in c.candidates] == [
        ("C01", 1, 0, 2), ("C02", 0, 1, 2), ("C03", 0, 0, 3)]
    # equal `for`: by name (code point order: 乙 U+4E59 before 甲 U+7532)
    assert [(w.key, w.for_) for w in c.write_ins] == [("write_in:乙", 1), ("write_in:甲", 1)]


# --- who is elected (art. 25, 29) --------------------------------------------------------------

def test_round_one_needs_more_than_half_of_all_deputies():
    r = decide_round(facts([86, 85, 140], 3))  # N = 170: 2*86 = 172 > 170; 170 is not
    assert r.status == DECIDED
    assert r.elected == ("C03", "C01") and r.unfilled == 1
    assert [p.passed for p in r.persons] == [True, False, True]


def test_more_pass_than_seats_the_most_votes_win():
    r = decide_round(facts([100, 120, 90, 110], 2))
    assert r.elected == ("C02", "C04") and r.unfilled == 0 and r.tied == ()
    assert [p.elected for p in r.persons] == [False, True, False, True]


def test_tie_at_the_last_seat_goes_to_a_revote_among_the_tied():
    r = decide_round(facts([120, 100, 100, 100, 90], 2))
    assert r.status == RUNOFF_PENDING
    assert r.elected == ("C01",) and r.tied == ("C02", "C03", "C04") and r.revote_seats == 1
    assert r.unfilled == 0


def test_tie_that_fits_the_seats_is_no_revote():
    r = decide_round(facts([120, 100, 100, 90], 3))
    assert r.status == DECIDED and r.elected == ("C01", "C02", "C03")


def test_revote_most_votes_win_without_majority():
    # 3 tied for 1 seat; 40 of 170 is far from a majority, still elected (art. 29 ¶1)
    r = decide_revote(facts([40, 30, 20], 1))
    assert r.status == DECIDED and r.elected == ("C01",) and r.persons[0].passed is None
    again = decide_revote(facts([40, 40, 20], 1))
    assert again.status == RUNOFF_PENDING and again.tied == ("C01", "C02") and again.revote_seats == 1
    with pytest.raises(RuleError):
        decide_revote(facts([40, 30], 2))  # a re-vote is among more tied than seats
    with pytest.raises(RuleError):
        decide_revote(facts([40, 30], 1, write_ins=[("张三", 1)]))


def test_revote_ballot_with_more_for_than_seats_left_is_invalid():
    assert not read_ballot({"C01": "for", "C02": "for"}, ["C01", "C02", "C03"], 1,
                           write_ins_allowed=False).valid


def test_write_in_can_be_elected():
    r = decide_round(facts([150, 40], 2, write_ins=[("张三", 90), ("李四", 12)]))
    assert r.elected == ("C01", "write_in:张三")
    assert [(p.key, p.passed, p.elected) for p in r.persons][2:] == [
        ("write_in:张三", True, True), ("write_in:李四", False, False)]


def test_another_election_same_majority_rule():
    r = decide_round(facts([85, 60], 1), kind=ANOTHER)
    assert r.kind == ANOTHER and r.elected == () and r.unfilled == 1
    r = decide_round(facts([120, 30], 1), kind=ANOTHER)
    assert r.elected == ("C01",) and r.unfilled == 0


def test_quorum_and_over_return():
    r = decide_round(facts([150, 150], 2, quorum=False))
    assert r.status == QUORUM_NOT_MET and r.elected == () and not any(p.elected for p in r.persons)
    r = decide_round(facts([150, 150], 2, issued=157))  # R = 158 > I = 157
    assert r.status == VOID and r.elected == ()
    r = decide_round(facts([150, 150], 2, issued=160))
    assert r.status == DECIDED and r.not_voted == 2


def test_preliminary_ranks_without_threshold():
    r = decide_preliminary(facts([10, 50, 30, 30, 5], 3))
    assert r.kind == PRELIMINARY and r.status == DECIDED
    assert r.elected == ("C02", "C03", "C04") and r.unfilled == 0
    r = decide_preliminary(facts([10, 50, 30, 30, 30], 3))
    assert r.status == RUNOFF_PENDING and r.elected == ("C02",) and r.tied == ("C03", "C04", "C05")
    assert r.revote_seats == 2


def test_combine_rounds():
    r1 = decide_round(facts([120, 100, 100, 60, 90], 3))  # 90 passes too but ranks 4th
    assert r1.elected == ("C01", "C02", "C03")
    out = combine(3, [r1])
    assert out.elected == ("C01", "C02", "C03") and out.unfilled == 0 and out.pending is None

    r1 = decide_round(facts([120, 100, 100, 60], 2))
    rv = decide_revote(RoundFacts(170, 158, True, 158, 1,
                                  ElectionCount(158, 0, (PersonTally("C02", 70), PersonTally("C03", 80)), ())))
    out = combine(2, [r1, rv])
    assert out.elected == ("C01", "C03") and out.pending is None

    r1 = decide_round(facts([120, 60, 50], 2))
    assert combine(2, [r1]).pending == "another" and combine(2, [r1]).unfilled == 1
    def another(issued=158):
        count = ElectionCount(158, 0, (PersonTally("C02", 120), PersonTally("C03", 60)), ())
        return decide_round(RoundFacts(170, 158, True, issued, 1, count), kind=ANOTHER)

    void = another(issued=100)  # R > I: this 另行选举 is held again
    assert void.status == VOID
    out = combine(2, [r1, void])
    assert out.pending == "repeat" and out.elected == ("C01",) and out.unfilled == 1
    out = combine(2, [r1, void, another()])
    assert out.elected == ("C01", "C02") and out.unfilled == 0 and out.pending is None
    with pytest.raises(RuleError):
        combine(2, [r1, decide_round(facts([120, 60], 2), kind=ANOTHER)])  # 2 ≠ 1 unfilled
    with pytest.raises(RuleError):
        combine(2, [decide_revote(facts([70, 60, 50], 1))])


# --- properties -------------------------------------------------------------------------------

@st.composite
def rounds(draw):
    members = draw(st.integers(1, 200))
    present = draw(st.integers(0, members))
    n = draw(st.integers(1, 10))
    seats = draw(st.integers(1, n + 2))
    pool = draw(st.lists(st.integers(0, present), min_size=1, max_size=3))  # frequent ties
    fors = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    w = draw(st.lists(st.tuples(st.sampled_from(["甲", "乙", "丙"]), st.sampled_from(pool)),
                      max_size=3, unique_by=lambda x: x[0]))
    return members, present, seats, fors, w


def _round_facts(members, present, seats, fors, w):
    cands = tallies(*fors)
    wins = tuple(PersonTally(write_in_key(name), f) for name, f in w)
    return RoundFacts(members, present, True, present, seats, ElectionCount(present, 0, cands, wins))


@FAST
@given(rounds(), st.sampled_from([FIRST, ANOTHER]))
def test_nobody_elected_without_a_majority_of_all_deputies(case, kind):
    members, present, seats, fors, w = case
    r = decide_round(_round_facts(*case), kind)
    by_key = {p.key: p for p in r.persons}
    for key in (*r.elected, *r.tied):
        assert 2 * by_key[key].for_ > members
    for p in r.persons:
        assert p.passed == (2 * p.for_ > members)
        assert p.elected == (p.key in r.elected)


@FAST
@given(rounds(), st.sampled_from([FIRST, ANOTHER]))
def test_never_more_elected_than_seats(case, kind):
    members, present, seats, fors, w = case
    r = decide_round(_round_facts(*case), kind)
    assert len(r.elected) + r.revote_seats + r.unfilled == seats
    assert len(set(r.elected)) == len(r.elected) <= seats
    passing = [p for p in r.persons if p.passed]
    if r.tied:
        assert r.status == RUNOFF_PENDING and r.unfilled == 0
        assert len(r.tied) > r.revote_seats >= 1
        assert len({p.for_ for p in r.persons if p.key in r.tied}) == 1
    else:
        assert len(r.elected) == min(seats, len(passing))
    # everyone elected has strictly more votes than every passing person left out
    by_key = {p.key: p for p in r.persons}
    left_out = [p for p in passing if p.key not in r.elected]
    for e in r.elected:
        assert all(by_key[e].for_ > p.for_ for p in left_out)


@FAST
@given(rounds(), st.data())
def test_revote_only_among_the_tied(case, data):
    members, present, seats, fors, w = case
    r1 = decide_round(_round_facts(*case))
    if not r1.tied:
        return
    fors2 = data.draw(st.lists(st.integers(0, present), min_size=len(r1.tied), max_size=len(r1.tied)))
    count = ElectionCount(present, 0, tuple(PersonTally(k, f) for k, f in zip(r1.tied, fors2)), ())
    rv = decide_revote(RoundFacts(members, present, True, present, r1.revote_seats, count))
    assert set(rv.elected) <= set(r1.tied) and set(rv.tied) <= set(r1.tied)
    assert len(rv.elected) + rv.revote_seats == r1.revote_seats
    out = combine(seats, [r1, rv])
    assert len(out.elected) <= seats
    assert set(out.elected) <= set(r1.elected) | set(r1.tied)
    if not rv.tied:
        assert len(out.elected) == seats  # a re-vote (no threshold) fills every seat left
        by_key = {p.key: p for p in rv.persons}
        losers = [k for k in r1.tied if k not in rv.elected]
        for e in rv.elected:
            assert all(by_key[e].for_ > by_key[k].for_ for k in losers)


@FAST
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(CANDS), st.sampled_from(["for", "against", "abstain", "void"])),
                          st.lists(st.sampled_from(["甲", "乙", "C01", " 甲"]), max_size=3)), max_size=20),
       st.integers(1, 3))
def test_count_totals(raw, seats):
    bs = [read_ballot(m, CANDS, seats, w) for m, w in raw]
    c = count_ballots(bs, CANDS)
    assert c.valid + c.invalid == len(bs)
    for p in c.candidates:
        assert p.for_ + p.against + p.abstain + p.void == c.valid
    for b in bs:
        assert b.valid == (sum(1 for _, m in b.marks if m == "for") + len(b.write_ins) <= seats)
        assert "C01" not in b.write_ins
