"""Taking a blind signature's count under the write lock (issuance.py signs; this decides).

A job is one request's counts: one round, or a ballot set's rounds, all or none. It carries
the SHA-256 of each blinded value it signed. A member already issued whose row holds that
same digest is sending again the request whose answer was lost (a node died after the count's
COMMIT, the network dropped the answer): the job succeeds without a second count and the same
signature is answered again (RSA signing is deterministic: the same ballot, not a second one).
Any other request from a member already issued is refused. The digests are cleared when the
round closes (forget_blinded) and when a further ballot is allowed (further_ballots.py), so a
held digest never sits beside an unused allowance: a resend is never counted again.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ballot_service.db import begin_write
from ballot_service.domain import group_commit
from ballot_service.errors import Conflict, NotFound, Unauthorized
from ballot_service.models import Attendance, Issuance, Member, Round, Terminal
from ballot_service.vocab import Presence, RoundStatus


def blinded_digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def already_issued() -> Conflict:  # one refusal, made in two places
    return Conflict("this member has already received a ballot in this round", where="ballot",
                    zh="本席代表本轮已领取选票，不再发出")


def serves(bound_member_id: int | None, terminal_seat: str | None, member_id: int, member_seat: str | None) -> bool:
    """Whether a seat tablet still serves the member its issuance row names (tablet_setup.seat_plan
    chose it at the opening): the spare they are checked in at, or their own seat's tablet. A spare
    released during the vote and checked in at by another deputy no longer does."""
    if bound_member_id is not None:
        return bound_member_id == member_id
    return terminal_seat is not None and terminal_seat == member_seat


def not_served() -> Conflict:
    return Conflict("this tablet no longer serves the member it was assigned to when the vote opened",
                    where="member", zh="本表决器已不再对应表决开始时的代表，请联系会务工作人员")


def require_present(db: Session, sitting_id: int, member_id: int) -> None:
    present = db.scalar(select(Attendance.id).where(Attendance.sitting_id == sitting_id,
                                                    Attendance.member_id == member_id,
                                                    Attendance.status == Presence.PRESENT))
    if present is None:
        raise Conflict("the member of this terminal is not present", where="member", zh="本席代表未签到")


def forget_blinded(db: Session, round_id: int) -> None:
    """At the close: the digests go with the round's private key (SQLite's secure_delete
    overwrites the freed bytes; PostgreSQL's dead row versions, the WAL and a backup taken
    during the vote keep them longer: they say nothing of any ballot, module docstring)."""
    db.execute(update(Issuance).where(Issuance.round_id == round_id, Issuance.blinded_sha256.is_not(None))
               .values(blinded_sha256=None).execution_options(synchronize_session=False))


class IssueJob(group_commit.Job):
    """One request's blind-signature counts (one round, or a ballot set's rounds), taken under
    the write lock all together or not at all; `digests`: each round's blinded_digest."""

    __slots__ = ("round_ids", "member_id", "sitting_id", "terminal_id", "digests")

    def __init__(self, round_ids: tuple[int, ...], member_id: int | None, sitting_id: int,
                 terminal_id: int | None = None, digests: tuple[bytes, ...] = ()) -> None:
        # member_id None: the terminal's member in the (one) round, found under the lock
        self.round_ids, self.member_id, self.sitting_id = round_ids, member_id, sitting_id
        self.terminal_id, self.digests = terminal_id, digests
        super().__init__()


def take_counts(db: Session, jobs: list[IssueJob]) -> None:
    """Under the write lock: each job's counts, if every round is still open, the member still
    present and a signature still allowed (or the job is a lost answer's resend: module
    docstring); otherwise that job's refusal (NotFound: no vote open; Conflict: absent or
    already issued) and the counts it took given back.

    A hall's opening brings a batch of up to 64 single-round jobs at a time; one statement per
    job (ORM UPDATE with its two subqueries) took ~1.5 ms each under the lock, so 3,000 tablets
    waited seconds for their counts (benchmarks/bench_hall.py). The single-round jobs of a round
    are counted by one UPDATE ... RETURNING (_TAKE_MANY), each member once, and their digests
    noted by one executemany; a member's second job in the batch, a refusal or resend (the
    member has no allowance left: module docstring) and a ballot set's jobs take the one-by-one
    path below."""
    begin_write(db)
    # Core statements built once, on the session's connection: through the ORM each batch cost
    # ~4 ms of CPU, twice the work (benchmarks/bench_issue_batch.py), 300 batches at a hall's opening.
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        # PostgreSQL (begin_write takes no lock there): the rounds held FOR SHARE, so a close
        # (which locks its round FOR UPDATE) cannot commit between the checks below and this
        # COMMIT; in id order, as a ballot set's rounds are opened and closed, so the two never
        # wait on each other. SQLite: the write lock, held since begin_write, does it.
        conn.execute(_HOLD_ROUNDS, {"b_rounds": sorted({r for job in jobs for r in job.round_ids})})
    _find_members(conn, [job for job in jobs if job.member_id is None])
    by_round: dict[tuple, dict[int, IssueJob]] = {}
    one_by_one = []
    for job in jobs:
        if job.error is not None:
            continue
        group = by_round.setdefault((job.round_ids[0], job.sitting_id), {}) if len(job.round_ids) == 1 else None
        if group is None or job.member_id in group:
            one_by_one.append(job)
        else:
            group[job.member_id] = job
    for (round_id, sitting_id), group in by_round.items():
        taken = set(conn.execute(_TAKE_MANY, {"b_round": round_id, "b_sitting": sitting_id,
                                              "b_members": list(group)}).scalars())
        noted = [{"b_round": round_id, "b_member": member_id, "b_digest": group[member_id].digests[0]}
                 for member_id in taken if group[member_id].digests]
        if noted:
            conn.execute(_NOTE_DIGEST, noted)
        for member_id, job in group.items():
            if member_id in taken:
                job.result = True
            else:
                one_by_one.append(job)  # refused or a resend: _take_one finds out which
    for job in one_by_one:
        _take_one(db, job)


