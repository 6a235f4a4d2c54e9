"""Cast intake: the one path every ballot takes, from a seat terminal or the paper
counting station. Checks signature, item, round, open state, serial use and marks; stores
the cast atomically; answers with a receipt. Refusals are counted (拒收) and audited.

Concurrent casts queue on the database's one write lock (SQLite) only for the moment they
store, so the work is split in two:

1. before the lock, without reading the database: parse the ballot text, verify its
   signature, and, when this process already knows the round's fixed facts (candidates,
   channel: they never change once a round exists), parse the marks and hash the
   submission. Nothing is decided yet: the outcomes are kept for step 2;
2. under the lock (db.begin_write: SQLite BEGIN IMMEDIATE; on PostgreSQL the request's
   transaction, with FOR SHARE on the round so a close waits for casts in flight): read
   the round's state, then decide in a fixed order (no such round, signature, closed,
   channel, paper serial, marks, serial already used), insert the cast and append its audit
   event with a few plain statements. The web layer commits: a receipt is sent only after
   the commit is durable (synchronous=FULL on SQLite).

Where a refusal is counted (the Refusal rows of one round; the record and the audit
bundle's counts.json report them per round, and the cast_refused event names the same
round in `round_id`):

- a ballot that names an opened round of this session is counted on that round: forged,
  wrong_item, unknown/spare (paper serial), reused, late and wrong_round alike;
- `late`: the round it names is still its item's current round (no runoff replaced it)
  and that round is closed or past its time limit: a straggler of that very vote;
- `wrong_round`: the round it names was superseded by a later round of its item (a
  runoff replaced it), whether or not some vote is open now. Counted on the round the
  ballot names, i.e. the earlier round, after its close; the round it was presented
  during is not told apart (a runoff's own record therefore does not include it);
- `unknown` (the ballot names another session, or an item or round this session does not
  have, so it names no round of ours) and a ballot of a round not opened yet (a paper
  ballot returned before the vote opens, refused as `late` with its own message): counted
  on the session's current vote, the round of this session opened most recently (the open
  one while a vote is open). If the session has not opened any vote yet there is nothing
  to count it on: it is only in the audit log (round_id null);
- `malformed` (not a ballot at all: bad text, base64 or JSON) is only audited, as before:
  it is not a submission of a ballot (RULES §4), often a bad scan, and counts nowhere.
"""
from __future__ import annotations

import hashlib
import os
import threading
import weakref
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, ballots, keys, rules
from .canonical import canonical_json, sha256_hex
from .config import Settings
from .db import begin_write, utcnow
from .errors import InvalidInput
from .models import Cast, Issuance, Item, Round, Sitting, random_id
from .voting import count_refusal


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


# --- the body's public key, without reloading the key file per cast ---------------------------

_keys: dict[tuple, tuple[tuple, object]] = {}
_keys_lock = threading.Lock()


def _public_key(settings: Settings, body_id: int):
    """The body's verification key. keys.load_key already caches the decrypted key, but it
    resolves the path and hashes the passphrase on every call; here one stat() of the key
    file tells whether the cached key is still the file's (a replaced file is reloaded)."""
    name = keys.body_key_name(body_id)
    path = keys.private_path(settings.keys_dir, name)
    try:
        st = os.stat(path)
        ident = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        ident = None  # load_key raises the clear error
    cache_key = (str(settings.keys_dir), name,
                 hashlib.sha256((settings.key_passphrase or "").encode("utf-8")).digest())
    with _keys_lock:
        hit = _keys.get(cache_key)
    if ident is not None and hit is not None and hit[0] == ident:
        return hit[1]
    public = keys.load_key(settings.keys_dir, name, settings.key_passphrase).public_key
    with _keys_lock:
        _keys[cache_key] = (ident, public)
    return public


# --- refusals -----------------------------------------------------------------------------------

_SESSION_VOTE = object()  # count a refusal on the session's current vote (module docstring)


class _RoundRef(NamedTuple):
    id: int


def _session_vote(db: Session, sitting: Sitting) -> int | None:
    """The session's current vote: the round opened most recently (the open one while a vote
    is open, since a session has at most one open vote)."""
    return db.scalar(select(Round.id).join(Item, Item.id == Round.item_id)
                     .where(Item.sitting_id == sitting.id, Round.opened_at.is_not(None))
                     .order_by(Round.opened_at.desc(), Round.id.desc()).limit(1))


