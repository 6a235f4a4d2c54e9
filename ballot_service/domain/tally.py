"""Tally: a closed round's stored casts (or confirmed tally sheet) and frozen figures loaded,
counted by rules.tally, and the result stored with its audit event.

The counting itself is pure (rules/tally.py) so an auditor's tool recomputes the same
figures from an exported bundle; this module only loads rows and stores what it decides.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.domain import audit, election_items, scan_queue
from ballot_service.errors import Conflict
from ballot_service.models import Cast, Item, Refusal, Round, TallySheet
from ballot_service.rules.evaluation_tally import scale_of
from ballot_service.rules.tally import item_result, round_result
from ballot_service.vocab import AuditKind, Channel, ItemKind, ItemStatus, RoundStatus, status_name


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
    return scale_of(item.options, item.grading) if item.kind == ItemKind.EVALUATION else None


def results_for_items(items: list[Item]) -> list[dict]:
    out = []
    for item in items:
        done = [r.result for r in item.rounds if r.status == RoundStatus.TALLIED and r.result]
        if done:
            out.append(item_result(item.key, item.kind, done))
    return out
