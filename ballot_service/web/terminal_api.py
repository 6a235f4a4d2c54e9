"""Blueprint for seat terminals (API in openapi.yaml): state, check-in, the round key's
announcement and blind issuance of the ballot. Every request carries the tablet's
credential: Authorization: Bearer <credential>. The counting
station's endpoints are station_api.py; a tablet's cast is cast_endpoint.py."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import zlib

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select

from ballot_service import rules
from ballot_service.db import read_phase, utcnow
from ballot_service.domain import (
    ballot_sets,
    election_items,
    issuance,
    key_announcements,
    meetings,
    seat_state,
    tablet_setup,
    voting,
)
from ballot_service.domain.sittings import attendance_state, get_sitting, open_item
from ballot_service.domain.terminals import check_in_at_terminal
from ballot_service.errors import InvalidInput, NotFound
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Attendance, Item, Member, Round, Terminal
from ballot_service.vocab import BLIND_CHANNELS, ItemKind, Presence, Role, SittingStatus
from ballot_service.web.common import commit, field, get_db, json_body, limit_body_to_a_ballot, settings
from ballot_service.web.roles import CREDENTIAL, credential_call, credential_sitting, requires

bp = Blueprint("terminal", __name__, url_prefix="/api")
log = logging.getLogger(__name__)
SEAT_ENVIRON = "ballot_service.seat"  # (terminal id, sitting id, body id, vote open)

bp.before_request(limit_body_to_a_ballot)


def _settings():
    return current_app.config["SETTINGS"]


def _item_view(item: Item, rnd: Round, announced: dict[int, dict]) -> dict:
    """The state's vote: the item's open round as a tablet shows it. `announced`: the open
    rounds' key announcements (key_announcements.announcements)."""
    cands = {c.key: c for c in item.candidates}
    round_key = None
    if item.channel in BLIND_CHANNELS:
        round_key = announced.get(rnd.id)
        if round_key is None:  # never expected (announced in the opening's transaction): the tablet refuses
            log.error("open round %s has no round_key_announced event", rnd.ref)
    return {"item_id": item.id, "key": item.key, "kind": item.kind, "title": item.title,
            "secret": item.secret, "round": rnd.number, "places": rnd.places,
            "round_ref": rnd.ref if item.channel in BLIND_CHANNELS else None,
            "key_fingerprint": rnd.blind_key_fingerprint,
            # The round_key_announced event itself, checked by the tablet as GET round-key's: a
            # hall's tablets take their ballots at once without 3,000 requests for it first.
            "round_key": round_key,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None,
            "candidates": [{"key": k, "title": cands[k].title, "description": cands[k].description,
                            "office": cands[k].office} for k in rnd.candidate_keys],
            **({"options": item.options} if item.kind == ItemKind.EVALUATION else {}),
            **({"write_in": election_items.write_in_policy(item, rnd), "stage": rnd.stage}
               if election_items.is_election(item) else {})}


def _as_of_vote(attendance: dict, rnd: Round, body_kind: str) -> None:
    """The open vote's 应到/实到 (fixed at its opening) in place of the live count."""
    attendance.update(members=rnd.members, present=rnd.present, quorum_met=bool(rnd.quorum_met),
                      quorum_words=list(rules.quorum_sentence(body_kind, rnd.members, rnd.present)))


def _shared_state(db, sitting_id: int) -> dict:
    """What every tablet of the sitting is told (all but its own name, seat and member), as
    pre-serialised JSON, with who is checked in at which terminal: built once per state
    version (seat_state.py), not once per poll."""
    sitting = get_sitting(db, sitting_id)
    attendance = attendance_state(db, sitting).as_dict()
    vote = None
    voting_now = open_item(db, sitting)
    if voting_now is not None:
        rnd = voting.current_round(voting_now)
        others = [(m, voting.current_round(m)) for m in ballot_sets.open_members(db, voting_now)[1:]] \
            if voting_now.ballot_set else []
        announced = key_announcements.announcements(
            db, [r for i, r in [(voting_now, rnd), *others] if i.channel in BLIND_CHANNELS])
        vote = _item_view(voting_now, rnd, announced)
        if voting_now.ballot_set:  # one ballot for the set: every election of it open now
            vote["ballot_set"] = [dict(vote)] + [_item_view(m, r, announced) for m, r in others]
        # During a vote the tablet shows the 应到/实到 of the vote, as the presiding screen
        # does (fixed at opening): a late check-in does not make the two disagree.
        _as_of_vote(attendance, rnd, sitting.body.kind)
    shared = {"session": {"id": sitting.id, "name": sitting.name, "body": sitting.body.name,
                          "closed": sitting.status != SittingStatus.OPEN,
                          "meeting": meetings.meeting_name(meetings.current_number(db, sitting))},
              "attendance": attendance, "vote": vote}
    members = {tid: json.dumps({"member_no": no, "name": name}, ensure_ascii=False, separators=(",", ":"))
               for tid, no, name in db.execute(
                   select(Attendance.terminal_id, Member.member_no, Member.name)
                   .join(Member, Member.id == Attendance.member_id)
                   .where(Attendance.sitting_id == sitting.id, Attendance.status == Presence.PRESENT,
                          Attendance.terminal_id.is_not(None)))}
    text = json.dumps(shared, ensure_ascii=False, separators=(",", ":"))[1:]  # without "{"
    return {"json": text, "digest": hashlib.blake2b(text.encode(), digest_size=8).hexdigest(),
            "members": members, "voting": voting_now is not None, "open": sitting.status == SittingStatus.OPEN}


