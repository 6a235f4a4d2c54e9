"""Opening and closing a round, and handing each present member's terminal its ballot.

Terminal votes: at opening the round gets its own RSA blind-signing key, announced in the
chain, and every present member with a terminal becomes eligible for one blind signature
(issuance.py); I = blind signatures issued, counted at close, when the private key is
deleted. Named (记名) votes take the same path; their casts are bound to the member by the
casting terminal (intake.py). Paper votes: printed Ed25519 tokens (paper_ballots.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.db import utcnow
from ballot_service.domain import audit, issuance
from ballot_service.domain.sittings import attendance_state, open_item, require_open
from ballot_service.domain.tally import record_quorum_failure
from ballot_service.errors import Conflict, NotFound, QuorumNotMet
from ballot_service.models import (
    Attendance,
    Cast,
    Issuance,
    Item,
    Member,
    PaperBallot,
    Refusal,
    Round,
    Terminal,
)
from ballot_service.vocab import status_name

REFUSAL_REASONS = ("malformed", "forged", "wrong_item", "wrong_round", "unknown", "reused", "spare", "late")


def current_round(item: Item) -> Round:
    """The newest round: the one that opens next, is open, or was tallied last."""
    if not item.rounds:
        raise NotFound(f"item {item.key} has no rounds", zh=f"表决事项 {item.key} 没有任何轮次")
    return item.rounds[-1]


def open_round(db: Session, settings: Settings, item: Item) -> Round:
    """Open the item's pending round. Refused without quorum: the refusal is audited and the
    error carries commit_audit so the web layer keeps that event (and nothing else)."""
    sitting = item.sitting
    # Under the session row's shared lock: a concurrent session close waits for this opening
    # to commit (and then refuses, the vote being open), or this opening sees the close.
    require_open(db, sitting, "开始表决", "opening a vote")
    rnd = current_round(item)
    if rnd.status != "pending":
        zh, en = status_name(rnd.status)
        raise Conflict(f"round {rnd.number} of {item.key} is {en}: only a round not started yet can be opened",
                       where="item", zh=f"{item.key} 第{rnd.number}轮{zh}，不能开始表决")
    other_open = open_item(db, sitting)
    if other_open is not None:
        raise Conflict(f"vote on {other_open.key} is still open; close it first", where="item",
                       zh=f"{other_open.key} 的表决仍在进行，请先结束该项表决")
    state = attendance_state(db, sitting)
    if not state.quorum_met:
        audit.append(db, "vote_open_refused", {
            "item_id": item.id, "round": rnd.number, "members": state.members, "present": state.present,
            "quorum_rule": state.quorum_rule, "reason": "quorum_not_met"}, sitting_id=sitting.id)
        err = QuorumNotMet(
            f"quorum not met: {state.present} of {state.members} present ({state.quorum_rule}); "
            f"the vote cannot be opened", where="attendance",
            zh=f"不符合法定人数，不能开始表决：应到{state.members}名，实到{state.present}名（{state.quorum_rule}）")
        err.commit_audit = True
        raise err

    now = utcnow()
    rnd.members, rnd.present, rnd.quorum_met = state.members, state.present, True
    rnd.status, rnd.opened_at = "open", now
    if item.time_limit_s:
        rnd.closes_at = now + dt.timedelta(seconds=item.time_limit_s)
    item.status = "open"
    for reason in REFUSAL_REASONS:
        db.add(Refusal(round_id=rnd.id, reason=reason, count=0))
    issued = 0
    if item.channel == "terminal":
        db.flush()
        issuance.start_round_key(db, settings, item, rnd)  # announced before any issuance
        issued = _make_eligible(db, item, rnd)
    db.flush()
    audit.append(db, "vote_opened", {
        "item_id": item.id, "key": item.key, "round": rnd.number, "members": state.members,
        "present": state.present, "quorum_rule": state.quorum_rule, "channel": item.channel,
        "secret": item.secret, "places": rnd.places, "candidates": rnd.candidate_keys,
        "eligible_electronic": issued, "round_ref": rnd.ref if item.channel == "terminal" else None,
        "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None},
        sitting_id=sitting.id)
    return rnd


def record_quorum_not_met(db: Session, item: Item) -> dict:
    """The secretariat gives up opening the item for lack of quorum: its round is decided as
    quorum_not_met. Refused once the round has opened, or while the quorum is met."""
    rnd = current_round(item)
    if rnd.status != "pending":
        raise Conflict("only a round that has not opened can be recorded as quorum_not_met", where="item",
                       zh="只有尚未开始的表决才能记录为不足法定人数")
    state = attendance_state(db, item.sitting)
    if state.quorum_met:
        raise Conflict("quorum is met; open the vote instead", where="item", zh="已达到法定人数，请开始表决")
    return record_quorum_failure(db, item, rnd, state.members, state.present)


def _make_eligible(db: Session, item: Item, rnd: Round) -> int:
    """Make each present member eligible for one blind signature from the terminal at their
    seat or where they checked in. Members without a terminal get none (they vote on paper:
    RULES fallback)."""
    sitting = item.sitting
    terminals_by_seat = {t.seat: t for t in db.scalars(
        select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.kind == "seat",
                               Terminal.revoked_at.is_(None)))}
    live = {t.id: t for t in terminals_by_seat.values()}
    rows = db.execute(
        select(Member.id, Member.seat, Attendance.terminal_id)
        .join(Attendance, Attendance.member_id == Member.id)
        .where(Attendance.sitting_id == sitting.id, Attendance.status == "present",
               Member.in_office.is_(True))).all()
    eligible = 0
    taken: set[int] = set()
    for member_id, seat, checkin_terminal in rows:
        term = live.get(checkin_terminal) or terminals_by_seat.get(seat)
        if term is not None and term.id in taken:
            term = None  # one member per terminal in a round
        if term is not None:
            taken.add(term.id)
        eligible += issuance.make_eligible(db, rnd, member_id, term.id if term else None)
    return eligible


def issued_count(db: Session, item: Item, rnd: Round) -> int:
    if item.channel == "terminal":
        # I = blind signatures actually issued (first ballots and replacements)
        return db.scalar(select(func.coalesce(func.sum(Issuance.issued), 0)).where(Issuance.round_id == rnd.id)) or 0
    if item.channel == "paper":
        return db.scalar(select(func.count()).select_from(PaperBallot).where(
            PaperBallot.round_id == rnd.id, PaperBallot.handed_out.is_(True))) or 0
    return 0  # tally sheet: the tellers' figure, taken at tally


def close_round(db: Session, settings: Settings, item: Item) -> Round:
    """Stop intake at once; freeze the issued count; checkpoint the audit chain."""
    rnd = current_round(item)
    if rnd.status != "open":
        raise Conflict(f"round {rnd.number} of {item.key} is not open", where="item",
                       zh=f"{item.key} 第{rnd.number}轮不在表决中，无法结束表决")
    # Lock the round row so a cast in flight either commits before or sees 'closed'.
    db.execute(select(Round).where(Round.id == rnd.id).with_for_update())
    rnd.status, rnd.closed_at = "closed", utcnow()
    rnd.issued = issued_count(db, item, rnd)
    if item.channel == "terminal":
        issuance.forget_round_key(rnd)  # the private key does not survive the close
    item.status = "closed"
    returned = db.scalar(select(func.count()).select_from(Cast).where(Cast.round_id == rnd.id)) or 0
    refused = dict(db.execute(select(Refusal.reason, Refusal.count).where(Refusal.round_id == rnd.id)).all())
    db.flush()
    closed = {"item_id": item.id, "round": rnd.number, "issued": rnd.issued, "returned": returned, "refused": refused}
    if item.channel == "terminal":
        closed["blind_signatures"] = rnd.issued
        closed["replacements"] = rnd.replacements or 0
    audit.append(db, "vote_closed", closed, sitting_id=item.sitting_id)
    audit.checkpoint(db, keys.body_signing_key(settings, item.sitting.body_id), f"vote_closed:{item.id}:{rnd.number}")
    return rnd


def count_refusal(db: Session, rnd: Round, reason: str) -> None:
    db.execute(update(Refusal).where(Refusal.round_id == rnd.id, Refusal.reason == reason)
               .values(count=Refusal.count + 1))
