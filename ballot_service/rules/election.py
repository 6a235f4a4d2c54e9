"""The rules of an `election` item (选举, RULES.md §5.4; 组织法 art. 25–30, 47), pure.

One job: decide an election from counted ballots — the 差额 check of the candidate list,
ballot validity with write-ins (另选他人), the count, and each round's outcome (round 1,
re-vote among the tied, 另行选举, 预选) as frozen dataclasses. No Flask, no SQL, integers
only (RULES.md §1); quorum and intake are decided elsewhere and come in as facts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Sequence

from ballot_service.numbers import require_whole
from ballot_service.rules import MARKS, RuleError, check_marks, normalise_name, select_top
from ballot_service.vocab import ElectionStage, ItemStatus, Office, label

OFFICES = tuple(Office)
OFFICE_NAMES = {o.value: label(o) for o in Office}
WRITE_IN = "write_in:"  # key prefix of a written-in person (FORMAT.md: "write_in:张三")

# Round kinds and statuses
FIRST, REVOTE, ANOTHER, PRELIMINARY = tuple(ElectionStage)
DECIDED, RUNOFF_PENDING, VOID, QUORUM_NOT_MET = (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING, ItemStatus.VOID,
                                                  ItemStatus.QUORUM_NOT_MET)


# --- 差额: how many candidates for k seats (§5.4, 组织法 art. 27, 29 ¶3, 30) ------------------

@dataclass(frozen=True)
class SlateCheck:
    status: str  # "ok" | "preliminary" (more nominees than allowed: a 预选 ranks them) | "refused"
    office: str
    seats: int
    nominees: int
    min_candidates: int
    max_candidates: int | None  # None: no upper limit (补选, art. 30)
    article: str
    message: str


def candidate_range(office: str, seats: int, *, by_election: bool = False,
                    nominees: int | None = None) -> tuple[int, int | None, str]:
    """(fewest, most or None, article) candidates allowed for `seats` seats of `office`."""
    if office not in OFFICES:
        raise RuleError(f"office must be one of {OFFICES}, not {office!r}")
    _positive(seats=seats)
    if by_election:  # 补选 may be 等额 or 差额 (art. 30); RULES.md sets no upper limit
        return seats, None, "组织法第三十条"
    if office == Office.PRINCIPAL:
        # one more than seats; 等额 allowed when only one person is nominated (art. 27)
        if nominees == 1 and seats == 1:
            return 1, 1, "组织法第二十七条"
        return seats + 1, seats + 1, "组织法第二十七条"
    if office == Office.VICE:
        return seats + 1, seats + 3, "组织法第二十七条"
    if office == Office.COMMITTEE_MEMBER:
        # a tenth to a fifth more: ceil(k/10) <= extra <= max(ceil(k/10), floor(k/5))
        lo = (seats + 9) // 10
        return seats + lo, seats + max(lo, seats // 5), "组织法第二十七条"
    # deputy_higher: 选举法 art. 31 (not in RULES.md; see module tests): a fifth to a half
    # more, in the same integer form as for 委员: ceil(k/5) <= extra <= max(ceil(k/5), floor(k/2))
    lo = (seats + 4) // 5
    return seats + lo, seats + max(lo, seats // 2), "选举法第三十一条"


def check_slate(office: str, seats: int, nominees: int, *, by_election: bool = False,
                another: bool = False) -> SlateCheck:
    """ok / preliminary (预选 needed) / refused (too few, naming the article)."""
    _non_negative(nominees=nominees)
    lo, hi, article = candidate_range(office, seats, by_election=by_election, nominees=nominees)
    if another and office in (Office.VICE, Office.COMMITTEE_MEMBER) and not by_election:
        article += "、第二十九条第三款"  # the same 差额 applies to a 另行选举 of 副职 and 委员
    name = OFFICE_NAMES[office]
    span = f"{lo}" if hi == lo else (f"{lo}–{hi}" if hi is not None else f"{lo} or more")
    if nominees < lo:
        return SlateCheck("refused", office, seats, nominees, lo, hi, article,
                          f"{article}: {name} {seats}名 needs {span} candidates; {nominees} nominated")
    if hi is not None and nominees > hi:
        return SlateCheck(ElectionStage.PRELIMINARY, office, seats, nominees, lo, hi, article,
                          f"{article}: {nominees} nominated for {name} {seats}名, more than {hi}; "
                          f"a preliminary vote (预选) decides the official list")
    return SlateCheck("ok", office, seats, nominees, lo, hi, article,
                      f"{article}: {nominees} candidates for {name} {seats}名"
                      + (" (等额)" if nominees == seats else " (差额)"))


# --- ballots (§5.4 marks, write-ins, validity) -----------------------------------------------

@dataclass(frozen=True)
class ElectionBallot:
    marks: tuple[tuple[str, str], ...]  # (candidate key, mark) in ballot order; unmarked = abstain
    write_ins: tuple[str, ...]  # normalised names that count as 赞成, in ballot order
    no_vote_lines: tuple[tuple[str, str], ...]  # (name as written, reason) recorded as no vote
    valid: bool

    @property
    def for_count(self) -> int:
        return sum(1 for _, m in self.marks if m == "for") + len(self.write_ins)


def read_ballot(
    marks: Mapping[str, str],
    candidates: Sequence[str],
    seats: int,
    write_ins: Sequence[str] = (),
    *,
    listed: Collection[str] = (),
    eligible: Collection[str] | None = None,
    write_ins_allowed: bool = True,
) -> ElectionBallot:
    """Normalise one returned ballot and decide its validity.

    `listed`: every identity of a listed candidate (key, name, roster id) a write-in might
    use; such a line is no vote (§5.4). `eligible`: when the office must be held by a deputy
    (常委会组成人员, art. 47), the roster ids/names a write-in may name; others are no vote.
    A person written twice counts once. 赞成 + counted write-ins > seats ⇒ invalid.
    """
    check_marks(marks, candidates, MARKS)
    if write_ins and not write_ins_allowed:
        raise RuleError("no write-ins in a re-vote or a preliminary vote (RULES.md §5.4)")
    listed_n = {normalise_name(x) for x in (*candidates, *listed)}
    eligible_n = None if eligible is None else {normalise_name(x) for x in eligible}
    counted: list[str] = []
    dropped: list[tuple[str, str]] = []
    for raw in write_ins:
        name = normalise_name(raw)
        why = write_in_refusal(name, listed_n, eligible_n, counted)
        if why:
            dropped.append((raw, why))
        else:
            counted.append(name)
    norm = tuple((k, marks.get(k, "abstain")) for k in candidates)
    chosen = sum(1 for _, m in norm if m == "for") + len(counted)
    # 所选人数多于应选名额的无效 (§5.4, 选举法 art. 44)
    return ElectionBallot(norm, tuple(counted), tuple(dropped), chosen <= seats)


def write_in_refusal(name: str, listed_n: Collection[str], eligible_n: Collection[str] | None,
                     counted: Collection[str]) -> str | None:
    """Why a normalised written-in name is no vote (blank, listed_candidate, not_eligible,
    repeated), else None: one rule for a ballot's 另选 lines and a tally sheet's rows."""
    if not name:
        return "blank"
    if name in listed_n:
        return "listed_candidate"
    if eligible_n is not None and name not in eligible_n:
        return "not_eligible"
    return "repeated" if name in counted else None


# --- counting ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonTally:
    key: str  # candidate key, or WRITE_IN + normalised name
    for_: int = 0
    against: int = 0
    abstain: int = 0
    void: int = 0

    @property
    def write_in(self) -> bool:
        return self.key.startswith(WRITE_IN)

    @property
    def name(self) -> str:
        return self.key[len(WRITE_IN):] if self.write_in else self.key


@dataclass(frozen=True)
class ElectionCount:
    valid: int
    invalid: int
    candidates: tuple[PersonTally, ...]  # ballot order
    write_ins: tuple[PersonTally, ...]  # by `for` descending, then name (FORMAT.md)

    @property
    def returned(self) -> int:
        return self.valid + self.invalid

    @property
    def persons(self) -> tuple[PersonTally, ...]:
        """Everyone who can be elected, in display order for equal votes: the ballot, then write-ins."""
        return self.candidates + self.write_ins


def write_in_key(name: str) -> str:
    return WRITE_IN + normalise_name(name)


def count_ballots(ballots: Iterable[ElectionBallot], candidates: Sequence[str]) -> ElectionCount:
    """Add up read ballots; an invalid ballot is counted as invalid and adds no marks."""
    if len(set(candidates)) != len(candidates):
        raise RuleError("candidate keys must be unique")
    marks = {k: dict.fromkeys(MARKS, 0) for k in candidates}
    written: dict[str, int] = {}
    valid = invalid = 0
    for b in ballots:
        if [k for k, _ in b.marks] != list(candidates):
            raise RuleError("a ballot read for another candidate list")
        if not b.valid:
            invalid += 1
            continue
        valid += 1
        for k, m in b.marks:
            marks[k][m] += 1
        for name in b.write_ins:
            written[name] = written.get(name, 0) + 1
    cands = tuple(PersonTally(k, marks[k]["for"], marks[k]["against"], marks[k]["abstain"],
                              marks[k]["void"]) for k in candidates)
    wins = tuple(PersonTally(WRITE_IN + n, f) for n, f in sorted(written.items(), key=lambda x: (-x[1], x[0])))
    return ElectionCount(valid, invalid, cands, wins)


# --- deciding a round (§5.4, art. 25, 29) -------------------------------------------------------

@dataclass(frozen=True)
class RoundFacts:
    """Everything a round's decision depends on, already counted."""

    members: int  # N: all deputies (art. 25 fixes the base; no rule options)
    present: int  # P
    quorum_met: bool
    issued: int  # I
    seats: int  # k for this round: seats, seats left for a re-vote, unfilled for 另行选举
    count: ElectionCount


