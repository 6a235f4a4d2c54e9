"""Evaluation items (满意度测评 / 工作评议 / 述职评议, RULES.md §5.5) in the service: the options
and grading an item is created with, the marks a ballot may carry and a tally sheet's counts,
checked with InvalidInput saying what and where. The counting is rules/evaluation_tally.py,
which the tally and the auditor's recount (bundle) both call, so they count alike.
"""
from __future__ import annotations

from typing import Iterable

from ballot_service import rules
from ballot_service.errors import InvalidInput
from ballot_service.formats import names
from ballot_service.numbers import is_int
from ballot_service.rules import evaluation as ev
from ballot_service.rules.evaluation_tally import DEFAULT_OPTIONS, MAJORITY, option_keys

MAX_OPTIONS = 8


def clean_options(options) -> list[dict]:
    """The secretariat's options, best first ({key, title}), or the default 满意/基本满意/不满意."""
    if options is None:
        return [dict(o) for o in DEFAULT_OPTIONS]
    if not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS:
        raise InvalidInput(f"options must be a list of 2 to {MAX_OPTIONS} objects {{key, title}}, best first",
                           where="options", zh=f"测评选项须为 2 至 {MAX_OPTIONS} 项，按从好到差排列")
    out = []
    for i, o in enumerate(options):
        if not isinstance(o, dict) or set(o) - {"key", "title"}:
            raise InvalidInput("each option is an object {key, title}", where=f"options[{i}]",
                               zh="每个测评选项须为 {key, title}")
        key = names.check_name(o.get("key"), what="option key", where=f"options[{i}].key", max_len=32)
        title = names.check_name(o.get("title"), what="option title", where=f"options[{i}].title", max_len=32)
        out.append({"key": key, "title": title})
    try:
        ev.check_options([o["key"] for o in out])
    except rules.RuleError as exc:
        raise InvalidInput(str(exc), where="options",
                           zh="测评选项编号须各不相同，且不能是 key、abstain、void、grade、rate") from None
    return out


def clean_grading(grading, option_keys: list[str]) -> dict:
    """{"by": "majority"} (default) or {"by": "rate_thresholds", "steps": [{"option", "min_hundredths"}, …]}
    (e.g. 满意率 ≥ 80.00 % → 满意: {"option": "satisfied", "min_hundredths": 8000})."""
    if grading is None:
        return dict(MAJORITY)
    if not isinstance(grading, dict) or grading.get("by") not in (ev.GRADE_BY_MAJORITY, ev.GRADE_BY_RATE):
        raise InvalidInput(f"grading.by must be {ev.GRADE_BY_MAJORITY!r} or {ev.GRADE_BY_RATE!r}",
                           where="grading.by", zh="评定等次的方式须为 majority（按过半数）或 rate_thresholds（按满意率）")
    if grading["by"] == ev.GRADE_BY_MAJORITY:
        if set(grading) != {"by"}:
            raise InvalidInput("grading by majority takes no steps", where="grading", zh="按过半数评定等次时不设分档")
        return dict(MAJORITY)
    steps = grading.get("steps")
    if set(grading) != {"by", "steps"} or not isinstance(steps, list):
        raise InvalidInput("grading by rate needs steps [{option, min_hundredths}, …]", where="grading.steps",
                           zh="按满意率评定等次须给出分档 [{option, min_hundredths}, …]")
    out = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict) or set(s) != {"option", "min_hundredths"} or not is_int(s["min_hundredths"]):
            raise InvalidInput("each step is {option, min_hundredths} (8000 = 80.00 %)", where=f"grading.steps[{i}]",
                               zh="每一档须为 {option, min_hundredths}（8000 即 80.00%）")
        out.append([s["option"], s["min_hundredths"]])
    try:
        ev.RateThresholds(tuple(map(tuple, out))).check(tuple(option_keys))
    except rules.RuleError as exc:
        raise InvalidInput(str(exc), where="grading.steps",
                           zh="分档须从最好的选项起、门槛逐档降低，且不含最差的选项，门槛在 0 至 10000 之间") from None
    return {"by": ev.GRADE_BY_RATE, "steps": out}


def check_rule(base: str, majority: str) -> None:
    try:
        ev.check_rule(rules.Rule(base, majority))
    except rules.RuleError as exc:
        raise InvalidInput(str(exc), where="rule.majority", zh="满意度测评按过半数评定等次，不适用三分之二") from None


def count_paper_ballots(item, subjects: list[str], ballots: list[dict]) -> ev.EvaluationCount:
    """Returned, valid and invalid paper ballots of an evaluation, counted in its own options."""
    return ev.count_ballots(subjects, ballots, list(option_keys(item.options)), paper=True)


def allowed_marks(option_keys: Iterable[str], paper: bool) -> tuple[str, ...]:
    return (*option_keys, ev.ABSTAIN, *((ev.VOID,) if paper else ()))


def parse_marks(raw, subjects: list[str], option_keys: list[str], *, paper: bool) -> dict[str, str]:
    """A ballot's marks: one option per subject, unmarked → abstain; 4xx naming the mark at fault."""
    if not isinstance(raw, dict):
        raise InvalidInput("marks must be an object {subject key: option}", where="marks",
                           zh="选票标记须为 {测评对象编号: 选项}")
    allowed = allowed_marks(option_keys, paper)
    for k, v in raw.items():
        if k not in subjects:
            raise InvalidInput(f"{k!r} is not a subject on this ballot", where=f"marks.{k}",
                               zh=f"“{k}”不是本测评票上的测评对象")
        if v not in allowed:
            raise InvalidInput(f"mark {v!r} is not one of {', '.join(allowed)}", where=f"marks.{k}",
                               zh=f"标记“{v}”须为 {'、'.join(allowed)} 之一")
    return {s: raw.get(s, ev.ABSTAIN) for s in subjects}


def sheet_counts(raw: dict, subjects: list[str], option_keys: list[str], valid: int, whole) -> dict:
    """A tally sheet's counts for an evaluation: every option, abstain and void per subject,
    adding up to the valid ballots. `whole` checks one figure (tally_sheets.validate_sheet's)."""
    fields = (*option_keys, ev.ABSTAIN, ev.VOID)
    out = {}
    for k in subjects:
        c = raw[k]
        if not isinstance(c, dict) or set(c) - set(fields):
            raise InvalidInput(f"must be an object with {', '.join(fields)}", where=f"sheet.counts.{k}",
                               zh=f"须为包含 {'、'.join(fields)} 的对象")
        row = {m: whole(c.get(m, 0), f"sheet.counts.{k}.{m}") for m in fields}
        if sum(row.values()) != valid:
            raise InvalidInput(f"the counts of {k} add up to {sum(row.values())}, not the {valid} valid ballots",
                               where=f"sheet.counts.{k}", zh=f"{k} 各项票数之和（{sum(row.values())}）须等于有效票数（{valid}）")
        out[k] = row
    return out
