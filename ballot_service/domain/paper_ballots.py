"""Paper ballots as things in the hall: signed and recorded as printed, handed out at the
desk a stack at a time, checked at the counting station (printed for this round? handed out, or a spare?).
The token format itself is formats/ballots.py. Only flushes."""
from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service.crypto import keys
from ballot_service.crypto.keys import SigningKey
from ballot_service.db import checkpoint_wal_after_commit
from ballot_service.domain import audit, election_items
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import (
    MAX_PAPER_BATCH,
    SERIAL_RE,
    BallotRefused,
    _check_payload,
    make_token,
    serial_short,
    text_to_token,
    token_context,
    verify_token,
)
from ballot_service.models import Item, PaperBallot, Round, Sitting
from ballot_service.numbers import is_int
from ballot_service.render.paper import BallotLayout, ballot_pdf
from ballot_service.vocab import AuditKind, Channel, RoundStatus, status_name


def create_paper_ballots(db: Session, key: SigningKey, item: Item, round_: Round, count: int) -> list[dict]:
    """Sign `count` new ballots for a round and record their serials as printed.
    Returns the tokens (for paper.py to print). Only flushes."""
    tokens = sign_paper_ballots(key, item, round_, count)
    record_paper_ballots(db, key, item, round_, tokens)
    return tokens


def _check_printable(item: Item, round_: Round) -> None:
    if round_.item_id != item.id:
        raise InvalidInput(f"round {round_.id} does not belong to item {item.id}", where="round", zh="该轮次不属于此表决事项")
    if item.channel == Channel.HYBRID:
        # Pre-printed serials would be stored, and the handed-out ones would be the paper casts.
        raise InvalidInput(f"{item.title} is a hybrid vote: its paper ballots are printed one at a time, when the "
                           f"secretariat allows one for a member (POST /api/admin/items/{item.id}/replacement "
                           f"with channel paper)", where="item",
                           zh=f"《{item.title}》为混合表决：纸质票不预先印制，经秘书处为代表补发时逐张印制")
    if item.channel == Channel.TERMINAL:
        # A printed ballot of a tablet vote could be cast from any tablet as an extra vote.
        raise InvalidInput(f"{item.title} is voted on the seat tablets: no paper ballots are printed for it",
                           where="item", zh=f"《{item.title}》使用电子表决器表决，不能印制纸质选票")
    if round_.status not in (RoundStatus.PENDING, RoundStatus.OPEN):
        zh, en = status_name(round_.status)
        raise Conflict(f"round {round_.number} of item {item.id} is {en}; "
                       f"ballots can only be printed before or during its vote", where="round",
                       zh=f"第{round_.number}轮{zh}：只能在表决开始前或表决中印制选票")


def sign_paper_ballots(key: SigningKey, item: Item, round_: Round, count: int) -> list[dict]:
    """The signing half of create_paper_ballots, touching no database: a print run can sign
    and render first and record afterwards, without holding a write lock while rendering."""
    if not is_int(count) or count < 1 or count > MAX_PAPER_BATCH:
        raise InvalidInput(f"count must be a whole number from 1 to {MAX_PAPER_BATCH}", where="count", zh=f"印制张数须为 1 至 {MAX_PAPER_BATCH} 的整数")
    _check_printable(item, round_)
    ctx = token_context(item, round_)
    return [make_token(key, ctx["body"], ctx["session"], item.id, round_.number) for _ in range(count)]


def record_paper_ballots(db: Session, key: SigningKey, item: Item, round_: Round, tokens: list[dict]) -> None:
    """Record signed tokens as printed ballots of a round (PaperBallot rows + one audit event)."""
    _check_printable(item, round_)
    ctx = token_context(item, round_)
    for t in tokens:
        p = _check_payload(t["payload"])
        if (p["body"], p["session"], p["item"], p["round"]) != (ctx["body"], ctx["session"], item.id,
                                                                round_.number):
            raise InvalidInput("a token to record is for another item or round", where="tokens", zh="要登记的选票属于另一事项或另一轮")
    db.add_all([PaperBallot(serial=t["payload"]["serial"], round_id=round_.id, handed_out=False)
                for t in tokens])
    db.flush()
    total = db.scalar(select(func.count()).select_from(PaperBallot).where(PaperBallot.round_id == round_.id))
    audit.append(db, AuditKind.PAPER_BALLOTS_PRINTED,
                 {"item_id": item.id, "round_id": round_.id, "round": round_.number, "count": len(tokens),
                  "printed_total": total, "key_fingerprint": key.fingerprint},
                 sitting_id=item.sitting_id)


