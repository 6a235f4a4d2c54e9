"""Hand-count tally sheets (计票单): the tellers' totals for a round counted by hand. One
teller's counting-station credential enters the figures; a different credential held by the
other teller role (计票人 counter / 监票人 scrutineer) confirms by entering the same figures; a
mismatch is refused and the first entry stands. The teller is always the credential's
registered holder, never request text. Only flushes."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.db import utcnow
from ballot_service.domain import audit, election_items, evaluation_items, sheet_write_ins
from ballot_service.errors import Conflict, Forbidden, InvalidInput
from ballot_service.models import Item, Round, TallySheet, Terminal
from ballot_service.numbers import is_int
from ballot_service.rules.election_tally import WRITE_IN_STAGES
from ballot_service.vocab import AuditKind, ItemKind, TellerRole, TerminalKind, label_pair


def teller_of(station: Terminal | None) -> tuple[str, str]:
    """(holder, role) of a counting-station credential registered to a teller, else Forbidden."""
    if station is None or station.kind != TerminalKind.COUNTING_STATION or not station.holder \
            or station.teller_role not in (TellerRole.COUNTER, TellerRole.SCRUTINEER):
        raise Forbidden("this counting-station credential is not registered to a teller (counter or "
                        "scrutineer): the secretariat registers each teller's station with their name",
                        where="credential", zh="该计票站凭据未登记计票人或监票人，不能录入计票单")
    return station.holder, station.teller_role


def enter(db: Session, item: Item, rnd: Round, station: Terminal, raw_sheet: dict) -> str:
    """Record a teller's entry of the sheet: 'entered' (first) or 'confirmed' (second)."""
    sitting = item.sitting
    holder, role = teller_of(station)
    election = None
    if election_items.is_election(item):
        election = {"stage": rnd.stage, "places": rnd.places, "listed": election_items.listed_names(item, rnd),
                    "eligible": election_items.eligible_names(db, item)}
    sheet_data = validate_sheet(raw_sheet, list(rnd.candidate_keys), present=rnd.present,
                                options=evaluation_items.option_keys(item.options) if item.kind == ItemKind.EVALUATION
                                else None, election=election)
    existing = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id).with_for_update())
    teller = {"teller": holder, "teller_role": role, "terminal_id": station.id}
    if existing is None:
        db.add(TallySheet(round_id=rnd.id, data=sheet_data, entered_by=holder, entered_terminal_id=station.id))
        db.flush()
        audit.append(db, AuditKind.TALLY_SHEET_ENTERED, {"item_id": item.id, "round": rnd.number, **teller,
                                                 "sheet": sheet_data}, sitting_id=sitting.id)
        return "entered"
    if existing.confirmed_by is not None:
        raise Conflict("this tally sheet is already confirmed", where="item_id", zh="该计票单已确认")
    first = db.get(Terminal, existing.entered_terminal_id) if existing.entered_terminal_id else None
    if first is None or first.id == station.id:
        raise Conflict("a second teller, with their own credential, must confirm the sheet", where="teller",
                       zh="须由另一名计票人员用其本人的计票站凭据确认计票单")
    if first.teller_role == role:
        other = TellerRole.SCRUTINEER if role == TellerRole.COUNTER else TellerRole.COUNTER
        raise Conflict(f"the sheet was entered by a {role}; a {other} confirms it", where="teller",
                       zh=f"计票单由{label_pair(role, TellerRole)[0]}录入，须由{label_pair(other, TellerRole)[0]}确认")
    if existing.data != sheet_data:
        raise Conflict("the figures differ from the first teller's entry; count again", where="sheet",
                       zh="与第一名计票人员录入的数字不一致，请重新清点")
    existing.confirmed_by, existing.confirmed_at = holder, utcnow()
    existing.confirmed_terminal_id = station.id
    db.flush()
    audit.append(db, AuditKind.TALLY_SHEET_CONFIRMED, {"item_id": item.id, "round": rnd.number, **teller},
                 sitting_id=sitting.id)
    return "confirmed"


def _whole(v, where):
    if not is_int(v) or v < 0:
        raise InvalidInput("must be a whole number >= 0", where=where, zh="须为不小于 0 的整数")
    return v


def validate_sheet(raw: dict, candidate_keys: list[str], *, present: int | None = None,
                   options: tuple[str, ...] | None = None, election: dict | None = None) -> dict:
    """The figures as stored: whole numbers >= 0; issued at most `present` (实到 at opening);
    returned may exceed issued (over-return: recorded, and the vote is void by the rules);
    each candidate's for+against+abstain+void equals the valid ballots (returned - invalid).
    `election`: an election round's {stage, places, listed, eligible}; its sheet may add the
    written-in persons (sheet_write_ins.take), and is held to the seats."""
    if "write_ins" in raw and (election is None or election["stage"] not in WRITE_IN_STAGES):
        raise InvalidInput("only the first vote or a further election (另行选举) of an election takes written-in "
                           "persons (另选他人)", where="sheet.write_ins", zh="只有选举的第一次投票和另行选举的计票单可以填写另选他人")
    out = {k: _whole(raw.get(k), f"sheet.{k}") for k in ("issued", "returned", "invalid")}
    if present is not None and out["issued"] > present:
        raise InvalidInput(f"issued ({out['issued']}) cannot exceed the members present at the opening "
                           f"({present})", where="sheet.issued",
                           zh=f"发出选票数（{out['issued']}）不能多于开始表决时的实到人数（{present}）")
    if out["invalid"] > out["returned"]:
        raise InvalidInput("invalid cannot exceed returned", where="sheet.invalid", zh="无效票数不能多于收回票数")
    counts = raw.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(candidate_keys):
        raise InvalidInput(f"counts must give every candidate: {', '.join(candidate_keys)}", where="sheet.counts", zh="计票单须填写每一位候选人（每一项）的票数")
    valid = out["returned"] - out["invalid"]
    if options is not None:  # an evaluation: a count per option (evaluation_items)
        out["counts"] = evaluation_items.sheet_counts(counts, candidate_keys, list(options), valid, _whole)
        return out
    out["counts"] = {}
    for k in candidate_keys:
        c = counts[k]
        if not isinstance(c, dict):
            raise InvalidInput("must be an object", where=f"sheet.counts.{k}", zh="计票单票数格式不正确")
        row = {m: _whole(c.get(m, 0), f"sheet.counts.{k}.{m}") for m in ("for", "against", "abstain", "void")}
        if sum(row.values()) != valid:
            raise InvalidInput(f"for+against+abstain+void ({sum(row.values())}) must equal valid ballots ({valid})",
                               where=f"sheet.counts.{k}", zh=f"赞成、反对、弃权、无效之和（{sum(row.values())}）须等于有效票数（{valid}）")
        out["counts"][k] = row
    if election is not None:
        written = sheet_write_ins.take(raw.get("write_ins", []), candidate_keys, election, _whole)
        sheet_write_ins.check_seats(out["counts"], written, election["places"], valid)
        if written:
            out["write_ins"] = written
    return out