def _refuse(db: Session, sitting: Sitting, count_on, reason: str, message: str, serial: str | None) -> None:
    """Count and audit a refusal (under the write lock), then raise it. `count_on`: a round id,
    _SESSION_VOTE, or None (counted nowhere, only audited)."""
    round_id = _session_vote(db, sitting) if count_on is _SESSION_VOTE else count_on
    if round_id is not None:
        count_refusal(db, _RoundRef(round_id), reason)
    # No terminal, seat or member in a refusal event: the serial alone.
    audit.append(db, "cast_refused", {"round_id": round_id, "reason": reason, "serial": serial}, timed=False)
    err = ballots.BallotRefused(reason, message)
    err.commit_audit = True
    raise err


def _open_now(status: str, closes_at) -> bool:
    return status == "open" and (closes_at is None or utcnow() < closes_at)


def _not_open(db: Session, facts: "_RoundFacts", status: str) -> tuple:
    """A genuine ballot of a round that is not open now: (reason, message, where it is counted).
    `late` if its round is still its item's current round, `wrong_round` if a later round (a
    runoff) replaced it."""
    if status == "pending":  # not opened yet: no Refusal rows on it
        return "late", "表决尚未开始 the vote has not opened yet; this ballot was not counted", _SESSION_VOTE
    latest = db.scalar(select(Round.number).where(Round.item_id == facts.item_id)
                       .order_by(Round.number.desc()).limit(1))
    if latest is not None and latest > facts.number:
        message = (f"这是第{facts.number}轮的选票，该轮表决已被第{latest}轮取代 this ballot is for round "
                   f"{facts.number}, which round {latest} has replaced; it was not counted")
        return "wrong_round", message, facts.id
    return "late", "表决已结束 the vote is closed; this ballot was not counted", facts.id


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


# --- the round a ballot names ---------------------------------------------------------------------

class _RoundFacts(NamedTuple):
    """What never changes once a round exists (rounds are never edited or deleted)."""

    id: int
    item_id: int
    number: int
    candidate_keys: tuple
    channel: str
    secret: bool


# Per engine (tests build an engine per database): (session, item, round number) -> facts.
_facts: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()
_facts_lock = threading.Lock()

_ROUND_OF_BALLOT = (
    select(Round.id, Round.item_id, Round.number, Round.candidate_keys, Item.channel, Item.secret,
           Round.status, Round.closes_at)
    .join(Item, Item.id == Round.item_id)
    .where(Item.sitting_id == bindparam("sitting_id"), Item.id == bindparam("item_id"),
           Round.number == bindparam("round_no")))
_ROUND_STATE = select(Round.status, Round.closes_at).where(Round.id == bindparam("round_id"))
_ROUND_OF_BALLOT_SHARED = _ROUND_OF_BALLOT.with_for_update(read=True, of=Round)
_ROUND_STATE_SHARED = _ROUND_STATE.with_for_update(read=True)


def _known_facts(engine: Engine, key: tuple) -> _RoundFacts | None:
    with _facts_lock:
        return _facts.get(engine, {}).get(key)


def _remember_facts(engine: Engine, key: tuple, facts: _RoundFacts) -> None:
    with _facts_lock:
        _facts.setdefault(engine, {})[key] = facts


def _marks_outcome(raw_marks, facts: _RoundFacts, token_text: str, channel: str):
    """(marks, digest) or the InvalidInput to raise (later, in the order of the checks)."""
    try:
        marks = parse_marks(raw_marks, list(facts.candidate_keys), allow_void=channel == "paper")
    except InvalidInput as exc:
        return exc
    return marks, sha256_hex(canonical_json({"ballot": token_text, "marks": marks}))


# --- intake -------------------------------------------------------------------------------------

_CASTS = Cast.__table__
_INSERT_CAST = insert(_CASTS)
_CAST_OF_SERIAL = select(_CASTS.c.submission_digest, _CASTS.c.receipt).where(_CASTS.c.serial == bindparam("serial"))
_NAMED_MEMBER = select(Issuance.member_id).where(Issuance.round_id == bindparam("round_id"),
                                                 Issuance.terminal_id == bindparam("terminal_id"))


