"""Cast intake: the one path every ballot takes, from a seat terminal or the paper
counting station. Checks signature, item, round, open state, serial use and marks; stores
the cast atomically; answers with a receipt. Refusals are counted (拒收) and audited.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, ballots, rules
from .canonical import canonical_json, sha256_hex
from .config import Settings
from .db import utcnow
from .errors import InvalidInput
from .models import Cast, Issuance, Item, Round, Sitting
from .voting import count_refusal, signing_key


@dataclass(frozen=True)
class Receipt:
    serial: str
    receipt: str
    repeated: bool  # True when this was a retry of an already-accepted submission

    def as_dict(self) -> dict:
        return {"serial": self.serial, "receipt": self.receipt, "repeated": self.repeated}


def receipt_code(serial: str, digest: str) -> str:
    """Short code shown to the member; the same submission always gets the same code."""
    return hashlib.sha256(f"receipt|{serial}|{digest}".encode()).hexdigest()[:12].upper()


def _refuse(db: Session, rnd: Round | None, reason: str, message: str, serial: str | None) -> None:
    if rnd is not None:
        count_refusal(db, rnd, reason)
    # No terminal, seat or member in a refusal event: the serial alone.
    audit.append(db, "cast_refused", {"round_id": rnd.id if rnd else None, "reason": reason,
                                      "serial": serial}, timed=False)
    err = ballots.BallotRefused(reason, message)
    err.commit_audit = True
    raise err


def parse_marks(raw, candidate_keys: list[str], allow_void: bool) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidInput("marks must be an object {candidate key: mark}", where="marks")
    allowed = rules.MARKS if allow_void else rules.ELECTRONIC_MARKS
    for k, v in raw.items():
        if k not in candidate_keys:
            raise InvalidInput(f"{k!r} is not a candidate on this ballot", where=f"marks.{k}")
        if v not in allowed:
            raise InvalidInput(f"mark {v!r} is not one of {', '.join(allowed)}", where=f"marks.{k}")
    return rules.normalise_marks(raw, candidate_keys)


def accept(db: Session, settings: Settings, sitting: Sitting, token_text, raw_marks, *,
           channel: str, terminal_id: int | None = None) -> Receipt:
    """Validate and store one submission. Flushes only; the web layer commits."""
    if not isinstance(token_text, str) or not token_text:
        raise InvalidInput("ballot must be the ballot's text (as in its QR code)", where="ballot")
    try:
        token = ballots.text_to_token(token_text)
    except ballots.BallotRefused:
        _refuse(db, None, "malformed", "the ballot text is not a ballot issued by this service", None)
    payload = token.get("payload") if isinstance(token, dict) else None
    serial = payload.get("serial") if isinstance(payload, dict) else None
    rnd = item = None
    if isinstance(payload, dict) and payload.get("session") == sitting.id and isinstance(payload.get("item"), int):
        item = db.get(Item, payload["item"])
        if item is not None and item.sitting_id == sitting.id and isinstance(payload.get("round"), int):
            rnd = db.scalar(select(Round).where(Round.item_id == item.id, Round.number == payload["round"]))
    if rnd is None:
        _refuse(db, None, "unknown", "this ballot is not for a vote of this session", serial)

    key = signing_key(settings, sitting.body)
    try:
        ballots.verify_token(key.public_key, token, body=sitting.body_id, session=sitting.id,
                             item=item.id, round_no=rnd.number)
    except ballots.BallotRefused as exc:
        _refuse(db, rnd, exc.reason, exc.message, serial)

    # Share-lock the round: casts run side by side, but a close (FOR UPDATE) waits for them,
    # so every cast commits before the close or is refused as late.
    rnd = db.execute(select(Round).where(Round.id == rnd.id).with_for_update(read=True)).scalar_one()
    if rnd.status != "open" or (rnd.closes_at is not None and utcnow() >= rnd.closes_at):
        _refuse(db, rnd, "late", "表决已结束 the vote is closed; this ballot was not counted", serial)
    if channel != item.channel:
        raise InvalidInput(f"this item is voted by {item.channel}, not {channel}", where="ballot")
    if channel == "paper":
        try:
            ballots.check_paper_serial(db, serial, rnd)
        except ballots.BallotRefused as exc:
            _refuse(db, rnd, exc.reason, exc.message, serial)

    marks = parse_marks(raw_marks, list(rnd.candidate_keys), allow_void=channel == "paper")
    digest = sha256_hex(canonical_json({"ballot": token_text, "marks": marks}))

    existing = db.scalar(select(Cast).where(Cast.serial == serial))
    if existing is not None:
        if existing.submission_digest == digest:
            return Receipt(serial, existing.receipt, True)
        _refuse(db, rnd, "reused", "这张选票已经投过 this ballot has already been cast", serial)

    member_id = None
    if not item.secret and terminal_id is not None:
        member_id = db.scalar(select(Issuance.member_id).where(Issuance.round_id == rnd.id,
                                                               Issuance.terminal_id == terminal_id))
    code = receipt_code(serial, digest)
    cast = Cast(round_id=rnd.id, serial=serial, signature=token["sig"], marks=marks, channel=channel,
                receipt=code, submission_digest=digest, member_id=member_id)
    try:
        with db.begin_nested():  # add inside: begin_nested() flushes pending objects before its SAVEPOINT
            db.add(cast)
            db.flush()
    except IntegrityError:
        # Another request stored this serial between our check and our insert.
        existing = db.scalar(select(Cast).where(Cast.serial == serial))
        if existing is not None and existing.submission_digest == digest:
            return Receipt(serial, existing.receipt, True)
        _refuse(db, rnd, "reused", "这张选票已经投过 this ballot has already been cast", serial)
    event = {"round_id": rnd.id, "serial": serial, "submission": digest}
    if member_id is not None:
        event["member_id"] = member_id  # named vote (记名): the choice may be tied to the member
    audit.append(db, "cast_accepted", event, timed=False)
    return Receipt(serial, code, False)
