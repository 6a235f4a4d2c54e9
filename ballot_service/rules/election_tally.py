"""Tally of an `election` item (选举): a round's ballots → rules.election → the round's result,
and the item's rounds folded into one entry of the results format (FORMAT.md, kind election).

Pure, like rules.tally: an auditor's tool recomputes the same figures. A written-in
person (另选他人) travels in a ballot's marks as the key "write_in:<name as written>" with the
mark "for"; the count normalises the name (rules.election.normalise_name).
"""
from __future__ import annotations

from typing import Collection, Iterable, Mapping

from ballot_service.rules import RuleError, normalise_name
from ballot_service.rules import election as er
from ballot_service.vocab import ElectionStage, ItemStatus

WRITE_IN = er.WRITE_IN
WRITE_IN_STAGES = (ElectionStage.FIRST, ElectionStage.ANOTHER)  # none in a re-vote or a 预选


def split_marks(marks: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(candidate marks, written-in names) of one stored ballot."""
    cands = {k: v for k, v in marks.items() if not k.startswith(WRITE_IN)}
    written = [k[len(WRITE_IN):] for k, v in marks.items() if k.startswith(WRITE_IN) and v == "for"]
    return cands, written


def sheet_write_ins(rows: Iterable[Mapping], *, stage: str, candidates: Collection[str],
                    listed: Collection[str] = (), eligible: Collection[str] | None = None,
                    ) -> tuple[er.PersonTally, ...]:
    """The written-in persons of a tellers' sheet ([{name, for}]) as count_ballots gives those
    of the ballots: by normalised name, most votes first, nobody with no vote. A row that the
    ballots' rule (er.write_in_refusal) would not count is refused, never dropped silently."""
    rows = list(rows)
    if rows and stage not in WRITE_IN_STAGES:
        raise RuleError("no write-ins in a re-vote or a preliminary vote (RULES.md §5.4)")
    listed_n = {normalise_name(x) for x in (*candidates, *listed)}
    eligible_n = None if eligible is None else {normalise_name(x) for x in eligible}
    votes: dict[str, int] = {}
    for row in rows:
        name = normalise_name(row["name"])
        why = er.write_in_refusal(name, listed_n, eligible_n, votes)
        if why:
            raise RuleError(f"the tally sheet's written-in {name!r} is no vote ({why})")
        votes[name] = row["for"]
    return tuple(er.PersonTally(WRITE_IN + n, f)
                 for n, f in sorted(votes.items(), key=lambda x: (-x[1], x[0])) if f > 0)


def round_result(*, stage: str, candidate_keys: list[str], places: int, members: int, present: int,
                 quorum_met: bool, issued: int, ballots: Iterable[Mapping[str, str]] | None = None,
                 sheet: dict | None = None, refused: int = 0, listed: Collection[str] = (),
                 eligible: Collection[str] | None = None) -> dict:
    """Count one election round from its ballots (or the tellers' sheet) and decide it.
    `listed`: names of the listed candidates (a write-in of one is no vote); `eligible`: who
    may be written in where the office must be held by a deputy (art. 47), else None."""
    if sheet is not None:
        persons = tuple(er.PersonTally(k, sheet["counts"][k]["for"], sheet["counts"][k]["against"],
                                       sheet["counts"][k]["abstain"], sheet["counts"][k].get("void", 0))
                        for k in candidate_keys)
        invalid = sheet["invalid"]
        written = sheet_write_ins(sheet.get("write_ins", ()), stage=stage, candidates=candidate_keys,
                                  listed=listed, eligible=eligible)
        count = er.ElectionCount(sheet["returned"] - invalid, invalid, persons, written)
        issued = sheet["issued"]
    else:
        allowed = stage in WRITE_IN_STAGES
        read = []
        for marks in ballots or []:
            cands, written = split_marks(marks)
            read.append(er.read_ballot(cands, candidate_keys, places, written, listed=listed,
                                       eligible=eligible, write_ins_allowed=allowed))
        count = er.count_ballots(read, candidate_keys)
    facts = er.RoundFacts(members=members, present=present, quorum_met=quorum_met, issued=issued,
                          seats=places, count=count)
    if stage == ElectionStage.REVOTE:
        decision = er.decide_revote(facts)
    elif stage == ElectionStage.PRELIMINARY:
        decision = er.decide_preliminary(facts)
    elif stage in (ElectionStage.FIRST, ElectionStage.ANOTHER):
        decision = er.decide_round(facts, stage)
    else:
        raise RuleError(f"an election round is first, revote, another or preliminary, not {stage!r}")
    people = [p for p in decision.persons if not p.write_in]
    return {
        "status": decision.status, "stage": stage, "members": members, "present": present,
        "quorum_met": quorum_met, "issued": issued, "returned": count.returned, "valid": count.valid,
        "invalid": count.invalid, "refused": refused, "not_voted": decision.not_voted, "places": places,
        "candidates": [{"key": p.key, "for": p.for_, "against": p.against, "abstain": p.abstain,
                        "void": p.void, "passed": p.passed, "elected": p.elected} for p in people],
        "write_ins": [{"name": p.key[len(WRITE_IN):], "for": p.for_, "elected": p.elected}
                      for p in decision.persons if p.write_in],
        "elected": list(decision.elected), "tied": list(decision.tied),
        # 全体代表的过半数 (art. 25): the fewest votes that elect; none in a re-vote or 预选
        "threshold_votes": members // 2 + 1 if stage in WRITE_IN_STAGES else None,
        "runoff_places": decision.revote_seats, "unfilled": decision.unfilled,
    }


_COUNTS = ("issued", "returned", "valid", "invalid", "refused", "places")


def item_result(key: str, rounds: list[dict]) -> dict:
    """Fold an election's tallied rounds (in order) into its entry of the results format."""
    # A 预选 (and its re-votes) only makes the official list: the election starts at round 1 proper.
    start = next((i for i, r in enumerate(rounds) if r.get("stage") == ElectionStage.FIRST), 0)
    main = rounds[start:]
    first, last = main[0], rounds[-1]
    entry = {"key": key, **{k: first[k] for k in ("members", "present", "quorum_met", "issued", "returned",
                                                   "valid", "invalid", "refused", "not_voted")}}
    elected: list[str] = []
    unfilled = first["places"]
    for r in main:
        if r["status"] in (ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET):
            continue
        elected += [k for k in r["elected"] if k not in elected]
        if r.get("stage") != ElectionStage.REVOTE:
            unfilled = r["unfilled"]
    final = set(elected)
    entry["candidates"] = [{**c, "elected": c["key"] in final} for c in first["candidates"]]
    entry["write_ins"] = [{**w, "elected": WRITE_IN + w["name"] in final} for w in first.get("write_ins", [])]
    entry["elected"] = elected
    entry["unfilled"] = unfilled
    later = main[1:]
    runoff = _section(later, ElectionStage.REVOTE, stop=ElectionStage.ANOTHER)
    if runoff:
        entry["runoff"] = {**{k: runoff[0][k] for k in _COUNTS}, "candidates": runoff[0]["candidates"]}
    another = _section(later, ElectionStage.ANOTHER)
    if another:
        a = another[0]
        won = [k for r in another if r["status"] not in (ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET)
               for k in r["elected"]]
        entry["another"] = {**{k: a[k] for k in _COUNTS},
                            "candidates": [{**c, "elected": c["key"] in won} for c in a["candidates"]],
                            "write_ins": [{**w, "elected": WRITE_IN + w["name"] in won}
                                          for w in a.get("write_ins", [])],
                            "elected": won, "unfilled": a["unfilled"]}
        revote = _section(another[1:], ElectionStage.REVOTE)
        if revote:
            entry["another"]["runoff"] = {**{k: revote[0][k] for k in _COUNTS},
                                          "candidates": revote[0]["candidates"]}
    if last["status"] == ItemStatus.RUNOFF_PENDING:
        entry["tied"] = list(last["tied"])
    entry["status"] = last["status"]
    return entry


def _section(rounds: list[dict], stage: str, stop: str | None = None) -> list[dict]:
    """The rounds from the first of `stage` on (up to the first of `stop`)."""
    out: list[dict] = []
    for r in rounds:
        if stop is not None and r.get("stage") == stop:
            break
        if out or r.get("stage") == stage:
            out.append(r)
    return out
