"""Opening and closing a round, and handing each present member's terminal its ballot.

Terminal votes: at opening the round gets its own RSA blind-signing key, announced in the
chain, and every present member with a terminal becomes eligible for one blind signature
(issuance.py); I = blind signatures issued, counted at close, when the private key is
deleted. Named (记名) votes take the same path; their casts are bound to the member by the
casting terminal (intake.py). Paper votes: printed Ed25519 tokens (paper_ballots.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.db import checkpoint_wal_after_commit, database_now, utcnow
from ballot_service.domain import audit, cast_staging, issuance, scan_queue, tablet_setup
from ballot_service.domain.sittings import attendance_state, open_item, require_open
from ballot_service.domain.tally import record_quorum_failure
from ballot_service.errors import Conflict, InvalidInput, NotFound, QuorumNotMet
from ballot_service.formats import names
from ballot_service.formats.ballot_set import ballots_commitment, receipts_commitment
from ballot_service.models import (
    Cast,
    Issuance,
    Item,
    OpenBallot,
    PaperBallot,
    Refusal,
    Round,
)
from ballot_service.numbers import is_int
from ballot_service.vocab import (
    BLIND_CHANNELS,
    AuditKind,
    Channel,
    ItemStatus,
    RoundStatus,
    status_name,
)

REFUSAL_REASONS = ("malformed", "forged", "wrong_item", "wrong_round", "unknown", "reused", "spare", "late")


def current_round(item: Item) -> Round:
    """The newest round: the one that opens next, is open, or was tallied last."""
    if not item.rounds:
        raise NotFound(f"{item.title} has no rounds", zh=f"《{item.title}》没有任何轮次")
    return item.rounds[-1]


def lock_rounds(db: Session, rounds: list[Round]) -> None:
    """Lock `rounds` in id order and read them again (PostgreSQL; SQLite's write lock is held
    already). A secretariat step that checks a round's status and then writes — open, close,
    a replacement ballot, editing a draft — takes this first: of two such steps at once (a
    double click, two operators) the second waits for the first to commit and then sees what
    it did, and is refused with the reason instead of doing it twice or on a stale round. Id
    order, as a count of a set's ballots and a close hold rounds, so none deadlock."""
    db.scalars(select(Round).where(Round.id.in_([r.id for r in rounds])).order_by(Round.id)
               .with_for_update().execution_options(populate_existing=True)).all()


