"""Properties (Hypothesis) of the pure tally (rules/tally.py, evaluation_tally.py, election_tally.py):
the tellers' sheet and the ballots it was counted from give one result (RULES.md §3–§5), the
figures add up (§1: R = V + X, 未按 = I − R, the threshold is the least passing count), nobody
passes below the threshold, the order of the ballots does not matter, and one tallied round is
its own item result. Also: the one name normalisation (rules.normalise_name) is what
formats.names keeps of a name people type."""
from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service import rules
from ballot_service.errors import InvalidInput
from ballot_service.formats import names
from ballot_service.rules import evaluation as ev
from ballot_service.rules import evaluation_tally
from ballot_service.rules.tally import item_result, round_result
from ballot_service.vocab import ElectionStage, ItemKind, ItemStatus

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["A", "B", "C", "D"]
MARKS = ["for", "against", "abstain", "void"]


@st.composite
def rounds(draw, kinds=(ItemKind.LIVELIHOOD, ItemKind.APPOINTMENT, ItemKind.RESOLUTION)):
    """A round of one of `kinds` with quorum met and no more ballots returned than issued."""
    kind = draw(st.sampled_from(kinds))
    keys = [rules.MOTION] if kind == ItemKind.RESOLUTION else KEYS[:draw(st.integers(1, len(KEYS)))]
    ballots = draw(st.lists(st.dictionaries(st.sampled_from(keys), st.sampled_from(MARKS)), max_size=30))
    members = len(ballots) + draw(st.integers(0, 20))
    present = draw(st.integers(len(ballots), members))
    places = draw(st.integers(1, len(keys) + 1)) if kind == ItemKind.LIVELIHOOD else None
    rule = rules.Rule(draw(st.sampled_from(rules.BASES)), draw(st.sampled_from(rules.MAJORITIES)))
    return dict(item_kind=kind, candidate_keys=keys, places=places, rule=rule, members=members,
                present=present, quorum_met=True, issued=present), ballots


def _sheet(issued: int, valid: int, invalid: int, counts: dict[str, dict[str, int]]) -> dict:
    return {"issued": issued, "returned": valid + invalid, "invalid": invalid, "counts": counts}


@FAST
@given(rounds())
def test_a_tally_sheet_of_the_ballots_gives_their_result(case):
    facts, ballots = case
    counted = rules.count_ballots(facts["candidate_keys"], ballots, facts["places"])
    sheet = _sheet(facts["issued"], counted.valid, counted.invalid, {
        c.key: {"for": c.for_, "against": c.against, "abstain": c.abstain, "void": c.void}
        for c in counted.candidates})
    assert round_result(**facts, sheet=sheet) == round_result(**facts, ballots=ballots)


@FAST
@given(rounds())
def test_the_figures_add_up_and_nobody_passes_below_the_threshold(case):
    facts, ballots = case
    r = round_result(**facts, ballots=ballots)
    assert r["returned"] == r["valid"] + r["invalid"] == len(ballots)
    assert r["not_voted"] == r["issued"] - r["returned"]
    assert r["threshold_votes"] == rules.minimum_votes(r["threshold_base"], facts["rule"].majority)
    for c in r["candidates"]:
        assert c["for"] + c["against"] + c["abstain"] + c["void"] == r["valid"]
        assert c["passed"] == (c["for"] >= r["threshold_votes"])
        assert c["passed"] == rules.meets_majority(c["for"], r["threshold_base"], facts["rule"].majority)
    if facts["item_kind"] == ItemKind.LIVELIHOOD:
        passed = {c["key"] for c in r["candidates"] if c["passed"]}
        assert set(r["selected"]) <= passed and len(r["selected"]) <= facts["places"]
        assert (r["status"] == ItemStatus.RUNOFF_PENDING) == bool(r["tied"])


@FAST
@given(rounds(), st.randoms(use_true_random=False))
def test_the_order_of_the_ballots_does_not_matter(case, rnd):
    facts, ballots = case
    shuffled = list(ballots)
    rnd.shuffle(shuffled)
    assert round_result(**facts, ballots=shuffled) == round_result(**facts, ballots=ballots)


