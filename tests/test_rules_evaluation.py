"""Worked examples and properties for the evaluation rules (RULES.md §5.5)."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service.rules import Rule, RuleError
from ballot_service.rules.evaluation import (
    COMPETENCE_OPTIONS,
    GRADE_BY_RATE,
    SATISFACTION_OPTIONS,
    EvaluationCount,
    EvaluationFacts,
    RateThresholds,
    SubjectCount,
    check_options,
    count_ballots,
    decide_evaluation,
    format_rate,
    grade_by_majority,
    normalise_ballot,
    paper_mark,
    rate_hundredths,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = SATISFACTION_OPTIONS


def subject(key, *counts, abstain=0, void=0, options=S):
    return SubjectCount(key, tuple(options), tuple(counts), abstain, void)


def facts(*subjects, members=60, present=54, quorum=True, issued=None, valid=None, invalid=0,
          rule=None, **kw):
    if valid is None:
        s = subjects[0]
        valid = sum(s.counts) + s.abstain + s.void
    count = EvaluationCount(valid, invalid, tuple(subjects))
    return EvaluationFacts(members, present, quorum, present if issued is None else issued, count,
                           rule or Rule(), **kw)


# --- ballots --------------------------------------------------------------------------------

def test_unmarked_subject_is_abstention_and_ballot_never_invalid():
    assert normalise_ballot({"P01": "satisfied"}, ["P01", "P02"]) == {"P01": "satisfied", "P02": "abstain"}
    c = count_ballots(["P01", "P02"], [{}, {"P01": "dissatisfied", "P02": "dissatisfied"}])
    assert (c.valid, c.invalid, c.returned) == (2, 0, 2)
    assert c.subjects[0].as_dict() == {"satisfied": 0, "basically_satisfied": 0, "dissatisfied": 1,
                                       "abstain": 1, "void": 0}


def test_ballot_refuses_unknown_subject_option_and_void_off_paper():
    with pytest.raises(RuleError, match="not on this ballot"):
        normalise_ballot({"P09": "satisfied"}, ["P01"])
    with pytest.raises(RuleError, match="must be one of"):
        normalise_ballot({"P01": "for"}, ["P01"])
    with pytest.raises(RuleError):
        normalise_ballot({"P01": "void"}, ["P01"], paper=False)
    assert normalise_ballot({"P01": "void"}, ["P01"], paper=True) == {"P01": "void"}


def test_paper_two_options_for_one_subject_void_that_subject_only():
    assert paper_mark([]) == "abstain"
    assert paper_mark(["satisfied"]) == "satisfied"
    assert paper_mark(["satisfied", "dissatisfied"]) == "void"
    c = count_ballots(["P01", "P02"], [{"P01": paper_mark(["satisfied", "dissatisfied"]),
                                        "P02": paper_mark(["satisfied"])}])
    assert c.valid == 1
    assert (c.subjects[0].void, c.subjects[1].count("satisfied")) == (1, 1)


def test_options_best_first_checked():
    assert check_options(COMPETENCE_OPTIONS) == ("excellent", "competent", "basically_competent", "incompetent")
    for bad in (["only"], ["a", "a"], ["a", "abstain"], ["grade", "b"], ["", "b"]):
        with pytest.raises(RuleError):
            check_options(bad)


# --- grade: cumulative majority of the base ---------------------------------------------------

@pytest.mark.parametrize("counts,base,grade", [
    ((31, 0, 0), 60, "satisfied"),             # 62 > 60
    ((30, 30, 0), 60, "basically_satisfied"),  # 60 not > 60; 120 > 60
    ((30, 1, 0), 60, "basically_satisfied"),   # c2 = 31
    ((25, 5, 24), 60, "dissatisfied"),         # c2 = 30: exactly half is not more than half
    ((0, 0, 0), 60, "dissatisfied"),
    ((0, 0, 0), 0, "dissatisfied"),            # 0 > 0 is false
    ((1, 0, 0), 1, "satisfied"),
])
def test_grade_by_cumulative_majority(counts, base, grade):
    assert grade_by_majority(counts, S, base) == grade


def test_grade_four_options():
    # 优秀 10, 称职 15, 基本称职 10, 不称职 5 of N = 40: c1 = 10, c2 = 25 > 20 → 称职
    assert grade_by_majority((10, 15, 10, 5), COMPETENCE_OPTIONS, 40) == "competent"
    assert grade_by_majority((5, 5, 5, 25), COMPETENCE_OPTIONS, 40) == "incompetent"
    assert grade_by_majority((5, 5, 11, 19), COMPETENCE_OPTIONS, 40) == "basically_competent"


def test_base_options_present_and_valid():
    s = subject("P01", 28, 0, 0, abstain=22)
    assert decide_evaluation(facts(s)).subjects[0].grade == "dissatisfied"  # 56 < 60 members
    assert decide_evaluation(facts(s, rule=Rule("present"))).subjects[0].grade == "satisfied"  # 56 > 54
    assert decide_evaluation(facts(s, rule=Rule("valid"))).subjects[0].grade == "satisfied"  # 56 > 50


def test_two_thirds_majority_is_not_an_evaluation_option():
    with pytest.raises(RuleError, match="more than half"):
        decide_evaluation(facts(subject("P01", 1, 0, 0), rule=Rule("members", "two_thirds")))


# --- rate -------------------------------------------------------------------------------------

@pytest.mark.parametrize("positive,valid,hundredths,text", [
    (53, 54, 9815, "98.15"),    # 98.148… → 98.15
    (50, 54, 9259, "92.59"),    # 92.592…
    (30, 54, 5556, "55.56"),    # 55.555… rounds half up at the third decimal
    (31, 54, 5741, "57.41"),
    (54, 54, 10000, "100.00"),
    (0, 54, 0, "0.00"),
    (1, 8, 1250, "12.50"),
    (1, 16, 625, "6.25"),       # 6.25 exactly
    (1, 32, 313, "3.13"),       # 3.125 → half up → 3.13
    (1, 80000, 0, "0.00"),      # 0.125 hundredths → 0
])
def test_rate_half_up_from_integers(positive, valid, hundredths, text):
    assert rate_hundredths(positive, valid) == hundredths
    assert format_rate(hundredths) == text


def test_rate_exact_halves_round_up():
    # 10000*1/160 = 62.5 hundredths → 63 ("0.63")
    assert rate_hundredths(1, 160) == 63
    assert format_rate(rate_hundredths(1, 160)) == "0.63"
    # 10000*1/20000 = 0.5 hundredths → 1
    assert rate_hundredths(1, 20000) == 1


def test_rate_null_without_valid_ballots():
    assert rate_hundredths(0, 0) is None
    assert format_rate(None) is None
    d = decide_evaluation(facts(subject("P01", 0, 0, 0), valid=0, members=3, present=3))
    assert d.subjects[0].rate is None and d.subjects[0].rate_text is None
    assert d.subjects[0].grade == "dissatisfied"


def test_rate_counts_every_option_but_the_last_over_valid_ballots():
    # RULES.md §5.5: 满意率 55.56 % and 不满意 is a correct result when many abstain
    d = decide_evaluation(facts(subject("P06", 15, 15, 15, abstain=9)))
    o = d.subjects[0]
    assert (o.grade, o.rate_text) == ("dissatisfied", "55.56")
    d = decide_evaluation(facts(subject("X", 10, 15, 10, 5, options=COMPETENCE_OPTIONS), members=40,
                                present=40))
    assert d.subjects[0].rate_text == "87.50"  # (10 + 15 + 10) / 40


# --- rate-threshold variant --------------------------------------------------------------------

def test_grade_by_rate_thresholds():
    t = RateThresholds((("satisfied", 8000), ("basically_satisfied", 6000)))
    grades = []
    for positive in (44, 43, 33, 32):  # of 54: 81.48, 79.63, 61.11, 59.26
        s = subject("P", positive, 0, 54 - positive)
        d = decide_evaluation(facts(s, grading=GRADE_BY_RATE, thresholds=t))
        grades.append((d.subjects[0].rate_text, d.subjects[0].grade))
        assert d.grading == GRADE_BY_RATE and d.thresholds == t
    assert grades == [("81.48", "satisfied"), ("79.63", "basically_satisfied"),
                      ("61.11", "basically_satisfied"), ("59.26", "dissatisfied")]


def test_rate_threshold_compares_the_published_rate():
    # 7999.6 hundredths is published as 80.00 and graded by that figure
    t = RateThresholds((("satisfied", 8000),))
    s = subject("P", 19999, 0, 5001)  # 19999/25000 = 79.996 %
    d = decide_evaluation(facts(s, members=25000, present=25000, grading=GRADE_BY_RATE, thresholds=t))
    assert (d.subjects[0].rate_text, d.subjects[0].grade) == ("80.00", "satisfied")


def test_rate_thresholds_checked():
    s = subject("P", 1, 0, 0)
    for steps in ((), (("dissatisfied", 10),), (("basically_satisfied", 80), ("satisfied", 60)),
                  (("satisfied", 60), ("basically_satisfied", 60)), (("satisfied", 10001),)):
        with pytest.raises(RuleError):
            decide_evaluation(facts(s, grading=GRADE_BY_RATE, thresholds=RateThresholds(steps)))
    with pytest.raises(RuleError):
        decide_evaluation(facts(s, grading=GRADE_BY_RATE))
    with pytest.raises(RuleError):
        decide_evaluation(facts(s, thresholds=RateThresholds((("satisfied", 1),))))


# --- quorum, over-return -----------------------------------------------------------------------

def test_no_grade_without_quorum_or_when_void():
    s = subject("P01", 50, 3, 1)
    d = decide_evaluation(facts(s, quorum=False))
    assert d.status == "quorum_not_met" and d.subjects[0].grade is None and d.subjects[0].rate is None
    d = decide_evaluation(facts(s, issued=53))  # R = 54 > I = 53
    assert d.status == "void" and d.subjects[0].grade is None
    d = decide_evaluation(facts(s, issued=56))
    assert d.status == "decided" and d.not_voted == 2 and d.subjects[0].grade == "satisfied"


def test_counts_must_add_up_to_valid():
    with pytest.raises(RuleError, match="add up"):
        decide_evaluation(facts(subject("P01", 5, 0, 0), valid=6))


# --- properties -------------------------------------------------------------------------------

@st.composite
def subjects(draw, max_members=80):
    options = draw(st.sampled_from([S, COMPETENCE_OPTIONS, ("a", "b")]))
    members = draw(st.integers(0, max_members))
    valid = draw(st.integers(0, members))
    # split `valid` ballots into the options, abstain and void
    cuts = sorted(draw(st.lists(st.integers(0, valid), min_size=len(options) + 1,
                                max_size=len(options) + 1)))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [valid])]
    counts, abstain, void = tuple(parts[:len(options)]), parts[len(options)], parts[len(options) + 1]
    return members, valid, SubjectCount("P01", options, counts, abstain, void)


def _decide(members, valid, s, rule=None):
    count = EvaluationCount(valid, 0, (s,))
    return decide_evaluation(EvaluationFacts(members, members, True, members, count,
                                             rule or Rule())).subjects[0]


@FAST
@given(subjects(), st.data(), st.sampled_from(["members", "present", "valid"]))
def test_moving_a_vote_to_a_worse_option_never_improves_the_grade(case, data, base):
    members, valid, s = case
    better = [i for i in range(len(s.options) - 1) if s.counts[i] > 0]
    if not better:
        return
    i = data.draw(st.sampled_from(better))
    j = data.draw(st.integers(i + 1, len(s.options) - 1))
    moved = list(s.counts)
    moved[i] -= 1
    moved[j] += 1
    after_s = SubjectCount(s.key, s.options, tuple(moved), s.abstain, s.void)
    before = _decide(members, valid, s, Rule(base))
    after = _decide(members, valid, after_s, Rule(base))
    assert s.options.index(after.grade) >= s.options.index(before.grade)
    assert after.rate <= before.rate


@FAST
@given(subjects())
def test_rate_within_bounds_and_exact(case):
    members, valid, s = case
    o = _decide(members, valid, s)
    if valid == 0:
        assert o.rate is None
        return
    assert 0 <= o.rate <= 10000
    assert "0.00" <= o.rate_text.zfill(6) <= "100.00".zfill(6)
    exact = Fraction(10000 * s.positive, valid)
    assert abs(Fraction(o.rate) - exact) <= Fraction(1, 2)
    assert Fraction(o.rate) - exact != Fraction(-1, 2)  # a half rounds up, never down
    whole, frac = o.rate_text.split(".")
    assert len(frac) == 2 and int(whole) * 100 + int(frac) == o.rate


@FAST
@given(subjects(), st.integers(1, 30))
def test_abstaining_ballots_never_change_the_grade_with_base_members(case, extra):
    members, valid, s = case
    members += extra  # room for the extra ballots
    before = _decide(members, valid, s)
    more = SubjectCount(s.key, s.options, s.counts, s.abstain + extra, s.void)
    after = _decide(members, valid + extra, more)
    assert after.grade == before.grade


@FAST
@given(subjects())
def test_grade_agrees_with_the_cumulative_definition(case):
    members, valid, s = case
    o = _decide(members, valid, s)
    cumulative = [sum(s.counts[: j + 1]) for j in range(len(s.options))]
    firsts = [s.options[j] for j in range(len(s.options) - 1) if Fraction(cumulative[j]) > Fraction(members, 2)]
    assert o.grade == (firsts[0] if firsts else s.options[-1])


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(["P01", "P02", "P03"]),
                                st.sampled_from([*S, "abstain", "void"])), max_size=30))
def test_count_ballots_totals(ballots):
    c = count_ballots(["P01", "P02", "P03"], ballots)
    assert c.valid == len(ballots) and c.invalid == 0
    for s in c.subjects:
        assert sum(s.counts) + s.abstain + s.void == len(ballots)
        assert s.count("satisfied") == sum(1 for b in ballots if b.get(s.key) == "satisfied")