def open_round(db: Session, settings: Settings, item: Item, override_reason: str | None = None,
               ballot: str | None = None, now: dt.datetime | None = None) -> Round:
    """Open the item's pending round. Refused without quorum: the refusal is audited and the
    error carries commit_audit so the web layer keeps that event (and nothing else).

    A terminal vote is refused too while a present member has no set-up, online tablet
    (tablet_setup.readiness): their ballot would silently count as 未按. The secretariat may
    open anyway only with `override_reason`, typed, kept on the round, in vote_opened and on
    the record. `ballot`: what opens with it (ballot_sets.ballot_of: its ballot set), by
    default the item alone; another vote of the sitting open under another name is refused.
    `now`: the opening time the set's other items share."""
    sitting = item.sitting
    ballot = ballot or f"item:{item.id}"
    # Under the session row's shared lock: a concurrent session close waits for this opening
    # to commit (and then refuses, the vote being open), or this opening sees the close.
    require_open(db, sitting, "开始表决", "opening a vote")
    rnd = current_round(item)
    if rnd.status != RoundStatus.PENDING:
        zh, en = status_name(rnd.status)
        raise Conflict(f"round {rnd.number} of {item.title} is {en}: only a round not started yet can be opened",
                       where="item", zh=f"《{item.title}》第{rnd.number}轮{zh}，不能开始表决")
    other_open = open_item(db, sitting)
    if other_open is not None and other_open.open_ballot != ballot:
        raise Conflict(f"vote on {other_open.title} is still open; close it first", where="item",
                       zh=f"《{other_open.title}》的表决仍在进行，请先结束该项表决")
    state = attendance_state(db, sitting)
    if not state.quorum_met:
        audit.append(db, AuditKind.VOTE_OPEN_REFUSED, {
            "item_id": item.id, "round": rnd.number, "members": state.members, "present": state.present,
            "quorum_rule": state.quorum_rule, "reason": "quorum_not_met"}, sitting_id=sitting.id)
        err = QuorumNotMet(
            f"quorum not met: {state.present} of {state.members} present ({state.quorum_rule}); "
            f"the vote cannot be opened", where="attendance",
            zh=f"不符合法定人数，不能开始表决：应到{state.members}名，实到{state.present}名（{state.quorum_rule}）")
        err.commit_audit = True
        raise err

    plan = tablet_setup.seat_plan(db, sitting) if item.channel in BLIND_CHANNELS else None
    override = _tablets_override(db, item, override_reason, plan)
    _claim_open_slot(db, item, ballot)  # the first write: a racing opening waits here, then is refused
    now = now or database_now(db)  # the time limit is a deadline on the database's clock, as intake compares it
    rnd.open_override = override
    rnd.members, rnd.present, rnd.quorum_met = state.members, state.present, True
    rnd.status, rnd.opened_at = RoundStatus.OPEN, now
    if item.time_limit_s:
        rnd.closes_at = now + dt.timedelta(seconds=item.time_limit_s)
    for reason in REFUSAL_REASONS:
        db.add(Refusal(round_id=rnd.id, reason=reason, count=0))
    issued = 0
    if item.channel in BLIND_CHANNELS:
        db.flush()
        issuance.start_round_key(db, settings, item, rnd)  # announced before any issuance
        issued = _make_eligible(db, rnd, plan)
    db.flush()
    audit.append(db, AuditKind.VOTE_OPENED, {
        "item_id": item.id, "key": item.key, "round": rnd.number, "members": state.members,
        "present": state.present, "quorum_rule": state.quorum_rule, "channel": item.channel,
        "secret": item.secret, "places": rnd.places, "candidates": rnd.candidate_keys,
        "eligible_electronic": issued, "round_ref": rnd.ref if item.channel in BLIND_CHANNELS else None,
        "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None,
        **({"tablets_override": override} if override else {}),
        **({"stage": rnd.stage} if rnd.stage else {})},
        sitting_id=sitting.id)
    return rnd


def _tablets_override(db: Session, item: Item, reason: str | None, plan: list | None) -> dict | None:
    """None when every present member has a ready tablet (or the vote is not on tablets);
    else the typed reason with the figures, or a refusal naming who is not ready. `plan`:
    tablet_setup.seat_plan's."""
    if item.channel != Channel.TERMINAL:
        return None
    ready = tablet_setup.readiness(db, item.sitting, plan=plan)
    if ready.ready == ready.present:
        return None
    reason = names.check_name(reason, what="reason", where="override_reason", max_len=names.ITEM_TITLE,
                              required=False)
    if not reason:
        who = "、".join(f"{name}（{why}）" for _, name, why in ready.missing[:10])
        more = f"等 {len(ready.missing)} 人" if len(ready.missing) > 10 else ""
        raise Conflict(f"{item.title}: only {ready.ready} of {ready.present} present members have a set-up, "
                       f"online tablet; type a reason to open anyway", where="override_reason",
                       zh=f"《{item.title}》：实到 {ready.present} 人中只有 {ready.ready} 人的表决器已设置并在线"
                          f"（未就绪：{who}{more}）。未就绪者的选票将计为未按；如仍要开始表决，请填写原因")
    return {"present": ready.present, "ready": ready.ready, "reason": reason}


