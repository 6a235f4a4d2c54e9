"""An evaluation round (满意度测评 / 工作评议 / 述职评议, RULES.md §5.5) counted and decided from
its ballots or tally sheet, in the shape of rules.tally's round result. Pure: the tally and the
auditor's recount (bundle) both call it, so they count alike.

The rule an evaluation is decided by travels as one dict, `scale`:
{"options": [option keys, best first], "grading": {"by": "majority"} or
{"by": "rate_thresholds", "steps": [[option, hundredths], …]}}; it is recorded with the
item (event `item_created`, counts.json) under `rule`, so a recount needs nothing else.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from ballot_service import rules
from ballot_service.rules import evaluation as ev

DEFAULT_OPTIONS = tuple({"key": k, "title": ev.SATISFACTION_TITLES[k]} for k in ev.SATISFACTION_OPTIONS)
MAJORITY = {"by": ev.GRADE_BY_MAJORITY}


def scale_of(options: list[dict] | None, grading: dict | None) -> dict:
    """The decision's `scale` from an item's stored options and grading."""
    return {"options": list(option_keys(options)), "grading": grading or dict(MAJORITY)}


def option_keys(options: list[dict] | None) -> tuple[str, ...]:
    return tuple(o["key"] for o in options or DEFAULT_OPTIONS)


def round_result(*, candidate_keys: list[str], scale: dict, rule: rules.Rule, members: int, present: int,
                 quorum_met: bool, issued: int, ballots: Iterable[Mapping[str, str]] | None = None,
                 sheet: dict | None = None, refused: int = 0, paper: bool = True) -> dict:
    """One evaluation round counted and decided (rules/evaluation.py), in the shape of
    rules.tally.round_result: each subject with a count per option, abstain, void, grade and rate."""
    options = tuple(scale["options"])
    if sheet is not None:
        count = ev.EvaluationCount(sheet["returned"] - sheet["invalid"], sheet["invalid"], tuple(
            ev.SubjectCount(k, options, tuple(sheet["counts"][k][o] for o in options),
                            sheet["counts"][k][ev.ABSTAIN], sheet["counts"][k].get(ev.VOID, 0))
            for k in candidate_keys))
        issued = sheet["issued"]
    else:
        count = ev.count_ballots(candidate_keys, ballots or [], options, paper=paper)
    grading = scale["grading"]
    thresholds = ev.RateThresholds(tuple(map(tuple, grading["steps"]))) if grading["by"] == ev.GRADE_BY_RATE \
        else None
    d = ev.decide_evaluation(ev.EvaluationFacts(
        members=members, present=present, quorum_met=quorum_met, issued=issued, count=count, rule=rule,
        grading=grading["by"], thresholds=thresholds))
    return {
        "status": d.status, "members": members, "present": present, "quorum_met": quorum_met,
        "issued": issued, "returned": count.returned, "valid": count.valid, "invalid": count.invalid,
        "refused": refused, "not_voted": d.not_voted, "places": None,
        "rule": {"base": rule.base, "majority": rule.majority, **scale}, "threshold_base": d.base,
        "threshold_votes": rules.minimum_votes(d.base, rule.majority),
        "candidates": [{"key": s.key, **s.count.as_dict(), "grade": s.grade, "rate": s.rate_text}
                       for s in d.subjects],
    }