_HOLD_ROUNDS = (select(Round.id).where(Round.id.in_(bindparam("b_rounds", expanding=True)))
                .order_by(Round.id).with_for_update(read=True))


_ISSUANCES = Issuance.__table__
_TAKE_MANY = (update(_ISSUANCES).where(
    _ISSUANCES.c.round_id == bindparam("b_round"),
    _ISSUANCES.c.member_id.in_(bindparam("b_members", expanding=True)),
    _ISSUANCES.c.issued < _ISSUANCES.c.allowed,
    select(Round.id).where(Round.id == bindparam("b_round"), Round.status == RoundStatus.OPEN).exists(),
    select(Attendance.id).where(Attendance.sitting_id == bindparam("b_sitting"),
                                Attendance.member_id == _ISSUANCES.c.member_id,
                                Attendance.status == Presence.PRESENT).exists())
    .values(issued=_ISSUANCES.c.issued + 1).returning(_ISSUANCES.c.member_id))
_NOTE_DIGEST = (update(_ISSUANCES).where(_ISSUANCES.c.round_id == bindparam("b_round"),
                                         _ISSUANCES.c.member_id == bindparam("b_member"))
                .values(blinded_sha256=bindparam("b_digest")))


_MEMBERS_OF_TERMINALS = (
    select(Issuance.terminal_id, Issuance.member_id, Terminal.revoked_at, Terminal.bound_member_id,
           Terminal.seat, Member.seat.label("member_seat"))
    .join(Terminal, Terminal.id == Issuance.terminal_id).join(Member, Member.id == Issuance.member_id)
    .where(Issuance.round_id == bindparam("b_round"),
           Issuance.terminal_id.in_(bindparam("b_terminals", expanding=True))))


def _find_members(conn: Connection, jobs: list[IssueJob]) -> None:
    """The member each terminal's job is for (its Issuance row in the round), or NotFound; or
    Unauthorized for a terminal revoked since (the caller's snapshot may predate it: Flask
    refuses a revoked credential on every request, so the count does too); or not_served for a
    tablet that no longer serves that member (serves)."""
    for round_id in {job.round_ids[0] for job in jobs}:
        of_round = [job for job in jobs if job.round_ids[0] == round_id]
        found = {row.terminal_id: row for row in conn.execute(
            _MEMBERS_OF_TERMINALS, {"b_round": round_id, "b_terminals": [job.terminal_id for job in of_round]})}
        for job in of_round:
            row = found.get(job.terminal_id)
            if row is not None and row.revoked_at is not None:
                job.error = Unauthorized("this terminal was revoked", zh="本终端的凭据已被吊销，请联系秘书处")
            elif row is None:
                job.error = NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
            elif not serves(row.bound_member_id, row.seat, row.member_id, row.member_seat):
                job.error = not_served()
            else:
                job.member_id = row.member_id


def _take_one(db: Session, job: IssueJob) -> None:
    if _is_resend(db, job):
        job.result = True
        return
    taken = []
    for round_id in job.round_ids:
        if _take_count(db, job, round_id):
            taken.append(round_id)
            continue
        for back in taken:  # all or none: a set's ballots are issued together
            db.execute(update(Issuance).where(Issuance.round_id == back, Issuance.member_id == job.member_id)
                       .values(issued=Issuance.issued - 1).execution_options(synchronize_session=False))
        try:
            if db.scalar(select(Round.status).where(Round.id == round_id)) != RoundStatus.OPEN:
                raise NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
            require_present(db, job.sitting_id, job.member_id)
            raise already_issued()
        except (Conflict, NotFound) as exc:
            job.error = exc
        return
    if job.digests:
        db.execute(_NOTE_DIGEST, [{"b_round": r, "b_member": job.member_id, "b_digest": d}
                                  for r, d in zip(job.round_ids, job.digests)])
    job.result = True


def _is_resend(db: Session, job: IssueJob) -> bool:
    """Whether every round of the job was issued to the member for exactly these blinded
    values, the rounds still open and the member present (as a first request must be)."""
    if len(job.digests) != len(job.round_ids):
        return False
    held = dict(db.execute(select(Issuance.round_id, Issuance.blinded_sha256)
                           .join(Round, Round.id == Issuance.round_id)
                           .where(Issuance.round_id.in_(job.round_ids), Issuance.member_id == job.member_id,
                                  Issuance.issued > 0, Round.status == RoundStatus.OPEN)).all())
    if any(held.get(r) != d for r, d in zip(job.round_ids, job.digests)):
        return False
    try:
        require_present(db, job.sitting_id, job.member_id)
    except Conflict:
        return False  # _take_one refuses it as absent
    return True


def _take_count(db: Session, job: IssueJob, round_id: int) -> bool:
    return db.execute(update(Issuance).where(
        Issuance.round_id == round_id, Issuance.member_id == job.member_id,
        Issuance.issued < Issuance.allowed,
        select(Round.id).where(Round.id == round_id, Round.status == RoundStatus.OPEN).exists(),
        select(Attendance.id).where(Attendance.sitting_id == job.sitting_id,
                                    Attendance.member_id == job.member_id,
                                    Attendance.status == Presence.PRESENT).exists())
        .values(issued=Issuance.issued + 1).execution_options(synchronize_session=False)).rowcount == 1


def run_issue_batch(engine, jobs) -> list:
    """A batch of counts in one transaction and one durable COMMIT (group_commit.run_batch)."""
    return group_commit.run_batch(engine, jobs, take_counts, lambda db: db.commit())