def _claim_open_slot(db: Session, item: Item, ballot: str) -> None:
    """Write the item's 'open' status, pointing at the sitting's one OpenBallot row
    (models.OpenBallot: one open item or ballot set per sitting): of two openings racing past
    the open_item check above, the second waits for the first to commit (PostgreSQL) and is
    then refused here. In a savepoint, so the refusal leaves the transaction usable."""
    try:
        with db.begin_nested():
            if db.get(OpenBallot, item.sitting_id) is None:
                db.add(OpenBallot(sitting_id=item.sitting_id, ballot=ballot))
                db.flush()  # first the row the open item points at
            item.status, item.open_ballot = ItemStatus.OPEN, ballot
            db.flush()
    except IntegrityError:
        raise Conflict("another vote of this session was opened at the same moment; close it first",
                       where="item", zh="本次会议的另一项表决刚刚开始，请先结束该项表决") from None


def record_quorum_not_met(db: Session, item: Item) -> dict:
    """The secretariat gives up opening the item for lack of quorum: its round is decided as
    quorum_not_met. Refused once the round has opened, or while the quorum is met."""
    rnd = current_round(item)
    if rnd.status != RoundStatus.PENDING:
        raise Conflict("only a round that has not opened can be recorded as quorum_not_met", where="item",
                       zh="只有尚未开始的表决才能记录为不足法定人数")
    state = attendance_state(db, item.sitting)
    if state.quorum_met:
        raise Conflict("quorum is met; open the vote instead", where="item", zh="已达到法定人数，请开始表决")
    return record_quorum_failure(db, item, rnd, state.members, state.present)


def _make_eligible(db: Session, rnd: Round, plan: list) -> int:
    """Make each present member eligible for one blind signature from the tablet the seat plan
    gives them (tablet_setup.seat_plan: where they checked in, else their seat's; one member
    per tablet). Members without one get none (they vote on paper: RULES fallback)."""
    return issuance.make_eligible(db, rnd, [(member.id, term.id if term is not None else None)
                                            for member, term, _ in plan])


def issued_count(db: Session, item: Item, rnd: Round) -> int:
    if item.channel == Channel.TERMINAL:
        return blind_signatures(db, rnd)
    if item.channel == Channel.PAPER:
        return paper_handed_out(db, rnd)
    if item.channel == Channel.HYBRID:  # each paper ballot printed as it was allowed
        return blind_signatures(db, rnd) + (rnd.paper_allowed or 0)
    return 0  # tally sheet: the tellers' figure, taken at tally


def blind_signatures(db: Session, rnd: Round) -> int:
    """Blind signatures actually issued (first ballots and replacements). Issuance counts a
    hybrid vote's paper allowances too (further_ballots.allow_paper): they are not signatures."""
    given = db.scalar(select(func.coalesce(func.sum(Issuance.issued), 0)).where(Issuance.round_id == rnd.id)) or 0
    return given - (rnd.paper_allowed or 0)


def paper_handed_out(db: Session, rnd: Round) -> int:
    return db.scalar(select(func.count()).select_from(PaperBallot).where(
        PaperBallot.round_id == rnd.id, PaperBallot.handed_out.is_(True))) or 0