def seat_states(app) -> seat_state.VersionedCache:
    """This app's cache (one per app: each has its own database); web/seat_wake.py reads it too."""
    return app.extensions.setdefault("seat_states", seat_state.VersionedCache(_shared_state))


def terminal_json(name: str, seat: str | None) -> str:
    """The tablet state's "terminal" member (seat_answer's `terminal_json`)."""
    return json.dumps({"name": name, "seat": seat}, ensure_ascii=False, separators=(",", ":"))


def seat_answer(built: seat_state.Built, terminal_id: int, terminal_json: str) -> tuple[str, str | None]:
    """One tablet's state (JSON text) from the sitting's shared state, and its ETag (None when
    the state changed while it was built): the state endpoint's answer, and the woken
    long-polls' (web/seat_wake.py), so the two are the same bytes. The tag is of the content,
    not of the state version: a tally, record or publish moves the version but changes nothing
    a tablet shows, and 3,000 woken tablets re-asking Flask at each of them held up the
    secretariat's next request by seconds (benchmarks/bench_hall.py)."""
    shared = built.value
    own = '{"terminal":%s,"member":%s,' % (terminal_json, shared["members"].get(terminal_id, "null"))
    if built.version is None:
        return own + shared["json"], None
    return own + shared["json"], f"{shared['digest']}-{zlib.crc32(own.encode()):08x}"


@bp.get("/terminal/state")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_state():
    """The tablet's state, with an ETag that changes whenever the answer would: a request whose
    If-None-Match (or ?wait=) names it gets 304."""
    db = get_db()
    term = g.terminal
    # Tablets poll this: read without SQLite's write lock, so polls never queue behind casts.
    with read_phase(db):
        built = seat_states(current_app).get(db, term.sitting_id, term.body_id)
        shared = built.value
        seen = None if shared["voting"] or not shared["open"] else db.scalar(
            select(Terminal.last_seen_at).where(Terminal.id == term.id))
    # Set up / last seen, coarse, and nothing at all while a vote is open (tablet_setup.py).
    if not shared["voting"] and shared["open"] and (
            seen is None or utcnow() - seen >= dt.timedelta(seconds=tablet_setup.SEEN_EVERY_S)):
        tablet_setup.note_seen_grouped(db.get_bind(), term.id)
    # Who was answered, for a long-poll woken later without Flask (web/seat_wake.py).
    request.environ[SEAT_ENVIRON] = (term.id, term.sitting_id, term.body_id, shared["voting"])
    text, tag = seat_answer(built, term.id, terminal_json(term.name, term.seat))
    if tag is None:  # changed while it was built: no tag to revalidate with
        return Response(text, mimetype="application/json")
    # ?wait=<tag>: the seat page's long-poll (web/asgi.py holds it; under plain WSGI it is a poll)
    unchanged = request.if_none_match.contains(tag) or request.args.get("wait", "").strip('"') == tag
    resp = Response(None if unchanged else text, status=304 if unchanged else 200, mimetype="application/json")
    resp.set_etag(tag)
    return resp