def hand_out(db: Session, serials: list[str], round_: Round) -> int:
    """Activate a stack of printed ballots at the desk before handing it out: all of them in
    one transaction and one audit event that says how many (no serial, no identity, no time),
    so neither the chain nor the WAL keeps an order of hand-out within the stack. Refuses the
    whole stack if any ballot in it is unknown, of another round, or handed out already.
    Returns how many were activated."""
    if not isinstance(serials, list) or not serials:
        raise InvalidInput("give the stack's ballots (at least one)", where="ballots", zh="请先扫描这一叠的选票（至少一张）")
    for serial in serials:
        if not isinstance(serial, str) or not SERIAL_RE.match(serial):
            raise BallotRefused("malformed", "serial must be 32 lowercase hex digits")
    if len(set(serials)) != len(serials):
        raise InvalidInput("the stack names a ballot twice", where="ballots", zh="这一叠中同一张选票扫描了两次")
    rows = {pb.serial: pb for pb in db.execute(select(PaperBallot).where(PaperBallot.serial.in_(serials))
                                               .with_for_update()).scalars()}
    for serial in sorted(serials):  # the first problem by serial, not by position in the stack
        pb = rows.get(serial)
        if pb is None or pb.round_id != round_.id:
            raise BallotRefused("unknown", f"no printed ballot {serial_short(serial)} for round {round_.number}")
        if pb.handed_out:
            raise Conflict(f"ballot {serial_short(serial)} has already been handed out", where="ballots", zh=f"选票 {serial_short(serial)} 已经发出")
    for pb in rows.values():
        pb.handed_out = True
    db.flush()
    audit.append(db, AuditKind.PAPER_BALLOTS_HANDED_OUT, {"round_id": round_.id, "count": len(serials)},
                 sitting_id=round_.item.sitting_id, timed=False)
    if round_.item.secret:  # SQLite: the WAL keeps no order of the stacks (db/wal.py)
        checkpoint_wal_after_commit(db)
    return len(serials)


def hand_out_stack(db: Session, settings, sitting: Sitting, texts: list, terminal_id: int) -> int:
    """The distribution desk's stack, as the QR texts it scanned: each a ballot of this
    sitting signed with its body's key, all of one round still pending or open, or all sheets
    of one ballot set (set_sheet.py: each sheet activates its every election's ballot), none of
    an election the station's teller stands in; then hand_out, round by round. Returns how many
    sheets (or ballots) were activated."""
    if not texts or len(texts) > MAX_PAPER_BATCH or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(f"ballots must be a list of 1 to {MAX_PAPER_BATCH} QR texts", where="ballots",
                           zh=f"一叠选票须为 1 至 {MAX_PAPER_BATCH} 张的二维码文本")
    key = keys.body_signing_key(settings, sitting.body_id)
    sheets = sum(set_sheet.is_set_text(t) for t in texts)
    if sheets not in (0, len(texts)):
        raise InvalidInput("a stack holds ballots of one round, or sheets of one ballot set", where="ballots",
                           zh="一叠选票只能是同一轮的选票，或同一选举票组的合印选票")
    stack: dict[int, list[str]] = {}
    rounds: dict[int, Round] = {}
    for n, text in enumerate(texts):
        for token in set_sheet.section_tokens(text) if sheets else [text_to_token(text)]:
            rnd = _desk_round(db, key, sitting, token, terminal_id, f"ballots[{n}]")
            rounds[rnd.id] = rnd
            stack.setdefault(rnd.id, []).append(token["payload"]["serial"])
    sets = {rnd.item.ballot_set for rnd in rounds.values()}
    if len(rounds) > 1 and (not sheets or len(sets) > 1 or None in sets):
        raise InvalidInput("a stack holds ballots of one round only", where="ballots",
                           zh="一叠选票只能是同一轮的选票")
    # Held FOR SHARE and read again (PostgreSQL): a close (FOR UPDATE) waits for this stack to
    # commit, or this waits for the close and sees it, so the ballots it froze as issued are all.
    db.scalars(select(Round).where(Round.id.in_(sorted(rounds))).order_by(Round.id).with_for_update(read=True)
               .execution_options(populate_existing=True)).all()
    for rnd in rounds.values():
        if rnd.status not in (RoundStatus.PENDING, RoundStatus.OPEN):
            raise Conflict("this vote is closed; no more ballots can be handed out", where="ballots",
                           zh="本项表决已结束，不能再发出选票")
    for rid in sorted(stack):
        hand_out(db, stack[rid], rounds[rid])
    return len(texts)


