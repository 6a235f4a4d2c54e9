"""Tally: casts → rules → round results, and the item result in the results format.

`round_result` and `item_result` are pure (no Flask, no SQL) so an auditor's tool
recomputes the same figures from an exported bundle; `tally_round` is the DB glue.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.domain import audit, election_items, election_tally, evaluation_items, scan_queue
from ballot_service.errors import Conflict
from ballot_service.models import Cast, Item, Refusal, Round, TallySheet
from ballot_service.vocab import AuditKind, Channel, ItemKind, ItemStatus, RoundStatus, status_name


def round_result(*, item_kind: str, candidate_keys: list[str], places: int | None, rule: rules.Rule,
                 members: int, present: int, quorum_met: bool, issued: int,
                 ballots: Iterable[Mapping[str, str]] | None = None, sheet: dict | None = None,
                 refused: int = 0, rescanned: int = 0, scale: dict | None = None,
                 election: dict | None = None) -> dict:
    """Count one round from its ballots (or a tellers' sheet) and decide it. `scale`: an
    evaluation's options and grading (evaluation_items.scale_of); `election`: an election
    round's {stage, listed, eligible} (election_tally.round_result)."""
    if item_kind == ItemKind.EVALUATION:
        return evaluation_items.round_result(
            candidate_keys=candidate_keys, scale=scale or evaluation_items.scale_of(None, None), rule=rule,
            members=members, present=present, quorum_met=quorum_met, issued=issued, ballots=ballots,
            sheet=sheet, refused=refused)
    if item_kind == ItemKind.ELECTION:
        return election_tally.round_result(
            candidate_keys=candidate_keys, places=places, members=members, present=present,
            quorum_met=quorum_met, issued=issued, ballots=ballots, sheet=sheet, refused=refused, **election)
    if sheet is not None:
        valid = sheet["returned"] - sheet["invalid"]
        counts = [rules.CandidateCount(k, sheet["counts"][k]["for"], sheet["counts"][k]["against"],
                                       sheet["counts"][k]["abstain"], sheet["counts"][k].get("void", 0))
                  for k in candidate_keys]
        count = rules.BallotCount(valid, sheet["invalid"], counts)
        issued = sheet["issued"]
    else:
        count = rules.count_ballots(candidate_keys, ballots or [], places)
    decision = rules.decide_round(rules.RoundFacts(
        item_kind=item_kind, members=members, present=present, quorum_met=quorum_met, issued=issued,
        returned=count.returned, valid=count.valid, invalid=count.invalid, places=places,
        counts=count.candidates, rule=rule))
    out = {
        "status": decision.status, "members": members, "present": present, "quorum_met": quorum_met,
        "issued": issued, "returned": count.returned, "valid": count.valid, "invalid": count.invalid,
        "refused": refused, "not_voted": decision.not_voted, "places": places,
        "rule": {"base": rule.base, "majority": rule.majority}, "threshold_base": decision.base,
        "threshold_votes": rules.minimum_votes(decision.base, rule.majority),
        "candidates": [_candidate(c) for c in decision.candidates],
    }
    if rescanned:  # 重复扫描: the same paper ballot read again, neither returned nor refused
        out["rescanned"] = rescanned
    if item_kind == ItemKind.LIVELIHOOD:
        out.update(selected=decision.selected, tied=decision.tied, runoff_places=decision.runoff_places,
                   shortfall=decision.shortfall)
    if item_kind == ItemKind.RESOLUTION:
        out["passed"] = bool(decision.passed)
    return out


def _candidate(c: rules.CandidateOutcome) -> dict:
    d = {"key": c.key, "for": c.for_, "against": c.against, "abstain": c.abstain, "void": c.void,
         "passed": c.passed}
    if c.selected is not None:
        d["selected"] = c.selected
    return d


def item_result(key: str, kind: str, rounds: list[dict]) -> dict:
    """Combine an item's tallied rounds into one entry of the results format (FORMAT.md)."""
    if kind == ItemKind.ELECTION:
        return election_tally.item_result(key, rounds)
    first, last = rounds[0], rounds[-1]
    entry = {k: first[k] for k in ("members", "present", "quorum_met", "issued", "returned", "valid",
                                   "invalid", "refused", "not_voted")}
    entry = {"key": key, **entry}
    if first.get("rescanned"):
        entry["rescanned"] = first["rescanned"]
    candidates = [dict(c) for c in first["candidates"]]
    if kind == ItemKind.LIVELIHOOD:
        selected = list(first["selected"])
        for later in rounds[1:]:
            selected += later["selected"]
        final = set(selected) if last["status"] in (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING) else set()
        for c in candidates:
            c["selected"] = c["key"] in final
        entry["selected"] = selected if last["status"] in (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING) else []
        if last["status"] == ItemStatus.RUNOFF_PENDING:
            entry["tied"] = list(last["tied"])
        if len(rounds) > 1:
            r = rounds[1]
            entry["runoff"] = {k: r[k] for k in ("issued", "returned", "valid", "invalid", "refused", "places")}
            entry["runoff"]["candidates"] = r["candidates"]
    if kind in (ItemKind.APPOINTMENT, ItemKind.EVALUATION):
        for c in candidates:
            c.pop("selected", None)
    entry["candidates"] = candidates
    if kind == ItemKind.RESOLUTION:
        entry["passed"] = bool(last.get("passed"))
    entry["status"] = last["status"]
    return entry


def tally_item(db: Session, item: Item) -> dict:
    """Tally the item's closed round (the newest one)."""
    closed = [r for r in item.rounds if r.status == RoundStatus.CLOSED]
    if not closed:
        raise Conflict(f"{item.title} has no closed round to tally; close the vote first", where="item",
                       zh=f"《{item.title}》没有已结束的轮次可计票，请先结束表决")
    return tally_round(db, item, closed[-1])


def tally_round(db: Session, item: Item, rnd: Round) -> dict:
    """Tally a closed round; a tie at the cut-off creates the next round for the tied."""
    if rnd.status != RoundStatus.CLOSED:
        zh, en = status_name(rnd.status)
        raise Conflict(f"round {rnd.number} of {item.title} is {en}: only a closed round can be tallied",
                       where="item", zh=f"《{item.title}》第{rnd.number}轮{zh}：只有已结束的轮次才能计票")
    scan_queue.require_none_pending(db, item, rnd, "tally", "计票")
    result = recount_round(db, item, rnd)
    if item.channel == Channel.TALLY_SHEET:
        rnd.issued = result["issued"]  # the tellers' figure
    rnd.result, rnd.status = result, RoundStatus.TALLIED
    item.status = result["status"]
    if election_items.is_election(item):
        election_items.after_tally(item, rnd, result)
    elif result["status"] == ItemStatus.RUNOFF_PENDING:
        item.rounds.append(Round(number=rnd.number + 1, places=result["runoff_places"],
                                 candidate_keys=result["tied"], status=RoundStatus.PENDING))
    db.flush()
    audit.append(db, AuditKind.TALLIED, {"item_id": item.id, "round": rnd.number, "result": result},
                 sitting_id=item.sitting_id)
    return result


def recount_round(db: Session, item: Item, rnd: Round) -> dict:
    """A round's result counted afresh from what is stored, never from `Round.result`: its
    casts, or its confirmed tally sheet, with the round's frozen N, P, I and refusals. The tally
    stores this; a record is signed only if it still equals the stored result (records.py)."""
    refused = sum(db.scalars(select(Refusal.count).where(Refusal.round_id == rnd.id)))
    common = dict(item_kind=item.kind, candidate_keys=list(rnd.candidate_keys), places=rnd.places,
                  rule=rules.Rule(item.base, item.majority), members=rnd.members, present=rnd.present,
                  quorum_met=bool(rnd.quorum_met), refused=refused, rescanned=rnd.rescanned or 0,
                  scale=item_scale(item), election=_election_facts(db, item, rnd))
    if rnd.quorum_met is False:  # never opened: recorded without quorum (record_quorum_failure)
        return round_result(issued=0, ballots=[], **common)
    if item.channel == Channel.TALLY_SHEET:
        sheet = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
        if sheet is None or sheet.confirmed_by is None:
            raise Conflict("the tally sheet must be entered and confirmed by a second teller first",
                           where="tally_sheet", zh="须先录入计票单，并由另一名计票人员确认")
        return round_result(issued=sheet.data["issued"], sheet=sheet.data, **common)
    marks = db.scalars(select(Cast.marks).where(Cast.round_id == rnd.id))
    return round_result(issued=rnd.issued or 0, ballots=marks, **common)


def _election_facts(db: Session, item: Item, rnd: Round) -> dict | None:
    if not election_items.is_election(item):
        return None
    return {"stage": rnd.stage, "listed": election_items.listed_names(item, rnd),
            "eligible": election_items.eligible_names(db, item)}


def record_quorum_failure(db: Session, item: Item, rnd: Round, members: int, present: int) -> dict:
    """When the secretariat gives up opening for lack of quorum, the round is decided as such."""
    rnd.members, rnd.present, rnd.quorum_met, rnd.issued = members, present, False, 0
    rnd.status = RoundStatus.CLOSED
    result = round_result(item_kind=item.kind, candidate_keys=list(rnd.candidate_keys), places=rnd.places,
                          rule=rules.Rule(item.base, item.majority), members=members, present=present,
                          quorum_met=False, issued=0, ballots=[], scale=item_scale(item),
                          election=_election_facts(db, item, rnd))
    rnd.result, rnd.status, item.status = result, RoundStatus.TALLIED, result["status"]
    db.flush()
    audit.append(db, AuditKind.TALLIED, {"item_id": item.id, "round": rnd.number, "result": result},
                 sitting_id=item.sitting_id)
    return result


def item_scale(item: Item) -> dict | None:
    """An evaluation item's options and grading as the count takes them; None for other kinds."""
    return evaluation_items.scale_of(item.options, item.grading) if item.kind == ItemKind.EVALUATION else None


def results_for_items(items: list[Item]) -> list[dict]:
    out = []
    for item in items:
        done = [r.result for r in item.rounds if r.status == RoundStatus.TALLIED and r.result]
        if done:
            out.append(item_result(item.key, item.kind, done))
    return out
