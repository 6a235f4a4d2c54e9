"""Cast intake: the one path every ballot takes, from a seat terminal (a blind-signed
ballot, terminal_casts.py prepares it) or the paper counting station (an Ed25519 token).
Checks signature, item, round, open state, serial use and marks; stores the cast
atomically; answers with a receipt. Refusals are counted (拒收) and audited.

A used serial: a terminal ballot gets its first receipt again only with the same retry id
(the tablet's random id, stored hashed), whatever marks come with it; anything else gets
the same 409, so a resend never tells whether its marks were the ones cast (no oracle).
A paper ballot (the counting station rescans) is matched by its submission digest: the same
marks again get the first receipt and count as 重复扫描 (`Round.rescanned`, event
`paper_rescanned`), neither returned nor refused; other marks are refused as `reused`.

Concurrent casts queue on the database's one write lock (SQLite) only for the moment they
store, so the work is split in two:

1. before the lock, in the request's thread (a secret cast: on the server's event loop,
   web/cast_on_loop.py), without reading the database: parse the ballot text, verify its
   signature, and, when this process already knows the round's fixed facts
   (candidates, channel: they never change once a round exists), parse the marks and hash
   the submission. Nothing is decided yet: the outcomes are kept for step 2 (a `Job`);
2. under the lock (_store): read the round's state, then decide in a fixed order (no such
   round, signature, closed, channel, paper serial, marks, serial already used), store the
   cast; per round, the batch appends one `casts_accepted {round_id, count}` event to the
   body's chain (no event per cast: its place in the chain would be its arrival).

A secret round's casts are stored sealed until the close (cast_staging.py): the row is
sealed under the body's key, which step 1 loads (`Job.body_key`); a serial already used is
found by its tag among them as well as among the clear casts.

Group commit (group_commit.py), SQLite and PostgreSQL: one process's concurrent requests are
decided in arrival order and stored in one transaction with one durable COMMIT (PostgreSQL:
keep synchronous_commit on); each gets its receipt only after it, so a crash loses no
receipted cast. PostgreSQL runs several processes' (nodes') batches side by side: FOR SHARE
on their rounds in id order (a paper cast's FOR NO KEY UPDATE: round_facts.lock_in_id_order; a
close waits for casts in flight), the audit head FOR UPDATE, and a serial
stored meanwhile by another is caught by its unique index (_insert_together, _decide). A
caller inside a write transaction (station scans) stores a batch of one there and commits.

Where a refusal is counted, and its audit event: intake_refusals.py.
"""
from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import cast_seal, keys
from ballot_service.db import begin_write, in_write_transaction, insert_rows, pg_batches
from ballot_service.domain import (
    audit,
    cast_staging,
    group_commit,
    hybrid_paper,
    paper_ballots,
    round_facts,
)
from ballot_service.domain import intake_refusals as refusals
from ballot_service.domain.ballot_marks import marks_outcome
from ballot_service.domain.receipts import Receipt, new_receipt
from ballot_service.domain.round_facts import RoundFacts
from ballot_service.errors import BallotError, Conflict, InvalidInput
from ballot_service.formats import ballots
from ballot_service.formats.ballot_set import receipt_code
from ballot_service.models import Cast, Issuance, Round, random_id
from ballot_service.vocab import AuditKind, Channel, RoundStatus

# --- intake -------------------------------------------------------------------------------------

_CASTS = Cast.__table__
_CAST_OF_SERIAL = select(_CASTS.c.submission_digest, _CASTS.c.receipt, _CASTS.c.retry_hash).where(
    _CASTS.c.serial == bindparam("serial"))
_MEMBER_CAST = select(_CASTS.c.id).where(_CASTS.c.round_id == bindparam("round_id"),
                                         _CASTS.c.member_id == bindparam("member_id"))
_RESCANNED = update(Round.__table__).where(Round.__table__.c.id == bindparam("round_id")).values(
    rescanned=Round.__table__.c.rescanned + 1)
_PAPER_RETURNED = update(Round.__table__).where(Round.__table__.c.id == bindparam("round_id")).values(
    paper_returned=Round.__table__.c.paper_returned + 1)
