"""A seat terminal's cast: a blind-signed ballot (crypto/blind_ballots.py) with its marks and
the tablet's retry id, prepared for intake (intake.py stores it like any other cast).

Before the write lock: parse the fields, find the round the ballot names (round_ref, cached
per engine with its announced public key), verify the RSA-PSS signature, hash the retry id,
and for a secret vote load the body's signing key (intake seals the cast with it).
Nothing about the sending terminal is kept for a secret vote: `terminal_id` is only passed
for a named (记名) vote, whose cast is bound to the member of the casting terminal.
"""
from __future__ import annotations

import hashlib
import re

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ballot_service.crypto import blind_ballots, keys
from ballot_service.domain import ballot_marks, intake, issuance, round_facts
from ballot_service.domain.round_facts import round_key
from ballot_service.errors import InvalidInput
from ballot_service.vocab import Channel

RETRY_ID_MIN, RETRY_ID_MAX = 16, 128
_RECEIPT_HASH = re.compile(r"[0-9a-f]{64}")


def retry_hash(retry_id) -> str:
    if not isinstance(retry_id, str) or not RETRY_ID_MIN <= len(retry_id) <= RETRY_ID_MAX \
            or not retry_id.isascii():
        raise InvalidInput(f"retry_id must be {RETRY_ID_MIN} to {RETRY_ID_MAX} ASCII characters", where="retry_id", zh="表决器提交的重试编号格式不正确，请刷新页面后重试")
    return hashlib.sha256(b"ballot-service retry|" + retry_id.encode("ascii")).hexdigest()


def receipt_hash(value) -> str | None:
    """The tablet's receipt hash H(r) (64 lower-case hex digits), or None: intake then picks a
    random receipt (intake.new_receipt)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RECEIPT_HASH.fullmatch(value):
        raise InvalidInput("receipt_hash must be 64 lower-case hex digits (the tablet's H(r))", where="receipt_hash", zh="表决器提交的回执摘要格式不正确，请刷新页面后重试")
    return value


def accept(db: Session, settings, data: dict, *, terminal_id: int | None = None) -> intake.Receipt:
    """Validate and store one terminal cast (intake.submit); the receipt, or a BallotError."""
    # Everything before the store only reads (prepare, and the endpoint's credential check).
    return intake.submit(db, db.get_bind(), prepare(db, settings, data, terminal_id=terminal_id), only_read=True)


def prepare(db: Session, settings, data: dict, *, terminal_id: int | None = None) -> intake.Job:
    """Step 1 of intake for a terminal cast (before the write lock): the job to submit."""
    return _prepare(db.get_bind(), settings, data, lambda round_id: round_key(db, round_id), terminal_id,
                    lambda round_id, serial: issuance.is_paper_serial(db, settings, round_id, serial))


def prepare_known_secret(engine: Engine, settings, data: dict) -> intake.Job | None:
    """prepare's job for a cast whose round this process knows (announced key and facts
    cached) and which is secret, without a database read or session (an event loop's request
    calls it); None for any other cast, which takes the ordinary path (prepare)."""
    try:
        rk = round_facts.known_round_key(engine, blind_ballots.round_id_of(data.get("round_ref")))
    except ValueError:
        return None
    if rk is None or not rk.secret or round_facts.known(engine, (rk.sitting_id, rk.item_id, rk.number)) is None:
        return None
    if rk.channel == Channel.HYBRID:  # telling a paper ballot from a tablet's reads the round's key
        return None
    return _prepare(engine, settings, data, lambda round_id: rk, None, None)


def _prepare(engine: Engine, settings, data: dict, round_key_of, terminal_id: int | None,
             paper_serial) -> intake.Job:
    rhash = retry_hash(data.get("retry_id"))
    receipt = receipt_hash(data.get("receipt_hash"))
    try:
        ballot = blind_ballots.parse(data)
    except ValueError as exc:
        job = intake.Job(None, None, data.get("marks"), Channel.TERMINAL, None)
        job.refusal = (None, "malformed", f"the ballot is not a ballot of this service: {exc}")
        return job
    rk = round_key_of(blind_ballots.round_id_of(ballot.round_ref))
    sitting = intake.SittingRef(rk.sitting_id, rk.body_id) if rk is not None else None
    job = intake.Job(sitting, ballot.as_object(), data.get("marks"), Channel.TERMINAL,
                     terminal_id if rk is not None and not rk.secret else None)
    job.serial, job.signature, job.msg_prefix, job.retry_hash = ballot.serial, ballot.signature, ballot.prefix, rhash
    job.receipt_hash = receipt
    if rk is None:
        job.refusal = (None, "unknown", "this ballot is not for a vote of this service")
        return job
    job.key = (rk.sitting_id, rk.item_id, rk.number)
    if rk.secret:  # its cast is stored sealed (cast_staging.py); a key that cannot be unlocked stores nothing
        job.body_key = keys.checked_body_signing_key(settings, rk.body_id)
    job.signature_refusal = round_facts.signature_refusal(rk, ballot)
    if rk.channel == Channel.HYBRID and job.signature_refusal is None and paper_serial(
            blind_ballots.round_id_of(ballot.round_ref), ballot.serial) is True:
        raise InvalidInput("this is a paper ballot: it is counted at the counting station, not cast from a tablet",
                           where="ballot", zh="这是纸质选票，须投入票箱由计票处计票，不能从表决器提交")
    facts = round_facts.known(engine, job.key)
    if facts is not None and job.signature_refusal is None:
        job.marks_outcome = ballot_marks.marks_outcome(job.raw_marks, facts, job.token_text, "terminal")
    intake.preseal(job, facts)
    return job


def is_named(db: Session, round_ref) -> bool:
    """Whether a cast naming `round_ref` is for a named (记名) vote, which needs the casting
    terminal's credential; a secret vote's cast needs none and keeps none."""
    try:
        rk = round_key(db, blind_ballots.round_id_of(round_ref))
    except ValueError:
        return False
    return rk is not None and not rk.secret