def accept(db: Session, settings: Settings, sitting: Sitting, token_text, raw_marks, *,
           channel: str, terminal_id: int | None = None) -> Receipt:
    """Validate and store one submission. Flushes only; the web layer commits."""
    if not isinstance(token_text, str) or not token_text:
        raise InvalidInput("ballot must be the ballot's text (as in its QR code)", where="ballot")

    # 1. Before the write lock: no database reads, nothing decided.
    try:
        token = ballots.text_to_token(token_text)
    except ballots.BallotRefused:
        begin_write(db)
        _refuse(db, sitting, None, "malformed", "the ballot text is not a ballot issued by this service", None)
    payload = token["payload"]
    serial = payload["serial"]
    if payload["session"] != sitting.id:
        begin_write(db)
        _refuse(db, sitting, _SESSION_VOTE, "unknown", "this ballot is not for a vote of this session", serial)
    try:
        ballots.verify_token(_public_key(settings, sitting.body_id), token, body=sitting.body_id,
                             session=sitting.id, item=payload["item"], round_no=payload["round"])
        signature_refusal = None
    except ballots.BallotRefused as exc:
        signature_refusal = (exc.reason, exc.message)
    engine = db.get_bind()
    key = (sitting.id, payload["item"], payload["round"])
    facts = _known_facts(engine, key)
    marks_outcome = None
    if facts is not None and signature_refusal is None:
        marks_outcome = _marks_outcome(raw_marks, facts, token_text, channel)

    # 2. Under the write lock (SQLite BEGIN IMMEDIATE): a few plain statements, then the commit.
    begin_write(db)
    conn = db.connection()
    sqlite = conn.dialect.name == "sqlite"
    # PostgreSQL: share-lock the round: casts run side by side, but a close (FOR UPDATE) waits
    # for them, so every cast commits before the close or is refused as late.
    if facts is None:
        row = conn.execute(_ROUND_OF_BALLOT if sqlite else _ROUND_OF_BALLOT_SHARED,
                           {"sitting_id": sitting.id, "item_id": payload["item"], "round_no": payload["round"]}).first()
        if row is None:
            _refuse(db, sitting, _SESSION_VOTE, "unknown", "this ballot is not for a vote of this session", serial)
        facts = _RoundFacts(row.id, row.item_id, row.number, tuple(row.candidate_keys), row.channel, row.secret)
        _remember_facts(engine, key, facts)
        status, closes_at = row.status, row.closes_at
    else:
        status, closes_at = conn.execute(_ROUND_STATE if sqlite else _ROUND_STATE_SHARED,
                                         {"round_id": facts.id}).one()

    if signature_refusal is not None:
        _refuse(db, sitting, facts.id, *signature_refusal, serial)
    if not _open_now(status, closes_at):
        reason, message, count_on = _not_open(db, facts, status)
        _refuse(db, sitting, count_on, reason, message, serial)
    if channel != facts.channel:
        raise InvalidInput(f"this item is voted by {facts.channel}, not {channel}", where="ballot")
    if channel == "paper":
        try:
            ballots.check_paper_serial(db, serial, facts)
        except ballots.BallotRefused as exc:
            _refuse(db, sitting, facts.id, exc.reason, exc.message, serial)
    if marks_outcome is None:
        marks_outcome = _marks_outcome(raw_marks, facts, token_text, channel)
    if isinstance(marks_outcome, InvalidInput):
        raise marks_outcome
    marks, digest = marks_outcome
    member_id = None
    if not facts.secret and terminal_id is not None:
        member_id = conn.execute(_NAMED_MEMBER, {"round_id": facts.id, "terminal_id": terminal_id}).scalar()

    code = receipt_code(serial, digest)
    row = {"id": random_id(), "round_id": facts.id, "serial": serial, "signature": token["sig"], "marks": marks,
           "channel": channel, "receipt": code, "submission_digest": digest, "member_id": member_id}
    try:
        if sqlite:
            conn.execute(_INSERT_CAST, row)  # a failed INSERT leaves SQLite's transaction as it was
        else:
            with db.begin_nested():  # PostgreSQL: a failed statement would abort the transaction
                db.connection().execute(_INSERT_CAST, row)
    except IntegrityError:
        # The serial is stored already (on SQLite never concurrently: we hold the write lock).
        existing = db.connection().execute(_CAST_OF_SERIAL, {"serial": serial}).first()
        if existing is None:
            raise
        if existing.submission_digest == digest:
            return Receipt(serial, existing.receipt, True)
        _refuse(db, sitting, facts.id, "reused", "这张选票已经投过 this ballot has already been cast", serial)
    event = {"round_id": facts.id, "serial": serial, "submission": digest}
    if member_id is not None:
        event["member_id"] = member_id  # named vote (记名): the choice may be tied to the member
    audit.append(db, "cast_accepted", event, timed=False)
    return Receipt(serial, code, False)