_NAMED_MEMBER = select(Issuance.member_id).where(Issuance.round_id == bindparam("round_id"),
                                                 Issuance.terminal_id == bindparam("terminal_id"))


class SittingRef(NamedTuple):
    """What intake needs of the ballot's session (a Sitting does as well)."""

    id: int
    body_id: int


class Job(group_commit.Job):
    """One submission on its way to the write lock: what step 1 found, and then its outcome."""

    __slots__ = ("sitting", "token_text", "raw_marks", "channel", "terminal_id", "token", "serial",
                 "refusal", "signature_refusal", "key", "marks_outcome", "signature", "msg_prefix", "retry_hash",
                 "receipt_hash", "body_key", "tag", "staged", "receipt")

    def __init__(self, sitting, token_text, raw_marks, channel, terminal_id):
        # token_text: the paper token's text, or a terminal ballot's fields (a dict)
        self.sitting, self.token_text, self.raw_marks = sitting, token_text, raw_marks
        self.channel, self.terminal_id = channel, terminal_id
        self.token = self.serial = self.refusal = self.signature_refusal = self.key = self.marks_outcome = None
        self.signature = self.msg_prefix = self.retry_hash = self.receipt_hash = None
        self.body_key = None  # the body's SigningKey: seals a secret round's cast (cast_staging.py)
        self.tag = self.staged = self.receipt = None  # its serial's tag, and the row sealed in step 1 (preseal)
        super().__init__()


def accept(db: Session, settings: Settings, sitting, token_text, raw_marks, *,
           channel: str, terminal_id: int | None = None) -> Receipt:
    """Validate and store one submission. `sitting`: the ballot's session (a Sitting or a
    SittingRef). When the session holds no write transaction, the cast is stored and
    committed by a group commit (module docstring) before this returns; otherwise it is
    stored in the session's transaction, which the caller commits."""
    if not isinstance(token_text, str) or not token_text:
        raise InvalidInput("ballot must be the ballot's text (as in its QR code)", where="ballot", zh="选票内容须为选票二维码中的文本")
    engine = db.get_bind()
    job = Job(SittingRef(sitting.id, sitting.body_id), token_text, raw_marks, channel, terminal_id)
    _prepare(db, settings, engine, job)
    return submit(db, engine, job)


def submit(db: Session, engine: Engine, job: Job, *, only_read: bool = False) -> Receipt:
    """Store a prepared job: by group commit outside a write transaction (on PostgreSQL also
    when the caller says its transaction `only_read`), else in the session's own transaction
    (the caller commits)."""
    if not in_write_transaction(db) or (only_read and engine.dialect.name != "sqlite"):
        if db.in_transaction():
            db.commit()  # a read snapshot (writes there raise): nothing to keep
        group_commit.group_for(engine, _run_batch).submit(job)
        return stored_outcome(job)
    begin_write(db)
    _store(db, [job])
    return job.outcome()


def submit_nowait(engine: Engine, job: Job, notify) -> None:
    """Queue a prepared job for group commit without waiting (a request on an event loop):
    `notify()` is called, on another thread, once it is stored or refused; then
    stored_outcome(job) gives its receipt or raises its error."""
    group_commit.group_for(engine, _run_batch).submit_nowait(job, notify)


def stored_outcome(job: Job) -> Receipt:
    """The receipt of a job group commit has decided, or its error."""
    if isinstance(job.error, ballots.BallotRefused):
        job.error.commit_audit = False  # counted and audited already, by the batch's commit
    return job.outcome()


