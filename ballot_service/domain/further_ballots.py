"""Further ballots in an open blind-signed round, each a further issuance (I + 1) with its
reason in the chain: a replacement (the member's tablet failed after receiving its ballot:
one more blind signature allowed) and a hybrid vote's paper ballot (signed here with the
round's key and printed at once; README, "Hybrid votes").

Either forgets the blinded message the member's last signature was made for
(Issuance.blinded_sha256): a request whose answer was lost is not answered again beside the
further ballot. Sent again, it is counted as the replacement, or refused once paper was
given; so a lost answer and a further ballot never make two ballots."""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.db import begin_write
from ballot_service.domain import audit, voting
from ballot_service.domain.issuance import load_private_key, round_private_key
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import ballots
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Issuance, Item, Member, Round
from ballot_service.vocab import BLIND_CHANNELS, AuditKind, Channel, RoundStatus


def allow_replacement(db: Session, item: Item, member_no: str, reason: str) -> dict:
    """Allow one more blind signature for a member in the open round (a further issuance,
    I+1), with the reason in the chain. Only for a member already issued one."""
    reason = _reason(reason)
    rnd, member, issuance = _member_issuance(db, item, member_no)
    if issuance is None or issuance.terminal_id is None:
        raise Conflict("this member was not issued a terminal ballot in this round", where="member",
                       zh="该代表本轮没有电子选票")
    if issuance.issued < issuance.allowed:
        raise Conflict("this member has not used the ballot already allowed", where="member",
                       zh="该代表尚有未领取的选票")
    issuance.allowed += 1
    issuance.blinded_sha256 = None  # module docstring
    rnd.replacements = (rnd.replacements or 0) + 1
    db.flush()
    audit.append(db, AuditKind.BALLOT_REPLACEMENT, {"item_id": item.id, "round": rnd.number, "round_id": rnd.id,
                                                    "member_no": member.member_no, "reason": reason},
                 sitting_id=item.sitting_id)
    return {"round": rnd.number, "replacements": rnd.replacements}


def _reason(reason) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a replacement needs a reason", where="reason", zh="补发选票须说明理由")
    return reason.strip()


def _member_issuance(db: Session, item: Item, member_no: str):
    """The open blind-signed round, the member and their Issuance row (locked)."""
    rnd = item.rounds[-1] if item.rounds else None
    if rnd is not None:  # a close (or another replacement) at the same moment: waited for, then seen
        begin_write(db)
        voting.lock_rounds(db, [rnd])
    if rnd is None or rnd.status != RoundStatus.OPEN or item.channel not in BLIND_CHANNELS:
        raise Conflict("a replacement ballot is only for an open terminal or hybrid vote", where="item",
                       zh="只有进行中的电子表决或混合表决才能补发选票")
    member = db.scalar(select(Member).where(Member.body_id == item.sitting.body_id, Member.member_no == member_no))
    if member is None:
        raise NotFound(f"no member {member_no}", where="member", zh=f"没有代表 {member_no}")
    issuance = db.scalar(select(Issuance).where(Issuance.round_id == rnd.id, Issuance.member_id == member.id)
                         .with_for_update())
    return rnd, member, issuance


def allow_paper(db: Session, settings: Settings, item: Item, member_no: str, reason: str) -> dict:
    """A hybrid vote: allow one paper ballot for a present member, with the reason in the chain,
    and sign it with the round's key (`ballot`: its QR text, to print at once; README, "Hybrid
    votes"). Its serial is in the answer only: nothing stored names it, and once cast it looks
    like a tablet's ballot (intake), so the chain's naming of the member gives no choices.

    Issuance counts every ballot given to the member, of either channel, so the tablet can
    draw no signature after this: a member whose tablet had not drawn theirs takes it on paper
    instead (issued + 1, I unchanged); a member without a tablet gets their first ballot; a
    member who holds a tablet ballot already gets a further issuance (I + 1, a replacement).
    One printed ballot per allowance, so nobody gets paper beside a tablet ballot without a
    replacement, and no desk step is needed."""
    reason = _reason(reason)
    if item.channel != Channel.HYBRID:
        raise Conflict(f"{item.title} is voted by {item.channel}: a paper ballot is handed out this way only in a "
                       f"hybrid vote", where="item", zh=f"《{item.title}》不是混合表决，不能以此方式发放纸质票")
    rnd, member, issuance = _member_issuance(db, item, member_no)
    if issuance is None:
        raise Conflict("this member was not present when the vote opened", where="member",
                       zh="该代表在表决开始时未签到，不能领取选票")
    replacement = issuance.issued >= issuance.allowed and issuance.allowed > 0
    if issuance.issued >= issuance.allowed:
        issuance.allowed += 1
    issuance.issued += 1
    issuance.blinded_sha256 = None  # module docstring
    rnd.paper_allowed = (rnd.paper_allowed or 0) + 1
    if replacement:
        rnd.replacements = (rnd.replacements or 0) + 1
    db.flush()
    audit.append(db, AuditKind.BALLOT_REPLACEMENT, {"item_id": item.id, "round": rnd.number, "round_id": rnd.id,
                                                    "member_no": member.member_no, "reason": reason,
                                                    "channel": Channel.PAPER, "replacement": replacement},
                 sitting_id=item.sitting_id)
    return {"round": rnd.number, "replacements": rnd.replacements or 0, "paper_allowed": rnd.paper_allowed,
            "ballot": _sign_paper_ballot(settings, item, rnd)}


def _sign_paper_ballot(settings: Settings, item: Item, rnd: Round) -> str:
    """A paper ballot signed as a tablet's is (an ordinary RSA-PSS signature by the round's key
    over a random msg_prefix || ballot_message(round_ref, serial)), its serial random but for
    the paper mark only the round's key can make or see (blind_ballots.paper_serial)."""
    der = round_private_key(settings, item.sitting.body_id, rnd)
    serial = blind_ballots.paper_serial(blind_ballots.paper_serial_key(der, rnd.ref))
    prefix = secrets.token_bytes(blind_rsa.PREFIX_LEN)
    sig = blind_rsa.sign(load_private_key(der), prefix + blind_rsa.ballot_message(rnd.ref, serial))
    payload = {"v": ballots.FORMAT_VERSION, "body": item.sitting.body_id, "session": item.sitting_id,
               "item": item.id, "round": rnd.number, "serial": serial.hex()}
    return ballots.round_key_text(payload, rnd.ref, b64url_encode(prefix), b64url_encode(sig))