def close_round(db: Session, settings: Settings, item: Item) -> Round:
    """Stop intake at once; freeze the issued count; checkpoint the audit chain. The caller
    (ballot_sets.close_set) holds the round locked and read again (lock_rounds), so a cast in
    flight either commits before or sees 'closed', and a second close at once is refused."""
    rnd = current_round(item)
    if rnd.status != RoundStatus.OPEN:
        raise Conflict(f"round {rnd.number} of {item.title} is not open", where="item",
                       zh=f"《{item.title}》第{rnd.number}轮不在表决中，无法结束表决")
    scan_queue.require_none_pending(db, item, rnd, "close the vote", "结束表决")
    rnd.status, rnd.closed_at = RoundStatus.CLOSED, utcnow()
    rnd.issued = issued_count(db, item, rnd)
    if item.channel in BLIND_CHANNELS:
        issuance.forget_round_key(db, rnd)  # the private key does not survive the close
    if item.secret:  # the sealed casts written in clear, in key order: their pages say nothing of arrival
        cast_staging.release(db, settings, item.sitting.body_id, rnd.id)
    item.status, item.open_ballot = ItemStatus.CLOSED, None
    db.flush()
    if open_item(db, item.sitting) is None:  # the last of its ballot set: nothing is open now
        db.execute(delete(OpenBallot).where(OpenBallot.sitting_id == item.sitting_id))
    accepted = db.execute(select(Cast.serial, Cast.submission_digest, Cast.member_id, Cast.receipt)
                          .where(Cast.round_id == rnd.id)).all()
    returned = len(accepted)
    refused = dict(db.execute(select(Refusal.reason, Refusal.count).where(Refusal.round_id == rnd.id)).all())
    db.flush()
    # The chain holds no event per cast: the close commits to the sorted set of ballots and of
    # receipts instead, and the checkpoint below signs it (intake.ballots_commitment).
    closed = {"item_id": item.id, "round": rnd.number, "round_id": rnd.id, "issued": rnd.issued, "returned": returned, "refused": refused,
              "ballots_commitment": ballots_commitment((c.serial, c.submission_digest, c.member_id) for c in accepted),
              "receipts_commitment": receipts_commitment(c.receipt for c in accepted)}
    if item.channel == Channel.TERMINAL:
        closed["blind_signatures"] = rnd.issued
        closed["replacements"] = rnd.replacements or 0
    if item.channel == Channel.HYBRID:  # I and R by channel: I = signatures + paper handed out, R likewise
        closed["blind_signatures"] = blind_signatures(db, rnd)
        closed["paper_handed_out"] = rnd.issued - closed["blind_signatures"]
        closed["replacements"] = rnd.replacements or 0
        closed["returned_by_channel"] = returned_by_channel(rnd, returned)
    audit.append(db, AuditKind.VOTE_CLOSED, closed, sitting_id=item.sitting_id)
    body_id = item.sitting.body_id
    audit.checkpoint(db, keys.body_signing_key(settings, body_id), f"vote_closed:{item.id}:{rnd.number}", body_id)
    checkpoint_wal_after_commit(db)  # SQLite: the WAL's frames (arrival order) go with the close
    return rnd


def returned_by_channel(rnd: Round, returned: int) -> dict:
    """A hybrid round's R split by the way the ballots came: {"terminal": n, "paper": m}, from
    the count intake keeps (no cast says which way it came)."""
    paper = rnd.paper_returned or 0
    return {"terminal": returned - paper, "paper": paper}


def count_refusal(db: Session, round_id: int, reason: str) -> None:
    db.execute(update(Refusal).where(Refusal.round_id == round_id, Refusal.reason == reason)
               .values(count=Refusal.count + 1))


MAX_EXTENSION_MINUTES = 120


def extend_round(db: Session, item: Item, minutes: int) -> Round:
    """延长表决时间: the secretariat gives an open vote `minutes` more, counted from its time
    limit or from now if that has passed (a vote whose time is up stays open until closed or
    extended). Recorded in the chain; the tablets and the screen count down to the new time."""
    if not is_int(minutes) or not 1 <= minutes <= MAX_EXTENSION_MINUTES:
        raise InvalidInput(f"minutes must be a whole number from 1 to {MAX_EXTENSION_MINUTES}", where="minutes",
                           zh=f"延长时间须为 1 到 {MAX_EXTENSION_MINUTES} 分钟的整数")
    rnd = current_round(item)
    if rnd.status != RoundStatus.OPEN:
        zh, en = status_name(rnd.status)
        raise Conflict(f"{item.title}: round {rnd.number} is {en}; only an open vote can be extended", where="item",
                       zh=f"《{item.title}》第{rnd.number}轮{zh}：只有进行中的表决可以延长时间")
    db.execute(select(Round).where(Round.id == rnd.id).with_for_update())
    now = database_now(db)
    rnd.closes_at = max(rnd.closes_at or now, now) + dt.timedelta(minutes=minutes)
    db.flush()
    audit.append(db, AuditKind.VOTE_TIME_EXTENDED, {"item_id": item.id, "round": rnd.number, "minutes": minutes,
                                            "closes_at": rnd.closes_at.isoformat()}, sitting_id=item.sitting_id)
    return rnd

