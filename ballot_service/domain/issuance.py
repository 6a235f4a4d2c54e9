"""Blind issuance of terminal ballots (RFC 9474 RSA blind signatures): the round's key,
its announcement, one blind signature per eligible member, replacements, and forgetting
the private key when the round closes.

At opening (`start_round_key`) the round gets a fresh RSA-2048 key. Its public key is
announced in the audit chain (`round_key_announced`, signed by the body's Ed25519 key, with
the SubjectPublicKeyInfo PEM and the SHA-384 fingerprint of its DER: SHA-384 because the
tablet has it without WebCrypto) before any ballot is issued. Each present member with a seat terminal gets an Issuance row (issued 0, allowed 1).

A tablet makes a random serial, blinds msg_prefix || ballot_message(round_ref, serial) with
the announced key and sends only the blinded value (`blind_sign_for_terminal`). The service
checks that the terminal's member may still receive one (issued < allowed), counts it, signs
and answers: it stores neither the blinded value nor the signature, and it cannot link the
ballot cast later to this request (the blinding factor never leaves the tablet).

Where the private key lives while the round is open: in the round's own row
(Round.blind_private_key, PKCS#8 DER), not in process memory, because several server
processes (and a restart in the middle of a vote) must all be able to sign for the open
round. It authorises nothing but ballots of that one round. `forget_round_key`, called in
the closing transaction, sets it to NULL, and SQLite runs with secure_delete (db/) so the
page no longer holds the bytes once the close is committed; a closed round's key is never
needed again (casts are refused once the round is closed; checking ballots needs only the
announced public key).
"""
from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import blind_rsa, keys
from ballot_service.db import begin_write
from ballot_service.domain import audit
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import EncodingError, b64url_decode, b64url_encode
from ballot_service.models import Attendance, AuditEvent, Issuance, Item, Member, Round, Terminal
from ballot_service.vocab import AuditKind, Channel, Presence, RoundStatus

ANNOUNCE_EVENT = AuditKind.ROUND_KEY_ANNOUNCED


def key_fingerprint(der: bytes) -> str:
    return hashlib.sha384(der).hexdigest()


def announcement_payload(item: Item, rnd: Round, der: bytes, pem: str, body_key_fp: str) -> dict:
    """What the body's key signs: canonical_json of this dict (the event adds `signature`)."""
    return {"item_id": item.id, "round": rnd.number, "round_id": rnd.id, "round_ref": rnd.ref,
            "public_key_der": b64url_encode(der), "public_key_pem": pem,
            "fingerprint": key_fingerprint(der), "body_key_fingerprint": body_key_fp}


def start_round_key(db: Session, settings: Settings, item: Item, rnd: Round) -> None:
    """Generate the round's key, keep it with the round, announce its public half."""
    private = blind_rsa.generate_round_key()
    der = blind_rsa.public_key_der(private)
    rnd.blind_public_key = der
    rnd.blind_key_fingerprint = key_fingerprint(der)
    rnd.blind_private_key = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption())
    body_key = keys.body_signing_key(settings, item.sitting.body_id)
    payload = announcement_payload(item, rnd, der, blind_rsa.public_key_pem(private).decode("ascii"),
                                   body_key.fingerprint)
    signature = b64url_encode(body_key.sign(canonical_json(payload)))
    audit.append(db, ANNOUNCE_EVENT, {**payload, "signature": signature}, sitting_id=item.sitting_id)


def make_eligible(db: Session, rnd: Round, member_id: int, terminal_id: int | None) -> bool:
    """One Issuance row per present member; only members with a terminal can be issued one."""
    db.add(Issuance(round_id=rnd.id, member_id=member_id, terminal_id=terminal_id, issued=0,
                    allowed=1 if terminal_id is not None else 0))
    return terminal_id is not None


def forget_round_key(rnd: Round) -> None:
    rnd.blind_private_key = None


def announcement(db: Session, rnd: Round) -> dict:
    """The round_key_announced event of a round: {seq, hash, data}."""
    for ev in db.scalars(select(AuditEvent).where(AuditEvent.kind == ANNOUNCE_EVENT,
                                                  AuditEvent.sitting_id == rnd.item.sitting_id)
                         .order_by(AuditEvent.seq.desc())):
        data = json.loads(ev.data)
        if data.get("round_id") == rnd.id:
            return {"seq": ev.seq, "hash": ev.hash, "kind": ev.kind, "data": data}
    raise NotFound(f"round {rnd.ref} has no announced key", where="round", zh=f"轮次 {rnd.ref} 没有公布签名公钥")