def _desk_round(db: Session, key, sitting: Sitting, token: dict, terminal_id: int, where: str) -> Round:
    """The round a ballot at the desk is for, its signature checked; refused with the reason."""
    payload = token["payload"]
    item = db.get(Item, payload.get("item")) if isinstance(payload.get("item"), int) else None
    if item is None or item.sitting_id != sitting.id:
        raise NotFound("this ballot is not for a vote of this session", where=where,
                       zh="这张选票不属于本会次的表决")
    election_items.refuse_candidate_teller(db, item, terminal_id)
    rnd = db.scalar(select(Round).where(Round.item_id == item.id, Round.number == payload.get("round")))
    if rnd is None:
        raise InvalidInput("a stack holds ballots of one round only", where=where, zh="一叠选票只能是同一轮的选票")
    verify_token(key.public_key, token, body=sitting.body_id, session=sitting.id, item=item.id, round_no=rnd.number)
    return rnd


def paper_ballot_pdf(db: Session, ballots: list) -> bytes:
    """A hybrid vote's paper ballots (further_ballots.allow_paper; (item id, QR text) pairs, one per
    election of a ballot set) as one PDF of a page each, made in memory and handed to the
    secretariat once: no print job, no file. Only reads."""
    pages = []
    for item_id, qr_text in ballots:
        item = db.get(Item, item_id)
        round_ = item.rounds[-1]
        pages.append((BallotLayout.from_item(item, round_, key_fingerprint=round_.blind_key_fingerprint[:32]),
                      qr_text))
    return ballot_pdf(pages)


def check_paper_serial(db: Session, serial: str, round_: Round) -> None:
    """At the counting station: refuse serials not printed for this round, and spares."""
    if not isinstance(serial, str) or not SERIAL_RE.match(serial):
        raise BallotRefused("malformed", "serial must be 32 lowercase hex digits")
    pb = db.get(PaperBallot, serial)
    if pb is None or pb.round_id != round_.id:
        raise BallotRefused("unknown")
    if not pb.handed_out:
        raise BallotRefused("spare")


def paper_counts(db: Session, round_: Round) -> dict:
    rows = dict(db.execute(select(PaperBallot.handed_out, func.count()).where(PaperBallot.round_id == round_.id)
                           .group_by(PaperBallot.handed_out)).all())
    handed = rows.get(True, 0)
    return {"printed": handed + rows.get(False, 0), "handed_out": handed}


def resolve_serial(db: Session, text: str, round_: Round) -> str:
    """A serial typed at the desk: the full 32 hex digits, or a unique prefix of at least 8
    (spaces ignored, e.g. the printed 'ab12 cd34') among this round's printed ballots."""
    s = "".join(str(text).split()).lower()
    if SERIAL_RE.match(s):
        return s
    if not re.fullmatch(r"[0-9a-f]{8,31}", s):
        raise BallotRefused("malformed", "give the full serial or at least its first 8 hex digits")
    found = list(db.scalars(select(PaperBallot.serial).where(PaperBallot.round_id == round_.id,
                                                             PaperBallot.serial.startswith(s)).limit(2)))
    if not found:
        raise BallotRefused("unknown", f"no printed ballot {s} for round {round_.number}")
    if len(found) > 1:
        raise InvalidInput(f"serial prefix {s} matches several ballots: scan the QR code instead", where="serial", zh=f"序号前缀 {s} 对应多张选票，请扫描二维码")
    return found[0]
