"""The rules of an `evaluation` item (满意度测评 / 工作评议 / 述职评议, RULES.md §5.5), pure.

One job: from evaluation ballots to each subject's per-option counts, grade and rate.
No Flask, no SQL, integers only (RULES.md §1); quorum and intake are decided elsewhere
(`rules.quorum_met`, the service) and come in as facts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ballot_service.numbers import require_whole
from ballot_service.rules import Rule, RuleError, check_marks
from ballot_service.vocab import ItemStatus, Majority, Mark

# §5.5 default options, best first; a locality may use others (e.g. COMPETENCE_OPTIONS).
SATISFACTION_OPTIONS = ("satisfied", "basically_satisfied", "dissatisfied")
SATISFACTION_TITLES = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
COMPETENCE_OPTIONS = ("excellent", "competent", "basically_competent", "incompetent")
COMPETENCE_TITLES = {"excellent": "优秀", "competent": "称职", "basically_competent": "基本称职",
                     "incompetent": "不称职"}

ABSTAIN = "abstain"  # 弃权 / 未评: a subject left unmarked (§5.5)
VOID = Mark.VOID  # paper only: two or more options (or an illegible mark) for one subject
# FORMAT.md: an option key is never one of these (they are columns of the result).
RESERVED_KEYS = frozenset({"key", ABSTAIN, VOID, "grade", "rate"})

GRADE_BY_MAJORITY = "majority"  # §5.5 default: cumulative majority of the base
GRADE_BY_RATE = "rate_thresholds"  # §5.5 variant: grade by 满意率 thresholds


def check_options(options: Sequence[str]) -> tuple[str, ...]:
    """Options best first: at least two (a grade needs a worst one), unique, none reserved."""
    opts = tuple(options)
    if len(opts) < 2:
        raise RuleError("an evaluation needs at least two options, best first")
    for o in opts:
        if not isinstance(o, str) or not o:
            raise RuleError(f"option keys must be non-empty strings, not {o!r}")
        if o in RESERVED_KEYS:
            raise RuleError(f"{o!r} cannot be an option key (reserved: {', '.join(sorted(RESERVED_KEYS))})")
    if len(set(opts)) != len(opts):
        raise RuleError("option keys must be unique")
    return opts


def check_rule(rule: Rule) -> Rule:
    """§5.5 allows the base options of §5.1 (members, present, valid) but only 过半数."""
    if rule.majority != Majority.HALF:
        raise RuleError("an evaluation grades by more than half of its base (RULES.md §5.5); "
                        f"majority {rule.majority!r} does not apply")
    return rule


# --- ballots (§3, §5.5) ------------------------------------------------------------------

def paper_mark(marked: Iterable[str]) -> str:
    """What the tellers record for one subject on paper: no option → abstain, one → it, more → void."""
    chosen = set(marked)
    if not chosen:
        return ABSTAIN
    if len(chosen) > 1:
        return VOID
    return next(iter(chosen))


def normalise_ballot(
    marks: Mapping[str, str],
    subjects: Sequence[str],
    options: Sequence[str] = SATISFACTION_OPTIONS,
    *,
    paper: bool = True,
) -> dict[str, str]:
    """One mark per subject in subject order; unmarked → abstain. Never invalid as a whole (§5.5).

    Refuses (RuleError) a subject not on the ballot, an unknown option, and `void` off paper
    (a terminal cannot spoil a mark).
    """
    allowed = set(options) | {ABSTAIN} | ({VOID} if paper else set())
    check_marks(marks, subjects, sorted(allowed), noun="subjects")
    return {s: marks.get(s, ABSTAIN) for s in subjects}


# --- counting ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SubjectCount:
    """Votes for one subject: one count per option (in option order), abstain and void."""

    key: str
    options: tuple[str, ...]
    counts: tuple[int, ...]
    abstain: int = 0
    void: int = 0

    def __post_init__(self):
        if len(self.counts) != len(self.options):
            raise RuleError(f"{self.key}: {len(self.counts)} counts for {len(self.options)} options")
        _non_negative(abstain=self.abstain, void=self.void,
                      **{f"count[{o}]": c for o, c in zip(self.options, self.counts)})

    def count(self, option: str) -> int:
        return self.counts[self.options.index(option)]

    def as_dict(self) -> dict[str, int]:
        return {**dict(zip(self.options, self.counts)), ABSTAIN: self.abstain, VOID: self.void}

    @property
    def positive(self) -> int:
        """Votes for every option but the last (the numerator of the rate, §5.5)."""
        return sum(self.counts[:-1])


@dataclass(frozen=True)
class EvaluationCount:
    valid: int  # every returned ballot: an evaluation ballot is never invalid for its marks
    invalid: int
    subjects: tuple[SubjectCount, ...]

    @property
    def returned(self) -> int:
        return self.valid + self.invalid


def count_ballots(
    subjects: Sequence[str],
    ballots: Iterable[Mapping[str, str]],
    options: Sequence[str] = SATISFACTION_OPTIONS,
    *,
    paper: bool = True,
) -> EvaluationCount:
    """Count returned genuine ballots per subject per option (refused submissions never get here)."""
    opts = check_options(options)
    if len(set(subjects)) != len(subjects):
        raise RuleError("subject keys must be unique")
    tallies = {s: dict.fromkeys((*opts, ABSTAIN, VOID), 0) for s in subjects}
    n = 0
    for raw in ballots:
        n += 1
        for s, mark in normalise_ballot(raw, subjects, opts, paper=paper).items():
            tallies[s][mark] += 1
    return EvaluationCount(n, 0, tuple(
        SubjectCount(s, opts, tuple(tallies[s][o] for o in opts), tallies[s][ABSTAIN], tallies[s][VOID])
        for s in subjects))


# --- grade and rate (§5.5) -----------------------------------------------------------------

def grade_by_majority(counts: Sequence[int], options: Sequence[str], base: int) -> str:
    """First option g_j (j < m) whose cumulative count c_j = n_1 + … + n_j has 2*c_j > base; else g_m."""
    _non_negative(base=base)
    if len(counts) != len(options):
        raise RuleError("one count per option")
    cumulative = 0
    for option, n in zip(options[:-1], counts[:-1]):
        cumulative += n
        if 2 * cumulative > base:
            return option
    return options[-1]


def rate_hundredths(positive: int, valid: int) -> int | None:
    """round_half_up(10000 * positive / valid): the rate in hundredths of a percent; None with no valid ballots."""
    _non_negative(positive=positive, valid=valid)
    if valid == 0:
        return None
    if positive > valid:
        raise RuleError(f"positive votes ({positive}) cannot exceed valid ballots ({valid})")
    # half up in integers: floor(x + 1/2) = floor((2*10000*p + v) / (2*v))
    return (20000 * positive + valid) // (2 * valid)


def format_rate(hundredths: int | None) -> str | None:
    """9815 → "98.15"; None → None (shown as null)."""
    if hundredths is None:
        return None
    _non_negative(rate=hundredths)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


@dataclass(frozen=True)
class RateThresholds:
    """§5.5 variant: grade by the published rate (e.g. 满意率 ≥ 80.00 % → 满意).

    `steps` are (option, minimum rate in hundredths of a percent), best first with strictly
    decreasing minimums; a subject below every step gets the last option. The comparison
    uses the rate as published (rounded to two decimals), so the grade agrees with the
    figure on the record.
    """

    steps: tuple[tuple[str, int], ...]

    def check(self, options: Sequence[str]) -> None:
        if not self.steps:
            raise RuleError("rate thresholds need at least one step")
        last_index, last_min = -1, 10001
        for option, minimum in self.steps:
            if option not in options[:-1]:
                raise RuleError(f"threshold option {option!r} must be one of {list(options[:-1])}")
            _non_negative(threshold=minimum)
            if minimum > 10000:
                raise RuleError(f"a threshold is at most 10000 hundredths (100.00 %), not {minimum}")
            idx = options.index(option)
            if idx <= last_index or minimum >= last_min:
                raise RuleError("threshold steps go best option first with strictly decreasing minimums")
            last_index, last_min = idx, minimum

    def grade(self, rate: int | None, options: Sequence[str]) -> str:
        # No valid ballots means no rate: nothing reaches a step, as with the majority rule.
        if rate is not None:
            for option, minimum in self.steps:
                if rate >= minimum:
                    return option
        return options[-1]


@dataclass(frozen=True)
class SubjectOutcome:
    key: str
    count: SubjectCount
    grade: str | None  # an option key; None when the vote is void or without quorum
    rate: int | None  # hundredths of a percent; None with no valid ballots or no decision

    @property
    def rate_text(self) -> str | None:
        return format_rate(self.rate)


@dataclass(frozen=True)
class EvaluationFacts:
    """Everything an evaluation's decision depends on, already counted (RULES.md §1)."""

    members: int  # N
    present: int  # P
    quorum_met: bool
    issued: int  # I
    count: EvaluationCount  # R = valid + invalid
    rule: Rule = field(default_factory=Rule)
    grading: str = GRADE_BY_MAJORITY
    thresholds: RateThresholds | None = None  # only with grading = GRADE_BY_RATE