def _prepare(db: Session, settings: Settings, engine: Engine, job: Job) -> None:
    """Step 1, before the write lock: no database reads (but a round key's, cached), nothing decided."""
    sitting = job.sitting
    try:
        job.token = token = ballots.text_to_token(job.token_text)
    except ballots.BallotRefused:
        job.refusal = (None, "malformed", "the ballot text is not a ballot issued by this service")
        return
    payload = token["payload"]
    job.serial, job.signature = payload["serial"], token["sig"]
    if payload["session"] != sitting.id:
        job.refusal = (refusals.SITTING_VOTE, "unknown", "this ballot is not for a vote of this session")
        return
    job.body_key = keys.checked_body_signing_key(settings, sitting.body_id)
    if ballots.is_round_key_token(token):  # a hybrid round's paper ballot
        hybrid_paper.prepare(db, settings, job, token)
        if job.refusal is not None:
            return
    else:
        try:
            ballots.verify_token(job.body_key.public_key, token, body=sitting.body_id,
                                 session=sitting.id, item=payload["item"], round_no=payload["round"])
        except ballots.BallotRefused as exc:
            job.signature_refusal = (exc.reason, exc.message)
        job.key = (sitting.id, payload["item"], payload["round"])
    facts = round_facts.known(engine, job.key)
    if facts is not None and job.signature_refusal is None:
        job.marks_outcome = marks_outcome(job.raw_marks, facts, job.token_text, job.channel)
    preseal(job, facts)


def preseal(job: Job, facts: RoundFacts | None) -> None:
    """Step 1 of a cast whose body key is loaded: its serial's tag and, when its round is known
    to be secret and its marks are good, the sealed row itself, so that sealing is not done
    under the write lock (cast_staging.py). _decide seals what is not sealed here."""
    if job.body_key is None or job.serial is None or job.refusal is not None:
        return
    job.tag = cast_seal.tag(job.body_key, job.serial)
    if facts is None or not facts.secret or job.signature_refusal is not None \
            or not isinstance(job.marks_outcome, tuple):
        return
    marks, digest = job.marks_outcome
    job.receipt = new_receipt(job.receipt_hash)
    job.staged = cast_staging.staged_row(job.body_key, facts, _cast_row(job, facts, marks, digest, job.receipt, None),
                                         job.tag)


def _cast_row(job: Job, facts: RoundFacts, marks: dict, digest: str, receipt: str, member_id: int | None) -> dict:
    return {"id": random_id(), "round_id": facts.id, "serial": job.serial, "signature": job.signature,
            "msg_prefix": job.msg_prefix, "retry_hash": job.retry_hash, "marks": marks,
            # a hybrid round's casts all say "hybrid": which came on paper is a count (Round.paper_returned)
            "channel": Channel.HYBRID if facts.channel == Channel.HYBRID else job.channel,
            "receipt": receipt, "submission_digest": digest, "member_id": member_id}


# --- step 2, under the write lock ------------------------------------------------------------------

def _store(db: Session, jobs: list[Job]) -> None:
    """Decide and store each job, in order, in the session's write transaction (held by the
    caller). Sets each job's result (a Receipt) or error (a BallotError: a refusal, counted
    and audited here, or bad input, which stores nothing). Any other exception propagates:
    the caller then rolls the whole transaction back."""
    conn = db.connection()
    sqlite = conn.dialect.name == "sqlite"
    rounds: dict[tuple, tuple | None] = {}  # key -> (facts, status, closes_at, now), None: no such round
    together = sqlite or len(jobs) > 1  # the batch's casts in one statement (_insert_together)
    if not sqlite:
        wants: dict[tuple, bool] = {}  # round key -> a paper cast may write its row
        for j in jobs:
            if j.key is not None:
                wants[j.key] = wants.get(j.key, False) or j.channel == Channel.PAPER
        round_facts.lock_in_id_order(conn, db.get_bind(), wants)
    checked = [j for j in jobs if j.refusal is None and j.serial is not None]
    stored = cast_staging.stored_of(conn, [j.serial for j in checked],
                                    [(j.body_key, j.serial, j.tag) for j in checked if j.body_key is not None])
    rows: list[dict] = []
    staged: list[dict] = []  # a secret round's casts, sealed (cast_staging.py)
    events: list[tuple[int, str, dict]] = []  # (chain, kind, data)
    accepted: dict[tuple[int, int], int] = {}  # (body id, round id) -> casts accepted in this batch
    for job in jobs:
        try:
            _decide(db, conn, sqlite, together, job, rounds, stored, (rows, staged), events, accepted)
        except BallotError as exc:
            job.error = exc
    # No event per cast (its place in the chain would give the order of arrival): per round,
    # how many this batch accepted. The close signs a commitment to the set (voting.py).
    events.extend((chain, AuditKind.CASTS_ACCEPTED, {"round_id": rid, "count": n})
                  for (chain, rid), n in sorted(accepted.items()))
    for table, batch in ((_CASTS, rows), (cast_staging.STAGED, staged)):
        if batch and sqlite:  # serials checked above, under the write lock; one statement for the batch
            insert_rows(conn, table, batch)
        elif batch:
            _insert_together(conn, table, batch)
    for chain in sorted({e[0] for e in events}):  # each body's events on its own chain
        audit.append_many(db, chain, [(kind, data) for c, kind, data in events if c == chain], timed=False)


