"""Hand-count tally sheets (计票单): the tellers' totals for a round counted by hand. The
first teller enters the figures, a second confirms by entering the same figures; a mismatch
is refused and the first entry stands. Only flushes."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.db import utcnow
from ballot_service.domain import audit
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.models import Item, Round, TallySheet
from ballot_service.numbers import is_int


def enter(db: Session, item: Item, rnd: Round, teller: str, raw_sheet: dict) -> str:
    """Record a teller's entry of the sheet: 'entered' (first) or 'confirmed' (second)."""
    sitting = item.sitting
    sheet_data = validate_sheet(raw_sheet, list(rnd.candidate_keys))
    existing = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
    if existing is None:
        db.add(TallySheet(round_id=rnd.id, data=sheet_data, entered_by=teller))
        audit.append(db, "tally_sheet_entered", {"item_id": item.id, "round": rnd.number, "teller": teller,
                                                 "sheet": sheet_data}, sitting_id=sitting.id)
        state = "entered"
    elif existing.confirmed_by is not None:
        raise Conflict("this tally sheet is already confirmed", where="item_id")
    elif existing.entered_by == teller:
        raise Conflict("a second teller must confirm the sheet", where="teller")
    elif existing.data != sheet_data:
        raise Conflict("the figures differ from the first teller's entry; count again", where="sheet")
    else:
        existing.confirmed_by, existing.confirmed_at = teller, utcnow()
        audit.append(db, "tally_sheet_confirmed", {"item_id": item.id, "round": rnd.number, "teller": teller},
                     sitting_id=sitting.id)
        state = "confirmed"
    return state


def validate_sheet(raw: dict, candidate_keys: list[str]) -> dict:
    def whole(v, where):
        if not is_int(v) or v < 0:
            raise InvalidInput("must be a whole number >= 0", where=where)
        return v

    out = {k: whole(raw.get(k), f"sheet.{k}") for k in ("issued", "returned", "invalid")}
    if out["invalid"] > out["returned"]:
        raise InvalidInput("invalid cannot exceed returned", where="sheet.invalid")
    counts = raw.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(candidate_keys):
        raise InvalidInput(f"counts must give every candidate: {', '.join(candidate_keys)}", where="sheet.counts")
    valid = out["returned"] - out["invalid"]
    out["counts"] = {}
    for k in candidate_keys:
        c = counts[k]
        if not isinstance(c, dict):
            raise InvalidInput("must be an object", where=f"sheet.counts.{k}")
        row = {m: whole(c.get(m, 0), f"sheet.counts.{k}.{m}") for m in ("for", "against", "abstain", "void")}
        if sum(row.values()) != valid:
            raise InvalidInput(f"for+against+abstain+void ({sum(row.values())}) must equal valid ballots ({valid})",
                               where=f"sheet.counts.{k}")
        out["counts"][k] = row
    return out