@bp.get("/terminal/roster-search")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_roster_search():
    """另选他人 on the tablet: deputies whose name or 代表证号 contains `q` (the open election's
    listed candidates are not offered; in a ballot set, those of the election ?item_id= names)."""
    db = get_db()
    with read_phase(db):
        sitting = credential_sitting(db)
        item = open_item(db, sitting)
        # in a ballot set, the election whose 另选他人 is being filled (?item_id=)
        chosen = request.args.get("item_id", "")
        item = next((m for m in ballot_sets.open_members(db, item) if str(m.id) == chosen), item) if item else None
        found = election_items.search_roster(db, item, request.args.get("q", ""))
    return jsonify({"members": found})


@bp.post("/terminal/checkin")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_checkin():
    data, db, sitting = credential_call()
    # The seat decides who may check in here (terminals.check_in_at_terminal).
    member = check_in_at_terminal(db, sitting, g.terminal.id, field(data, "member", str))
    state = attendance_state(db, sitting).as_dict()
    voting_now = open_item(db, sitting)
    if voting_now is None:
        tablet_setup.note_seen(db, g.terminal.id)  # a check-in is a poll too
    else:  # the vote's own figures, as in the state above
        _as_of_vote(state, voting.current_round(voting_now), sitting.body.kind)
    commit()
    return jsonify({"member": {"member_no": member.member_no, "name": member.name}, "attendance": state,
                    "vote_open": voting_now is not None})


@bp.get("/terminal/round-key")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_round_key():
    """The open round's round_key_announced event (signed by the body's key, in the chain);
    ?round_ref= names one of an open ballot set's rounds (each has its own key)."""
    db = get_db()
    term = g.terminal
    with read_phase(db):
        # A whole hall asks within a second of the opening: built once per state version.
        announced = round_keys(current_app).get(db, term.sitting_id, term.body_id).value
    if announced is None:
        raise NotFound("no terminal vote is open", where="vote", zh="当前没有进行中的电子表决")
    wanted = request.args.get("round_ref")
    ref = wanted or announced[0][0]
    body = next((ann for r, ann in announced if r == ref), None)
    if body is None:
        raise NotFound(f"round {wanted} is not open", where="round_ref", zh="所指轮次不在进行中")
    return jsonify(body)


def round_keys(app) -> seat_state.VersionedCache:
    """This app's cache of the open vote's announced round keys (web/seat_wake.py reads it too)."""
    return app.extensions.setdefault("round_keys", seat_state.VersionedCache(_open_round_keys))


def _open_round_keys(db, sitting_id: int) -> list[tuple[str, dict]] | None:
    """[(round_ref, its announcement)] of the sitting's open terminal vote (a ballot set: each
    of its open rounds, the first first), or None when none is open."""
    item = open_item(db, get_sitting(db, sitting_id))
    if item is None or item.channel not in BLIND_CHANNELS:
        return None
    rounds = [voting.current_round(m) for m in ballot_sets.open_members(db, item)]
    announced = key_announcements.announcements(db, rounds)
    return [(rnd.ref, key_announcements.of_round(announced, rnd)) for rnd in rounds]


@bp.post("/terminal/blind-sign")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_blind_sign():
    """One blind signature for this terminal's member in the open round, once (issuance.py)."""
    data = json_body()
    db = get_db()
    blind_sig = issuance.blind_sign_for_terminal(db, settings(), g.terminal, field(data, "round_ref", str),
                                                 field(data, "blinded_msg", str))
    commit()
    return jsonify({"blind_sig": b64url_encode(blind_sig)})


@bp.post("/terminal/blind-sign-set")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_blind_sign_set():
    """A ballot set's blind signatures in one request: one per open round of the set, each with
    its round's key, all counted or none (issuance.blind_sign_set_for_terminal)."""
    data = json_body()
    wanted = field(data, "ballots", list)
    if not all(isinstance(b, dict) for b in wanted):
        raise InvalidInput("ballots must be a list of {round_ref, blinded_msg}", where="ballots",
                           zh="ballots 须为 {round_ref, blinded_msg} 的列表")
    db = get_db()
    sigs = issuance.blind_sign_set_for_terminal(
        db, settings(), g.terminal, [(field(b, "round_ref", str), field(b, "blinded_msg", str)) for b in wanted])
    commit()
    return jsonify({"blind_sigs": [b64url_encode(s) for s in sigs]})


@bp.post("/terminal/reset")
@requires(Role.TERMINAL, body=CREDENTIAL)
def terminal_reset():
    """重置本终端, with the reset code the secretariat's console shows; never during a vote."""
    data, db, sitting = credential_call()
    tablet_setup.reset_tablet(db, settings().secret_key, sitting, g.terminal.id, field(data, "code", str))
    commit()
    return jsonify({"reset": True})