def _insert_together(conn, table, rows: list[dict]) -> None:
    """PostgreSQL: a batch's casts in one statement. If another process stored one of its serials
    (or a named vote's member) since the batch read them, the batch is undone and run_batch
    stores each cast alone, where that serial is read again and decided (a retry, or reused)."""
    if pg_batches.insert_or_nothing(conn, table, rows) != len(rows):
        raise RuntimeError("a cast of this batch was stored meanwhile by another process")


def _round_of(conn, sqlite: bool, engine: Engine, job: Job, rounds: dict):
    key = job.key
    if key in rounds:
        return rounds[key]
    facts = round_facts.known(engine, key)
    if facts is None:
        row = conn.execute(round_facts.ROUND_OF_BALLOT if sqlite else round_facts.ROUND_OF_BALLOT_SHARED,
                           {"sitting_id": key[0], "item_id": key[1], "round_no": key[2]}).first()
        if row is None:
            rounds[key] = None
            return None
        facts = round_facts.facts_of(row)
        if row.status != RoundStatus.PENDING:  # a draft's round may still be edited or deleted
            round_facts.remember(engine, key, facts)
        rounds[key] = (facts, row.status, row.closes_at, row.now)
    else:
        status, closes_at, now = conn.execute(round_facts.ROUND_STATE if sqlite else round_facts.ROUND_STATE_SHARED,
                                              {"round_id": facts.id}).one()
        rounds[key] = (facts, status, closes_at, now)
    return rounds[key]