@dataclass(frozen=True)
class PersonOutcome:
    key: str
    for_: int
    against: int
    abstain: int
    void: int
    passed: bool | None  # 2*for > N; None in a re-vote or 预选 (no threshold)
    elected: bool  # in a 预选: placed on the official list

    @property
    def write_in(self) -> bool:
        return self.key.startswith(WRITE_IN)


@dataclass(frozen=True)
class ElectionRound:
    kind: str  # first | revote | another | preliminary
    status: str  # decided | runoff_pending | void | quorum_not_met
    seats: int
    members: int
    persons: tuple[PersonOutcome, ...]  # candidates in ballot order, then write-ins
    elected: tuple[str, ...]  # by `for` descending, equal votes in ballot order (预选: the official list)
    tied: tuple[str, ...]  # equal votes straddling the last seat: a re-vote among them alone
    revote_seats: int  # seats the re-vote fills
    unfilled: int  # seats left for a 另行选举 (0 in a re-vote and a 预选)
    not_voted: int  # I − R, never below 0


def decide_round(f: RoundFacts, kind: str = FIRST) -> ElectionRound:
    """Round 1 or a 另行选举: elected need 2*for > N; the most `for` fill the seats (art. 25, 29)."""
    if kind not in (FIRST, ANOTHER):
        raise RuleError(f"decide_round takes a first round or a 另行选举, not {kind!r}")
    return _decide(f, kind, threshold=True)


