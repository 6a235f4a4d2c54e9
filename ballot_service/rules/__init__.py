"""The voting rules of RULES.md as pure functions: no Flask, no SQL, integers only.

Every threshold is an integer inequality (RULES.md §1): "more than half" of a base B
is `2*y > B`; "two thirds or more" is `3*y >= 2*B`. Nothing here uses floats.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ballot_service.numbers import require_whole
from ballot_service.vocab import BLIND_CHANNELS, Base, BodyKind, ItemKind, ItemStatus, Majority, Mark, values
from ballot_service.vocab import ELECTRONIC_MARKS as _ELECTRONIC

# The stored words, for membership checks and messages.
MARKS = values(Mark)
ELECTRONIC_MARKS = tuple(m.value for m in _ELECTRONIC)
BODY_KINDS = values(BodyKind)
ITEM_KINDS = values(ItemKind)
BASES = values(Base)
MAJORITIES = values(Majority)
MOTION = "motion"  # the one candidate key of a resolution


class RuleError(ValueError):
    """Inputs that no rule can decide (e.g. a negative count, an unknown option)."""


@dataclass(frozen=True)
class Rule:
    """Rule options a locality may set per item (RULES.md §5.1); recorded on every result."""

    base: str = Base.MEMBERS
    majority: str = Majority.HALF

    def __post_init__(self):
        if self.base not in BASES:
            raise RuleError(f"base must be one of {BASES}, not {self.base!r}")
        if self.majority not in MAJORITIES:
            raise RuleError(f"majority must be one of {MAJORITIES}, not {self.majority!r}")


# --- §2 quorum -------------------------------------------------------------------------

def quorum_met(body_kind: str, members: int, present: int) -> bool:
    """Congress: two thirds or more present (3P >= 2N). Standing committee: more than half (2P > N)."""
    _non_negative(members=members, present=present)
    if present > members:
        raise RuleError(f"present ({present}) cannot exceed members ({members})")
    if body_kind == BodyKind.CONGRESS:
        return 3 * present >= 2 * members
    if body_kind == BodyKind.STANDING_COMMITTEE:
        return 2 * present > members
    raise RuleError(f"body kind must be one of {BODY_KINDS}, not {body_kind!r}")


def quorum_minimum(body_kind: str, members: int) -> int:
    """The fewest present that make the quorum: two thirds or more of N (congress), more than
    half of N (standing committee); so quorum_met(kind, N, P) is P >= quorum_minimum(kind, N)."""
    _non_negative(members=members)
    if body_kind == BodyKind.CONGRESS:
        return (2 * members + 2) // 3
    if body_kind == BodyKind.STANDING_COMMITTEE:
        return members // 2 + 1
    raise RuleError(f"body kind must be one of {BODY_KINDS}, not {body_kind!r}")


def quorum_sentence(body_kind: str, members: int, present: int) -> tuple[str, str]:
    """The quorum in words and numbers, as a presiding officer reads it (zh, en)."""
    need = quorum_minimum(body_kind, members)
    share_zh, share_en = (("三分之二", "two thirds") if body_kind == BodyKind.CONGRESS
                          else ("过半数", "more than half"))
    met = quorum_met(body_kind, members, present)
    return (f"应到 {members} 人，{share_zh}为 {need} 人，实到 {present} 人，{'符合' if met else '不足'}法定人数",
            f"{members} members, {share_en} is {need}, {present} present: "
            f"{'quorum met' if met else 'no quorum'}")


def quorum_rule_text(body_kind: str) -> str:
    return "3*P >= 2*N" if body_kind == BodyKind.CONGRESS else "2*P > N"


def not_issued(channel: str, present: int | None, issued: int | None) -> int | None:
    """P − I of a tablet or hybrid vote: present members who took no ballot. RULES.md §1 counts
    them nowhere (未按 is I − R), so screens, the 宣布稿 and the record name them on a line of
    their own. None for paper and tally sheets (ballots are handed out in the hall) and before
    the vote opens. Negative only when replacement ballots outnumber those never taken."""
    if channel not in BLIND_CHANNELS or present is None or issued is None:
        return None
    return present - issued


# --- §1 thresholds ---------------------------------------------------------------------

def meets_majority(votes: int, base: int, majority: str = Majority.HALF) -> bool:
    _non_negative(votes=votes, base=base)
    if majority == Majority.HALF:
        return 2 * votes > base
    if majority == Majority.TWO_THIRDS:
        return 3 * votes >= 2 * base
    raise RuleError(f"majority must be one of {MAJORITIES}, not {majority!r}")


def threshold_base(rule: Rule, members: int, present: int, valid: int) -> int:
    return {"members": members, "present": present, "valid": valid}[rule.base]


def minimum_votes(base: int, majority: str = Majority.HALF) -> int:
    """The smallest `for` count that passes; shown on screens (e.g. 过半数 = 31 of 60)."""
    _non_negative(base=base)
    if majority == Majority.HALF:
        return base // 2 + 1
    if majority == Majority.TWO_THIRDS:
        return (2 * base + 2) // 3
    raise RuleError(f"majority must be one of {MAJORITIES}, not {majority!r}")


# --- names ------------------------------------------------------------------------------

def normalise_name(name: str) -> str:
    """A name as it is stored, compared and counted: Unicode NFC, surrounding blanks removed
    (张三 typed two ways is one person; formats.names checks names people type with it)."""
    if not isinstance(name, str):
        raise RuleError(f"a name is text, not {name!r}")
    return unicodedata.normalize("NFC", name).strip()


# --- §3/§4 ballots ---------------------------------------------------------------------

def check_marks(marks: Mapping[str, str], keys: Sequence[str], allowed, noun: str = "candidates") -> None:
    """Refuse marks for anything not on the ballot, and marks not in `allowed` (every kind's
    ballot is a mapping from what is voted on to one of its marks)."""
    on_ballot = keys if isinstance(keys, (set, frozenset)) else set(keys)
    unknown = [k for k in marks if k not in on_ballot]
    if unknown:
        raise RuleError(f"marks name {noun} not on this ballot: {', '.join(map(str, unknown))}")
    for k, v in marks.items():
        if v not in allowed:
            raise RuleError(f"mark for {k!r} is {v!r}; must be one of {tuple(allowed)}")


def normalise_marks(marks: Mapping[str, str], candidate_keys: Sequence[str]) -> dict[str, str]:
    """Fill unmarked candidates with 'abstain'; refuse marks for unknown candidates."""
    check_marks(marks, candidate_keys, MARKS)
    return {k: marks.get(k, "abstain") for k in candidate_keys}


def ballot_valid(marks: Mapping[str, str], places: int | None) -> bool:
    """Over-selection (more `for` marks than places) invalidates the whole ballot; blank is valid."""
    if places is None:
        return True
    return sum(1 for m in marks.values() if m == "for") <= places


@dataclass
class CandidateCount:
    key: str
    for_: int = 0
    against: int = 0
    abstain: int = 0
    void: int = 0

    def add(self, mark: str, n: int = 1) -> None:
        if mark == Mark.FOR:
            self.for_ += n
        elif mark == Mark.AGAINST:
            self.against += n
        elif mark == Mark.ABSTAIN:
            self.abstain += n
        elif mark == Mark.VOID:
            self.void += n
        else:
            raise RuleError(f"unknown mark {mark!r}")


@dataclass
class BallotCount:
    valid: int
    invalid: int
    candidates: list[CandidateCount]

    @property
    def returned(self) -> int:
        return self.valid + self.invalid


def count_ballots(
    candidate_keys: Sequence[str],
    ballots: Iterable[Mapping[str, str]],
    places: int | None,
) -> BallotCount:
    """Count returned ballots: invalid ones are counted as such and add no marks."""
    counts = {k: CandidateCount(k) for k in candidate_keys}
    valid = invalid = 0
    for raw in ballots:
        marks = normalise_marks(raw, candidate_keys)
        if not ballot_valid(marks, places):
            invalid += 1
            continue
        valid += 1
        for key, mark in marks.items():
            counts[key].add(mark)
    return BallotCount(valid, invalid, [counts[k] for k in candidate_keys])


# --- §4/§5 deciding a round ------------------------------------------------------------

@dataclass
class RoundFacts:
    """Everything a round's decision depends on, already counted."""

    item_kind: str
    members: int  # N
    present: int  # P
    quorum_met: bool
    issued: int  # I
    returned: int  # R (genuine ballots returned)
    valid: int  # V
    invalid: int
    places: int | None
    counts: list[CandidateCount]  # in candidate-list order
    rule: Rule = field(default_factory=Rule)


