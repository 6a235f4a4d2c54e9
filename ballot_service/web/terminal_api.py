"""Blueprint for seat terminals and the paper counting station (API in openapi.yaml).
Every request carries the terminal's credential: Authorization: Bearer <credential>."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select

from ballot_service.crypto import keys
from ballot_service.db import read_phase
from ballot_service.domain import intake, paper_ballots, voting
from ballot_service.domain.sittings import (
    attendance_state,
    find_member,
    get_sitting,
    open_item,
    set_attendance,
)
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import ballots
from ballot_service.models import Attendance, Item, Round, TallySheet
from ballot_service.web.common import commit, field, get_db, json_body
from ballot_service.web.roles import requires

bp = Blueprint("terminal", __name__, url_prefix="/api")


@bp.before_request
def _limit_body():
    # Terminals and stations never need more than a ballot: refuse anything larger early.
    request.max_content_length = current_app.config["SETTINGS"].max_body_bytes


def _settings():
    return current_app.config["SETTINGS"]


def _item_view(item: Item, rnd: Round) -> dict:
    cands = {c.key: c for c in item.candidates}
    return {"item_id": item.id, "key": item.key, "kind": item.kind, "title": item.title,
            "secret": item.secret, "round": rnd.number, "places": rnd.places,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None,
            "candidates": [{"key": k, "title": cands[k].title, "description": cands[k].description}
                           for k in rnd.candidate_keys]}


@bp.get("/terminal/state")
@requires("terminal")
def terminal_state():
    db = get_db()
    term = g.terminal
    # Tablets poll this: read without SQLite's write lock, so polls never queue behind casts.
    with read_phase(db):
        sitting = get_sitting(db, term.sitting_id)
        att = db.scalar(select(Attendance).where(Attendance.sitting_id == sitting.id,
                                                 Attendance.terminal_id == term.id,
                                                 Attendance.status == "present"))
        vote = None
        voting_now = open_item(db, sitting)
        if voting_now is not None:
            vote = _item_view(voting_now, voting.current_round(voting_now))
        body = {"terminal": {"name": term.name, "seat": term.seat},
                "session": {"id": sitting.id, "name": sitting.name, "body": sitting.body.name},
                "member": {"member_no": att.member.member_no, "name": att.member.name} if att else None,
                "attendance": attendance_state(db, sitting).as_dict(), "vote": vote}
    return jsonify(body)


@bp.post("/terminal/checkin")
@requires("terminal")
def terminal_checkin():
    data = json_body()
    db = get_db()
    sitting = get_sitting(db, g.terminal.sitting_id)
    member = find_member(db, sitting.body_id, field(data, "member", str))
    set_attendance(db, sitting, member, "present", "terminal", terminal_id=g.terminal.id)
    state = attendance_state(db, sitting).as_dict()
    commit()
    return jsonify({"member": {"member_no": member.member_no, "name": member.name}, "attendance": state})


@bp.get("/terminal/ballot")
@requires("terminal")
def terminal_ballot():
    db = get_db()
    with read_phase(db):  # delivery writes nothing (voting.deliver_ballot)
        item, rnd, token_text = voting.deliver_ballot(db, g.terminal, g.credential)
        body = {"vote": _item_view(item, rnd), "ballot": token_text}
    return jsonify(body)


# POST /terminal/cast (a seat terminal's cast) is served in front of Flask: cast_endpoint.py.


def _submit(channel: str, terminal_id: int | None = None):
    """Paper intake: 201 for a new cast, 200 for a retry (terminal casts: cast_endpoint.py)."""
    data = json_body()
    db = get_db()
    # The session's id and body come with the credential check (terminals.authenticate_terminal):
    # loading the session here would begin a transaction, which on SQLite takes the write lock.
    sitting = intake.SittingRef(g.terminal.sitting_id, g.terminal.body_id)
    receipt = intake.accept(db, _settings(), sitting, field(data, "ballot", str), field(data, "marks", dict),
                            channel=channel, terminal_id=terminal_id)
    if db.in_transaction():  # SQLite's group commit has committed the cast already
        commit()
    return jsonify(receipt.as_dict()), 200 if receipt.repeated else 201


@bp.post("/station/paper")
@requires("station")
def station_paper():
    """A returned paper ballot: its QR text (scanned) and the marks the teller read off it."""
    return _submit("paper")


@bp.post("/station/hand-out")
@requires("station")
def station_hand_out():
    """The distribution desk scans a ballot as it is handed out (a count; no identity)."""
    data = json_body()
    db = get_db()
    sitting = get_sitting(db, g.terminal.sitting_id)
    token = ballots.text_to_token(field(data, "ballot", str))
    payload = token["payload"]
    item = db.get(Item, payload.get("item")) if isinstance(payload.get("item"), int) else None
    if item is None or item.sitting_id != sitting.id:
        raise NotFound("this ballot is not for a vote of this session", where="ballot")
    key = keys.body_signing_key(_settings(), sitting.body_id)
    rnd = db.scalar(select(Round).where(Round.item_id == item.id, Round.number == payload.get("round")))
    if rnd is None:
        raise NotFound("no such round", where="ballot")
    ballots.verify_token(key.public_key, token, body=sitting.body_id, session=sitting.id, item=item.id,
                         round_no=rnd.number)
    if rnd.status not in ("pending", "open"):
        raise Conflict("this vote is closed; no more ballots can be handed out", where="ballot")
    paper_ballots.hand_out(db, payload["serial"], rnd)
    commit()
    return jsonify({"handed_out": True}), 201


@bp.post("/station/tally-sheet")
@requires("station")
def station_tally_sheet():
    """Hand-count totals (fallback): the first teller enters, a second teller confirms by
    entering the same figures; a mismatch is refused and the first entry stands."""
    data = json_body()
    db = get_db()
    sitting = get_sitting(db, g.terminal.sitting_id)
    item = db.get(Item, field(data, "item_id", int))
    if item is None or item.sitting_id != sitting.id:
        raise NotFound("no such item in this session", where="item_id")
    if item.channel != "tally_sheet":
        raise InvalidInput(f"item {item.key} is voted by {item.channel}, not a tally sheet", where="item_id")
    rnd = voting.current_round(item)
    if rnd.status != "closed":
        raise Conflict("close the vote before entering the tally sheet", where="item_id")
    teller = field(data, "teller", str)
    sheet_data = validate_sheet(field(data, "sheet", dict), list(rnd.candidate_keys))
    existing = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
    from ballot_service.db import utcnow
    from ballot_service.domain import audit

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
    commit()
    return jsonify({"state": state}), 201


def validate_sheet(raw: dict, candidate_keys: list[str]) -> dict:
    def whole(v, where):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
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