def decide_revote(f: RoundFacts) -> ElectionRound:
    """A re-vote among the tied: the most votes win, no second majority test (art. 29 ¶1)."""
    if f.count.write_ins:
        raise RuleError("no write-ins in a re-vote (RULES.md §5.4)")
    if len(f.count.candidates) <= f.seats:
        raise RuleError("a re-vote is among more tied persons than seats left")
    return _decide(f, REVOTE, threshold=False)


def decide_preliminary(f: RoundFacts) -> ElectionRound:
    """预选: rank all nominees by `for` without a threshold; the top `seats` (= k + extra) form
    the official list; a tie at that cut-off is re-voted among the tied (art. 27). RULES.md
    gives no validity rule for a 预选 ballot; read it with `seats` = the official list's size."""
    if f.count.write_ins:
        raise RuleError("no write-ins in a preliminary vote")
    return _decide(f, PRELIMINARY, threshold=False)


def _decide(f: RoundFacts, kind: str, *, threshold: bool) -> ElectionRound:
    _non_negative(members=f.members, present=f.present, issued=f.issued,
                  valid=f.count.valid, invalid=f.count.invalid)
    _positive(seats=f.seats)
    if f.present > f.members:
        raise RuleError(f"present ({f.present}) cannot exceed members ({f.members})")
    persons = f.count.persons
    not_voted = max(0, f.issued - f.count.returned)

    def outcome(status, passing=frozenset(), elected=(), tied=(), revote_seats=0, unfilled=0):
        chosen = set(elected)
        return ElectionRound(kind, status, f.seats, f.members, tuple(
            PersonOutcome(p.key, p.for_, p.against, p.abstain, p.void,
                          (p.key in passing) if threshold else None, p.key in chosen)
            for p in persons), tuple(elected), tuple(tied), revote_seats, unfilled, not_voted)

    if not f.quorum_met:
        return outcome(QUORUM_NOT_MET)
    if f.count.returned > f.issued:  # R > I: this round is void and held again (选举法 art. 44)
        return outcome(VOID)
    if threshold:
        eligible = [p for p in persons if 2 * p.for_ > f.members]  # 全体代表的过半数 (art. 25)
    else:
        eligible = list(persons)
    # Equal votes keep ballot order (stable sort); a tie straddling the last seat → re-vote.
    sel = select_top(eligible, f.seats)
    unfilled = sel.shortfall if kind in (FIRST, ANOTHER) else 0
    return outcome(RUNOFF_PENDING if sel.tied else DECIDED, {p.key for p in eligible},
                   sel.selected, sel.tied, sel.runoff_places, unfilled)