@dataclass
class CandidateOutcome:
    key: str
    for_: int
    against: int
    abstain: int
    void: int
    passed: bool
    selected: bool | None = None  # livelihood_projects only


@dataclass
class RoundDecision:
    status: str  # decided | void | runoff_pending | quorum_not_met
    base: int
    candidates: list[CandidateOutcome]
    selected: list[str] = field(default_factory=list)  # rank order
    tied: list[str] = field(default_factory=list)  # candidate order
    runoff_places: int = 0
    shortfall: int = 0
    passed: bool | None = None  # resolution only
    not_voted: int = 0


def decide_round(f: RoundFacts) -> RoundDecision:
    """Apply quorum, over-return, threshold and ranking to one round's counts."""
    _non_negative(members=f.members, present=f.present, issued=f.issued,
                  returned=f.returned, valid=f.valid, invalid=f.invalid)
    if f.present > f.members:
        raise RuleError(f"present ({f.present}) cannot exceed members ({f.members})")
    if f.valid + f.invalid != f.returned:
        raise RuleError(f"valid ({f.valid}) + invalid ({f.invalid}) != returned ({f.returned})")
    if f.item_kind not in ITEM_KINDS:
        raise RuleError(f"item kind must be one of {ITEM_KINDS}, not {f.item_kind!r}")
    if f.item_kind == ItemKind.LIVELIHOOD and (f.places is None or f.places < 1):
        raise RuleError("livelihood_projects needs places >= 1")

    base = threshold_base(f.rule, f.members, f.present, f.valid)
    not_voted = max(0, f.issued - f.returned)
    projects = f.item_kind == ItemKind.LIVELIHOOD

    def outcomes(passing: set[str], selected: set[str]) -> list[CandidateOutcome]:
        return [
            CandidateOutcome(c.key, c.for_, c.against, c.abstain, c.void,
                             passed=c.key in passing,
                             selected=(c.key in selected) if projects else None)
            for c in f.counts
        ]

    if not f.quorum_met:
        return RoundDecision(ItemStatus.QUORUM_NOT_MET, base, outcomes(set(), set()),
                             passed=False if f.item_kind == ItemKind.RESOLUTION else None,
                             not_voted=not_voted)
    if f.returned > f.issued:  # 选举法 art. 44: more votes than voters voids the vote
        return RoundDecision(ItemStatus.VOID, base, outcomes(set(), set()),
                             passed=False if f.item_kind == ItemKind.RESOLUTION else None,
                             not_voted=not_voted)

    passing = [c for c in f.counts if meets_majority(c.for_, base, f.rule.majority)]
    passing_keys = {c.key for c in passing}

    if f.item_kind == ItemKind.RESOLUTION:
        return RoundDecision(ItemStatus.DECIDED, base, outcomes(passing_keys, set()),
                             passed=MOTION in passing_keys, not_voted=not_voted)
    if f.item_kind == ItemKind.APPOINTMENT:
        return RoundDecision(ItemStatus.DECIDED, base, outcomes(passing_keys, set()), not_voted=not_voted)

    selection = select_top(passing, f.places)
    return RoundDecision(
        ItemStatus.RUNOFF_PENDING if selection.tied else ItemStatus.DECIDED,
        base,
        outcomes(passing_keys, set(selection.selected)),
        selected=selection.selected,
        tied=selection.tied,
        runoff_places=selection.runoff_places,
        shortfall=selection.shortfall,
        not_voted=not_voted,
    )


@dataclass
class Selection:
    selected: list[str]
    tied: list[str]
    runoff_places: int
    shortfall: int


def rank(passing: Sequence[CandidateCount]) -> list[CandidateCount]:
    """Descending `for`; equal votes keep candidate-list order (sorted() is stable)."""
    return sorted(passing, key=lambda c: -c.for_)


def select_top(passing: Sequence[CandidateCount], places: int) -> Selection:
    """Pick up to `places` passing candidates; a tie straddling the cut-off goes to a runoff."""
    ranked = rank(passing)
    if len(ranked) <= places:
        return Selection([c.key for c in ranked], [], 0, places - len(ranked))
    cutoff = ranked[places - 1].for_
    above = [c for c in ranked if c.for_ > cutoff]
    at_cutoff = [c for c in ranked if c.for_ == cutoff]
    if len(above) + len(at_cutoff) == places:
        return Selection([c.key for c in ranked[:places]], [], 0, 0)
    # The tied group straddles place k: those above stay selected; the tied go to a runoff
    # for the places left (RULES.md §5.1).
    return Selection([c.key for c in above], [c.key for c in at_cutoff], places - len(above), 0)


def _non_negative(**values: int) -> None:
    require_whole(RuleError, 0, **values)
