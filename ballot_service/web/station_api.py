"""Blueprint for the paper counting station (API in openapi.yaml): returned paper ballots,
the hand-out desk and hand-count tally sheets. Every request carries the station's
credential: Authorization: Bearer <credential>."""
from __future__ import annotations

from flask import Blueprint, g, jsonify

from ballot_service.domain import election_items, intake, paper_ballots, tally_sheets, voting
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import ballots
from ballot_service.models import Item, Terminal
from ballot_service.vocab import Channel, Role, RoundStatus
from ballot_service.web.common import commit, field, get_db, json_body, limit_body_to_a_ballot, settings
from ballot_service.web.roles import CREDENTIAL, credential_call, requires

bp = Blueprint("station", __name__, url_prefix="/api")

bp.before_request(limit_body_to_a_ballot)


def _submit(channel: str, terminal_id: int | None = None):
    """Paper intake: 201 for a new cast, 200 for a retry (terminal casts: cast_endpoint.py)."""
    data = json_body()
    db = get_db()
    _no_candidate_teller(db, data.get("ballot"))
    # The session's id and body come with the credential check (terminals.authenticate_terminal):
    # loading the session here would begin a transaction, which on SQLite takes the write lock.
    sitting = intake.SittingRef(g.terminal.sitting_id, g.terminal.body_id)
    receipt = intake.accept(db, settings(), sitting, field(data, "ballot", str), field(data, "marks", dict),
                            channel=channel, terminal_id=terminal_id)
    if db.in_transaction():  # SQLite's group commit has committed the cast already
        commit()
    return jsonify(receipt.as_dict()), 200 if receipt.repeated else 201


def _no_candidate_teller(db, text) -> None:
    """A teller who is a candidate of the ballot's election is refused (election_items); the
    read transaction ends here so intake starts its own."""
    try:
        item_id = ballots.text_to_token(text)["payload"].get("item") if isinstance(text, str) else None
    except ballots.BallotRefused:
        return  # intake refuses and counts it
    if isinstance(item_id, int):
        election_items.refuse_candidate_teller(db, db.get(Item, item_id), g.terminal.id)
        db.rollback()


@bp.post("/station/paper")
@requires(Role.STATION, body=CREDENTIAL)
def station_paper():
    """A returned paper ballot: its QR text (scanned) and the marks the teller read off it."""
    return _submit(Channel.PAPER)


@bp.post("/station/hand-out")
@requires(Role.STATION, body=CREDENTIAL)
def station_hand_out():
    """The distribution desk activates a stack of ballots (their scanned QR texts) before
    handing it out: one count for the stack, no order within it and no identity."""
    data, db, sitting = credential_call()
    texts = field(data, "ballots", list)
    count = paper_ballots.hand_out_stack(db, settings(), sitting, texts, g.terminal.id)
    commit()
    return jsonify({"handed_out": count}), 201


@bp.post("/station/tally-sheet")
@requires(Role.STATION, body=CREDENTIAL)
def station_tally_sheet():
    """Hand-count totals (fallback): one teller's station enters, the other teller's station
    (another credential, the other role) confirms by entering the same figures; a mismatch is
    refused and the first entry stands. The teller is the credential's registered holder: a
    "teller" field in the request is not read."""
    data, db, sitting = credential_call()
    item = db.get(Item, field(data, "item_id", int))
    if item is None or item.sitting_id != sitting.id:
        raise NotFound("no such item in this session", where="item_id", zh="本会次没有这个表决事项")
    election_items.refuse_candidate_teller(db, item, g.terminal.id)
    if item.channel != Channel.TALLY_SHEET:
        raise InvalidInput(f"{item.title} is voted by {item.channel}, not a tally sheet", where="item_id", zh=f"《{item.title}》不以计票单计票")
    rnd = voting.current_round(item)
    # Locked and read again first: two tellers entering at once would each find no sheet (a
    # FOR UPDATE of no row locks nothing) and both insert one; now the second waits and confirms.
    voting.lock_rounds(db, [rnd])
    if rnd.status != RoundStatus.CLOSED:
        raise Conflict("close the vote before entering the tally sheet", where="item_id", zh="请先结束表决，再录入计票单")
    state = tally_sheets.enter(db, item, rnd, db.get(Terminal, g.terminal.id), field(data, "sheet", dict))
    commit()
    return jsonify({"state": state}), 201