@FAST
@given(rounds())
def test_one_tallied_round_is_its_own_item_result(case):
    facts, ballots = case
    r = round_result(**facts, ballots=ballots)
    entry = item_result("x", facts["item_kind"], [r])
    assert entry["status"] == r["status"]
    assert [(c["key"], c["for"], c["passed"]) for c in entry["candidates"]] == \
        [(c["key"], c["for"], c["passed"]) for c in r["candidates"]]
    assert {k: entry[k] for k in ("issued", "returned", "valid", "invalid", "not_voted")} == \
        {k: r[k] for k in ("issued", "returned", "valid", "invalid", "not_voted")}
    if facts["item_kind"] == ItemKind.LIVELIHOOD:
        assert entry["selected"] == r["selected"]
    if facts["item_kind"] == ItemKind.RESOLUTION:
        assert entry["passed"] == r["passed"]


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(KEYS[:3]), st.sampled_from([*ev.SATISFACTION_OPTIONS, ev.ABSTAIN,
                                                                             ev.VOID])), max_size=30),
       st.integers(0, 10), st.sampled_from(["members", "present", "valid"]))
def test_an_evaluation_sheet_of_the_ballots_gives_their_result(ballots, extra, base):
    keys = KEYS[:3]
    scale = evaluation_tally.scale_of(None, None)
    members = len(ballots) + extra
    facts = dict(item_kind=ItemKind.EVALUATION, candidate_keys=keys, places=None, rule=rules.Rule(base),
                 members=members, present=members, quorum_met=True, issued=members, scale=scale)
    counted = ev.count_ballots(keys, ballots, scale["options"], paper=True)
    sheet = _sheet(members, counted.valid, counted.invalid, {s.key: s.as_dict() for s in counted.subjects})
    r = round_result(**facts, ballots=ballots)
    assert round_result(**facts, sheet=sheet) == r
    assert r["returned"] == r["valid"] == len(ballots)


WRITTEN = ["张三", "李四", " 王五", "王五", "A", "M0001"]  # "A" is listed; " 王五" is 王五 written twice


@FAST
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(["for", "against", "abstain"])),
                          st.lists(st.sampled_from(WRITTEN), max_size=3)), max_size=30),
       st.integers(1, 3), st.integers(0, 10),
       st.sampled_from([ElectionStage.FIRST, ElectionStage.REVOTE, ElectionStage.ANOTHER]),
       st.sampled_from([None, ["M0001", "张三", "王五"]]))
def test_an_election_sheet_of_the_ballots_gives_their_result(cast, seats, extra, stage, eligible):
    """The tellers' sheet, written-in persons (另选他人) included, gives the ballots' result."""
    allowed = stage in (ElectionStage.FIRST, ElectionStage.ANOTHER)
    ballots = [{**marks, **({f"write_in:{n}": "for" for n in written} if allowed else {})}
               for marks, written in cast]
    members = len(ballots) + extra
    facts = dict(item_kind=ItemKind.ELECTION, candidate_keys=KEYS, places=seats, rule=rules.Rule(),
                 members=members, present=members, quorum_met=True, issued=members,
                 election={"stage": stage, "listed": [], "eligible": eligible})
    r = round_result(**facts, ballots=ballots)
    sheet = _sheet(members, r["valid"], r["invalid"], {
        c["key"]: {m: c[m] for m in ("for", "against", "abstain", "void")} for c in r["candidates"]})
    sheet["write_ins"] = [{"name": w["name"], "for": w["for"]} for w in reversed(r["write_ins"])]
    assert round_result(**facts, sheet=sheet) == r
    assert len(r["elected"]) <= seats and r["returned"] == len(ballots)
    # one valid ballot chooses at most `seats` persons (§5.4): the sheet's bound
    assert sum(c["for"] for c in r["candidates"]) + sum(w["for"] for w in r["write_ins"]) <= seats * r["valid"]


# --- names: one normalisation for what is typed and what is counted ----------------------------

TEXT = st.text(st.sampled_from(["张", "三", " ", "\u3000", "e", "\u0301", "\u00e9", "Z", "o", "\u0308",
                                "\u200b", "·"]), max_size=8)


@given(TEXT)
def test_a_name_is_normalised_once_and_for_all(text):
    once = rules.normalise_name(text)
    assert rules.normalise_name(once) == once == unicodedata.normalize("NFC", text).strip()


@given(TEXT)
def test_a_checked_name_is_the_name_the_count_compares(text):
    try:
        checked = names.check_name(text, what="name", where="name", max_len=100)
    except InvalidInput:
        return
    assert checked == rules.normalise_name(text)


@pytest.mark.parametrize("value", [None, 3, b"x"])
def test_a_name_is_text(value):
    with pytest.raises(rules.RuleError):
        rules.normalise_name(value)