def _open_round_of_terminal(db: Session, terminal_id: int, round_ref: str):
    row = db.execute(
        select(Issuance, Round, Item).join(Round, Round.id == Issuance.round_id)
        .join(Item, Item.id == Round.item_id)
        .where(Issuance.terminal_id == terminal_id, Round.status == RoundStatus.OPEN,
               Item.channel == Channel.TERMINAL)).first()
    if row is None:
        raise NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
    issuance, rnd, item = row
    if round_ref != rnd.ref:
        raise Conflict(f"round {round_ref} is not the open round ({rnd.ref})", where="round_ref",
                       zh="所请求的轮次不是当前进行中的表决")
    return issuance, rnd, item


def blind_sign_for_terminal(db: Session, terminal: Terminal, round_ref: str, blinded_text: str) -> bytes:
    """Sign one blinded ballot for the member this terminal was assigned at opening, once.

    Refused (409, nothing signed) when the member has received every signature allowed;
    the count is taken by one conditional UPDATE, so two concurrent requests cannot both
    pass. Stores only the count: no serial, no blinded value, no signature."""
    if not isinstance(blinded_text, str):
        raise InvalidInput("blinded_msg must be base64url text", where="blinded_msg")
    try:
        blinded = b64url_decode(blinded_text)
    except EncodingError:
        raise InvalidInput("blinded_msg is not base64url", where="blinded_msg") from None
    begin_write(db)
    issuance, rnd, item = _open_round_of_terminal(db, terminal.id, round_ref)
    present = db.scalar(select(Attendance.id).where(Attendance.sitting_id == item.sitting_id,
                                                    Attendance.member_id == issuance.member_id,
                                                    Attendance.status == Presence.PRESENT))
    if present is None:
        raise Conflict("the member of this terminal is not present", where="member", zh="本席代表未签到")
    if rnd.blind_private_key is None:
        raise Conflict("this round has no signing key", where="round_ref", zh="本轮没有签名密钥")
    # The key is our own (start_round_key made it and only this database holds it), and
    # blind_sign checks every result with the public exponent, so the ~30 ms RSA key validation
    # of a load would only slow every issuance down while the write lock is held.
    private = serialization.load_der_private_key(rnd.blind_private_key, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    if len(blinded) != private.key_size // 8:
        raise InvalidInput(f"blinded_msg must be {private.key_size // 8} bytes", where="blinded_msg")
    took = db.execute(update(Issuance).where(Issuance.round_id == rnd.id,
                                             Issuance.member_id == issuance.member_id,
                                             Issuance.issued < Issuance.allowed)
                      .values(issued=Issuance.issued + 1)
                      .execution_options(synchronize_session=False)).rowcount
    if took != 1:
        raise Conflict("this member has already received a ballot in this round", where="ballot",
                       zh="本席代表本轮已领取选票，不再发出")
    try:
        return blind_rsa.blind_sign(private, blinded)
    except ValueError as exc:
        raise InvalidInput(str(exc), where="blinded_msg") from None


def allow_replacement(db: Session, item: Item, member_no: str, reason: str) -> dict:
    """Allow one more blind signature for a member in the open round (a further issuance,
    I+1), with the reason in the chain. Only for a member already issued one."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a replacement needs a reason", where="reason", zh="补发选票须说明理由")
    rnd = item.rounds[-1] if item.rounds else None
    if rnd is None or rnd.status != RoundStatus.OPEN or item.channel != Channel.TERMINAL:
        raise Conflict("a replacement ballot is only for an open terminal vote", where="item",
                       zh="只有进行中的电子表决才能补发选票")
    member = db.scalar(select(Member).where(Member.body_id == item.sitting.body_id, Member.member_no == member_no))
    if member is None:
        raise NotFound(f"no member {member_no}", where="member", zh=f"没有代表 {member_no}")
    begin_write(db)
    issuance = db.scalar(select(Issuance).where(Issuance.round_id == rnd.id, Issuance.member_id == member.id)
                         .with_for_update())
    if issuance is None or issuance.terminal_id is None:
        raise Conflict("this member was not issued a terminal ballot in this round", where="member",
                       zh="该代表本轮没有电子选票")
    if issuance.issued < issuance.allowed:
        raise Conflict("this member has not used the ballot already allowed", where="member",
                       zh="该代表尚有未领取的选票")
    issuance.allowed += 1
    rnd.replacements = (rnd.replacements or 0) + 1
    db.flush()
    audit.append(db, AuditKind.BALLOT_REPLACEMENT, {"item_id": item.id, "round": rnd.number, "round_id": rnd.id,
                                            "member_no": member.member_no, "reason": reason.strip()},
                 sitting_id=item.sitting_id)
    return {"round": rnd.number, "replacements": rnd.replacements}