@dataclass(frozen=True)
class EvaluationDecision:
    status: str  # decided | void | quorum_not_met
    base: int  # the base of the majority grade (N by default)
    grading: str  # recorded on the result with the rule and any thresholds (§5.5)
    rule: Rule
    subjects: tuple[SubjectOutcome, ...]
    not_voted: int
    thresholds: RateThresholds | None = None


def decide_evaluation(f: EvaluationFacts) -> EvaluationDecision:
    """Quorum, over-return (R > I voids the vote, §4), then each subject's grade and rate."""
    _non_negative(members=f.members, present=f.present, issued=f.issued,
                  valid=f.count.valid, invalid=f.count.invalid)
    if f.present > f.members:
        raise RuleError(f"present ({f.present}) cannot exceed members ({f.members})")
    check_rule(f.rule)
    if f.grading == GRADE_BY_RATE:
        if f.thresholds is None:
            raise RuleError("grading by rate needs thresholds")
    elif f.grading == GRADE_BY_MAJORITY:
        if f.thresholds is not None:
            raise RuleError("thresholds apply only when grading by rate")
    else:
        raise RuleError(f"grading must be {GRADE_BY_MAJORITY!r} or {GRADE_BY_RATE!r}, not {f.grading!r}")

    valid = f.count.valid
    base = {"members": f.members, "present": f.present, "valid": valid}[f.rule.base]
    not_voted = max(0, f.issued - f.count.returned)
    for s in f.count.subjects:
        if sum(s.counts) + s.abstain + s.void != valid:
            raise RuleError(f"{s.key}: counts add up to {sum(s.counts) + s.abstain + s.void}, "
                            f"not the {valid} valid ballots")
        if f.thresholds is not None:
            f.thresholds.check(s.options)

    decided = f.quorum_met and f.count.returned <= f.issued
    outcomes = []
    for s in f.count.subjects:
        if not decided:  # FORMAT.md: with quorum_not_met or void, no grade is given
            outcomes.append(SubjectOutcome(s.key, s, None, None))
            continue
        rate = rate_hundredths(s.positive, valid)
        if f.grading == GRADE_BY_RATE:
            grade = f.thresholds.grade(rate, s.options)
        else:
            grade = grade_by_majority(s.counts, s.options, base)
        outcomes.append(SubjectOutcome(s.key, s, grade, rate))
    status = ItemStatus.DECIDED if decided else (ItemStatus.QUORUM_NOT_MET if not f.quorum_met else ItemStatus.VOID)
    return EvaluationDecision(status, base, f.grading, f.rule, tuple(outcomes), not_voted, f.thresholds)


def _non_negative(**values: int) -> None:
    require_whole(RuleError, 0, **values)

