"""Blueprint for seat terminals (API in openapi.yaml): state, check-in, the round key's
announcement and blind issuance of the ballot. Every request carries the tablet's
credential: Authorization: Bearer <credential>. The counting
station's endpoints are station_api.py; a tablet's cast is cast_endpoint.py."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select

from ballot_service.db import read_phase
from ballot_service.domain import election_items, issuance, voting
from ballot_service.domain.sittings import attendance_state, get_sitting, open_item
from ballot_service.domain.terminals import check_in_at_terminal
from ballot_service.errors import NotFound
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Attendance, Item, Round
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
            "round_ref": rnd.ref if item.channel == "terminal" else None,
            "key_fingerprint": rnd.blind_key_fingerprint,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None,
            "candidates": [{"key": k, "title": cands[k].title, "description": cands[k].description}
                           for k in rnd.candidate_keys],
            **({"write_in": election_items.write_in_policy(item, rnd), "stage": rnd.stage}
               if election_items.is_election(item) else {})}


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


@bp.get("/terminal/roster-search")
@requires("terminal")
def terminal_roster_search():
    """另选他人 on the tablet: deputies whose name or 代表证号 contains `q` (the open election's
    listed candidates are not offered)."""
    db = get_db()
    with read_phase(db):
        sitting = get_sitting(db, g.terminal.sitting_id)
        found = election_items.search_roster(db, open_item(db, sitting), request.args.get("q", ""))
    return jsonify({"members": found})


@bp.post("/terminal/checkin")
@requires("terminal")
def terminal_checkin():
    data = json_body()
    db = get_db()
    sitting = get_sitting(db, g.terminal.sitting_id)
    # The seat decides who may check in here (terminals.check_in_at_terminal).
    member = check_in_at_terminal(db, sitting, g.terminal.id, field(data, "member", str))
    state = attendance_state(db, sitting).as_dict()
    commit()
    return jsonify({"member": {"member_no": member.member_no, "name": member.name}, "attendance": state})


@bp.get("/terminal/round-key")
@requires("terminal")
def terminal_round_key():
    """The open round's round_key_announced event (signed by the body's key, in the chain)."""
    db = get_db()
    with read_phase(db):
        sitting = get_sitting(db, g.terminal.sitting_id)
        item = open_item(db, sitting)
        if item is None or item.channel != "terminal":
            raise NotFound("no terminal vote is open", where="vote", zh="当前没有进行中的电子表决")
        body = issuance.announcement(db, voting.current_round(item))
    return jsonify(body)


@bp.post("/terminal/blind-sign")
@requires("terminal")
def terminal_blind_sign():
    """One blind signature for this terminal's member in the open round, once (issuance.py)."""
    data = json_body()
    db = get_db()
    blind_sig = issuance.blind_sign_for_terminal(db, g.terminal, field(data, "round_ref", str),
                                                 field(data, "blinded_msg", str))
    commit()
    return jsonify({"blind_sig": b64url_encode(blind_sig)})