def _decide(db, conn, sqlite, together, job: Job, rounds, stored, rows, events, accepted) -> None:
    """Decide one job (_store). `together`: its row goes in `rows` (clear, staged: one INSERT
    each for the batch), else (PostgreSQL, a batch of one) it is inserted now, in a savepoint."""
    sitting, serial, channel, engine = job.sitting, job.serial, job.channel, db.get_bind()

    def refuse(count_on, reason: str, message: str):
        raise refusals.refusal(db, sitting, count_on, reason, message, events)

    if job.refusal is not None:
        refuse(*job.refusal)
    found = _round_of(conn, sqlite, engine, job, rounds)
    if found is None:
        refuse(refusals.SITTING_VOTE, "unknown", "this ballot is not for a vote of this session")
    facts, status, closes_at, now = found
    if job.signature_refusal is not None:
        refuse(facts.id, *job.signature_refusal)
    if not refusals.open_now(status, closes_at, now):
        reason, message, count_on = refusals.not_open(db, facts, status)
        refuse(count_on, reason, message)
    hybrid_ok = facts.channel == Channel.HYBRID and channel in (Channel.TERMINAL, Channel.PAPER)
    if channel != facts.channel and not hybrid_ok:
        raise InvalidInput(f"this item is voted by {facts.channel}, not {channel}", where="ballot", zh="本项表决不以这种方式投票")
    if channel == Channel.PAPER and job.msg_prefix is None:  # a printed Ed25519 ballot of a paper round
        try:
            paper_ballots.check_paper_serial(db, serial, facts)
        except ballots.BallotRefused as exc:
            refuse(facts.id, exc.reason, exc.message)
    outcome = job.marks_outcome or marks_outcome(job.raw_marks, facts, job.token_text, channel)
    if isinstance(outcome, InvalidInput):
        raise outcome
    marks, digest = outcome

    if serial in stored:  # stored before, or earlier in this batch
        existing_digest, existing_receipt, existing_retry = stored[serial]
        same = existing_retry == job.retry_hash if channel == Channel.TERMINAL else existing_digest == digest
        if same and (channel != Channel.TERMINAL or existing_retry is not None):
            if channel == Channel.PAPER:  # 重复扫描: counted apart, in neither 收回 nor 拒收
                conn.execute(_RESCANNED, {"round_id": facts.id})
                events.append((sitting.body_id, AuditKind.PAPER_RESCANNED, {"round_id": facts.id}))  # no serial: no scan order
            job.result = Receipt(serial, receipt_code(existing_receipt), True)
            return
        refuse(facts.id, "reused", "这张选票已经投过 this ballot has already been cast")

    member_id = None
    if not facts.secret:  # named (记名): bound to the member of the casting terminal, once
        member_id = conn.execute(_NAMED_MEMBER, {"round_id": facts.id, "terminal_id": job.terminal_id}).scalar() \
            if job.terminal_id is not None else None
        if member_id is None:
            raise InvalidInput("a named vote is cast from the member's own terminal", where="ballot", zh="记名表决须从代表本人座位的表决器投票")
        if (facts.id, member_id) in stored or conn.execute(
                _MEMBER_CAST, {"round_id": facts.id, "member_id": member_id}).first() is not None:
            refuse(facts.id, "reused", "本席代表本轮已经投票 this member has already voted in this round")
        stored[(facts.id, member_id)] = None
    table = _CASTS
    if not facts.secret:
        receipt = new_receipt(job.receipt_hash)
        row = _cast_row(job, facts, marks, digest, receipt, member_id)
    elif job.staged is not None and job.staged["round_id"] == facts.id:  # sealed in step 1 (preseal)
        row, receipt, table = job.staged, job.receipt, cast_staging.STAGED
    elif job.body_key is None:
        raise Conflict("a secret ballot is stored sealed with the body's signing key, which this request did "
                       "not load", where="keys", zh="无记名投票的选票须用本机关签名密钥密封保存，本次提交未载入该密钥")
    else:  # sealed until the close (cast_staging.py)
        receipt = new_receipt(job.receipt_hash)
        row = cast_staging.staged_row(job.body_key, facts, _cast_row(job, facts, marks, digest, receipt, None), job.tag)
        table = cast_staging.STAGED
    if together:
        rows[table is cast_staging.STAGED].append(row)  # inserted with the batch's others (_store)
    else:
        try:
            with db.begin_nested():  # PostgreSQL: a failed statement would abort the transaction
                db.connection().execute(insert(table), row)
        except IntegrityError:
            # A concurrent transaction stored this serial after our check above.
            existing = _stored_serial(db.connection(), job)
            if existing is None:
                raise
            stored[serial] = existing
            return _decide(db, conn, sqlite, together, job, rounds, stored, rows, events, accepted)
    stored[serial] = (digest, receipt, job.retry_hash)
    if facts.channel == Channel.HYBRID and channel == Channel.PAPER:
        conn.execute(_PAPER_RETURNED, {"round_id": facts.id})
    at = (sitting.body_id, facts.id)
    accepted[at] = accepted.get(at, 0) + 1
    job.result = Receipt(serial, receipt_code(receipt), False)


def _stored_serial(conn, job: Job) -> tuple | None:
    """(submission digest, receipt, retry hash) of the cast stored with the job's serial."""
    existing = conn.execute(_CAST_OF_SERIAL, {"serial": job.serial}).first()
    if existing is not None:
        return existing.submission_digest, existing.receipt, existing.retry_hash
    fields = cast_staging.stored_serial(conn, job.body_key, job.serial) if job.body_key is not None else None
    return (fields["submission_digest"], fields["receipt"], fields["retry_hash"]) if fields else None


# --- group commit: the generic part is group_commit.py ------------------------------------------

def _run_batch(engine: Engine, jobs) -> list[Job]:
    """Store and commit a batch of jobs in one transaction (group_commit.run_batch). The store
    and commit steps are looked up when called, so a test can replace either."""
    return group_commit.run_batch(engine, jobs, lambda db, batch: _store(db, batch),
                                  lambda db: _commit_batch(db))


def _commit_batch(db: Session) -> None:
    """COMMIT (synchronous=FULL): when this returns, the batch is on disk."""
    db.commit()