# --- the item's outcome over its rounds ------------------------------------------------------------

@dataclass(frozen=True)
class ElectionOutcome:
    elected: tuple[str, ...]  # round 1 by `for`, then re-vote winners, then 另行选举 winners
    unfilled: int  # seats awaiting a 另行选举 (this session or the next)
    pending: str | None  # "repeat" (void / no quorum), "revote", "another" or None
    revote_seats: int  # seats awaiting a re-vote among `tied`
    tied: tuple[str, ...]


def combine(seats: int, rounds: Sequence[ElectionRound]) -> ElectionOutcome:
    """Fold an item's rounds in order (round 1, its re-votes, a 另行选举, its re-votes, …)."""
    _positive(seats=seats)
    if not rounds:
        raise RuleError("no rounds")
    elected: list[str] = []
    pending: str | None = FIRST
    last_kind = FIRST
    tied: tuple[str, ...] = ()
    revote_seats = unfilled = 0
    for i, r in enumerate(rounds):
        expected = {FIRST: FIRST, "repeat": last_kind, "revote": REVOTE, "another": ANOTHER,
                    None: None}[pending]
        if r.kind != expected:
            raise RuleError(f"round {i + 1} is a {r.kind}; expected {expected or 'no more rounds'}")
        if r.kind == REVOTE and (set(_keys(r)) != set(tied) or r.seats != revote_seats):
            raise RuleError("a re-vote is among the tied only, for the seats left")
        if r.kind == ANOTHER and r.seats != unfilled:
            raise RuleError(f"a 另行选举 fills the {unfilled} unfilled seats, not {r.seats}")
        if r.kind == FIRST and r.seats != seats:
            raise RuleError(f"round 1 elects {seats}, not {r.seats}")
        last_kind = r.kind
        if r.status in (VOID, QUORUM_NOT_MET):
            pending = "repeat"
            continue
        elected += [k for k in r.elected if k not in elected]
        tied, revote_seats = r.tied, r.revote_seats
        if r.kind != REVOTE:
            unfilled = r.unfilled
        if r.status == RUNOFF_PENDING:
            pending = ElectionStage.REVOTE
        elif unfilled:
            pending = ElectionStage.ANOTHER
        else:
            pending = None
    if len(elected) > seats:
        raise RuleError(f"{len(elected)} elected for {seats} seats")
    return ElectionOutcome(tuple(elected), unfilled, pending, revote_seats if pending == ElectionStage.REVOTE else 0,
                           tied if pending == ElectionStage.REVOTE else ())


def _keys(r: ElectionRound) -> list[str]:
    return [p.key for p in r.persons]


def _positive(**values: int) -> None:
    require_whole(RuleError, 1, **values)


def _non_negative(**values: int) -> None:
    require_whole(RuleError, 0, **values)
