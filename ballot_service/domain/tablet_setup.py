"""Whether the seat tablets are ready: set up and last seen (kept coarse), which present
members have a ready tablet before a terminal vote opens, and the secretariat's reset code.

Last seen is written at most once every SEEN_EVERY_S per tablet, and never while a vote is
open: a row changing with each tablet's polls during a secret vote would tie a tablet's
activity to the moment a ballot arrives. So "online" allows one write interval on top of the
tablet's 15 s of silence (ONLINE_S)."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ballot_service.db import database_now, utcnow
from ballot_service.domain import audit, group_commit, login_limits
from ballot_service.domain.sittings import open_item
from ballot_service.errors import Conflict, Forbidden, TooManyRequests
from ballot_service.models import Attendance, Item, Member, Round, Sitting, Terminal
from ballot_service.vocab import AuditKind, ItemStatus, Presence, TerminalKind

SEEN_EVERY_S = 30  # a tablet's last seen is written at most this often
ONLINE_S = 15 + SEEN_EVERY_S  # polled within 15 s, give or take one write interval
# No last seen is written while a vote is open, and after its close the waiting tablets are
# told over a few seconds (web/head_watcher.py: 0.4 + 3 s): for this long after a close, a
# tablet online when that vote opened still counts as online (the next 任职票决 opened at once).
AFTER_CLOSE_S = 10


def note_seen(db: Session, terminal_id: int, now: dt.datetime | None = None) -> bool:
    """Record that the tablet polled: set up from its first poll, last seen at most every
    SEEN_EVERY_S. The caller commits; nothing is written while a vote is open (see above).
    Returns whether a row was written."""
    return bool(db.execute(_seen_update([terminal_id], now or utcnow())).rowcount)


def _seen_update(terminal_ids: list[int], now: dt.datetime):
    stale = now - dt.timedelta(seconds=SEEN_EVERY_S)
    return (update(Terminal).where(
        Terminal.id.in_(terminal_ids), Terminal.revoked_at.is_(None),
        or_(Terminal.last_seen_at.is_(None), Terminal.last_seen_at < stale))
        .values(last_seen_at=now, set_up_at=func.coalesce(Terminal.set_up_at, now))  # first poll stays
        .execution_options(synchronize_session=False))


class _SeenJob(group_commit.Job):
    __slots__ = ("terminal_id",)

    def __init__(self, terminal_id: int) -> None:
        self.terminal_id = terminal_id
        super().__init__()


def note_seen_grouped(engine: Engine, terminal_id: int) -> None:
    """note_seen for a tablet's poll, in a group commit: the polls of a whole hall (3,000 tablets
    every 30 s, all at once after a vote closes) take the write lock once per batch, not once
    each, so they do not queue ahead of casts and the secretariat's actions. The batch's own
    transaction writes nothing for a tablet of a sitting whose vote is open (one may have opened
    since the poll looked)."""
    job = _SeenJob(terminal_id)
    group_commit.group_for(engine, _run_seen_batch, kind="seen").submit(job)
    job.outcome()


def note_seen_nowait(engine: Engine, terminal_id: int) -> None:
    """note_seen_grouped without waiting for the batch (a long-poll begun on the event loop,
    web/seat_wake.py); a failed batch is logged by the group commit."""
    group_commit.group_for(engine, _run_seen_batch, kind="seen").submit_nowait(_SeenJob(terminal_id), lambda: None)


def _run_seen_batch(engine: Engine, jobs) -> list:
    return group_commit.run_batch(engine, jobs, _store_seen, lambda db: db.commit())


def _store_seen(db: Session, jobs: list[_SeenJob]) -> None:
    voting = select(Item.id).where(Item.sitting_id == Terminal.sitting_id, Item.status == ItemStatus.OPEN).exists()
    db.execute(_seen_update(sorted({j.terminal_id for j in jobs}), utcnow()).where(~voting))
    for job in jobs:
        job.result = True


def is_online(term, now: dt.datetime) -> bool:
    """`term`: a Terminal or a row with its set_up_at and last_seen_at."""
    return (term.set_up_at is not None and term.last_seen_at is not None
            and term.last_seen_at >= now - dt.timedelta(seconds=ONLINE_S))


@dataclass(frozen=True)
class Readiness:
    """Present members and how many of them have a set-up, online tablet (实到 P, ready R)."""

    present: int
    ready: int
    missing: tuple[tuple[str, str, str], ...]  # (member_no, name, why zh) of those not ready

    def as_dict(self) -> dict:
        return {"present": self.present, "ready": self.ready,
                "missing": [{"member_no": no, "name": name, "why": why} for no, name, why in self.missing]}


def seat_plan(db: Session, sitting: Sitting) -> list[tuple]:
    """Each present member in office, by member number: (member, tablet, taken_by), the tablet a
    vote's opening issues their ballot to (voting._make_eligible). A tablet serves one member in
    a vote: whoever checked in at it (at a spare released and checked in at again, two have:
    the member it is bound to now), else its seat's member; a member whose tablet serves
    another gets None and that member's name as `taken_by`. Only live seat terminals count.
    Plain rows (id, member_no, name, seat, terminal_id; the tablet's id, name, set_up_at,
    last_seen_at, bound_member_id), not ORM objects: a hall's 3,000 of each cost ~100 ms as
    objects."""
    live = db.execute(select(Terminal.id, Terminal.name, Terminal.seat, Terminal.set_up_at, Terminal.last_seen_at,
                             Terminal.bound_member_id)
                      .where(Terminal.sitting_id == sitting.id, Terminal.kind == TerminalKind.SEAT,
                             Terminal.revoked_at.is_(None)).order_by(Terminal.id)).all()
    by_id = {t.id: t for t in live}
    by_seat: dict = {}
    for t in live:
        if t.seat:
            by_seat.setdefault(t.seat, t)  # two live tablets on one seat: the older serves it
    members = db.execute(select(Member.id, Member.member_no, Member.name, Member.seat, Attendance.terminal_id)
                         .join(Attendance, Attendance.member_id == Member.id)
                         .where(Attendance.sitting_id == sitting.id, Attendance.status == Presence.PRESENT,
                                Member.in_office.is_(True)).order_by(Member.member_no)).all()
    found = [(m, by_id.get(m.terminal_id), by_seat.get(m.seat)) for m in members]
    holder: dict[int, object] = {}  # tablet id -> the member it serves
    for bound_first in (True, False):
        for m, at_checkin, _ in found:
            if at_checkin is not None and (at_checkin.bound_member_id == m.id) == bound_first:
                holder.setdefault(at_checkin.id, m)
    for m, at_checkin, at_seat in found:
        if at_checkin is None and at_seat is not None:
            holder.setdefault(at_seat.id, m)
    plan = []
    for m, at_checkin, at_seat in found:
        term = at_checkin or at_seat
        serves = holder[term.id] if term is not None else m
        plan.append((m, term, None) if serves.id == m.id else (m, None, serves.name))
    return plan


def readiness(db: Session, sitting: Sitting, now: dt.datetime | None = None, plan: list | None = None) -> Readiness:
    """Each present member's tablet as a vote's opening would issue to it (seat_plan, or the
    `plan` it gave): set up and online, or why not."""
    now = now or utcnow()
    plan = seat_plan(db, sitting) if plan is None else plan
    seen_since = _seen_since(db, sitting, now)
    missing = []
    for member, term, taken_by in plan:
        if taken_by is not None:
            missing.append((member.member_no, member.name, f"表决器由{taken_by}使用"))
        elif term is None:
            missing.append((member.member_no, member.name, "无表决器"))
        elif term.set_up_at is None:
            missing.append((member.member_no, member.name, f"表决器 {term.name} 未设置"))
        elif not (term.last_seen_at is not None and term.last_seen_at >= seen_since):
            missing.append((member.member_no, member.name, f"表决器 {term.name} 离线"))
    return Readiness(len(plan), len(plan) - len(missing), tuple(missing))


def _seen_since(db: Session, sitting: Sitting, now: dt.datetime) -> dt.datetime:
    """The last seen from which a tablet counts as online for an opening now: ONLINE_S ago, or
    ONLINE_S before the opening of a vote of this sitting closed within AFTER_CLOSE_S."""
    since = now - dt.timedelta(seconds=ONLINE_S)
    opened = db.scalar(select(func.min(Round.opened_at)).join(Item, Item.id == Round.item_id)
                       .where(Item.sitting_id == sitting.id, Round.opened_at.is_not(None),
                              Round.closed_at >= now - dt.timedelta(seconds=AFTER_CLOSE_S)))
    return min(since, opened - dt.timedelta(seconds=ONLINE_S)) if opened is not None else since


def reset_code(secret_key: str, sitting_id: int) -> str:
    """Six digits shown on the sitting's console page: a tablet is reset only with it."""
    mac = hmac.new(secret_key.encode("utf-8"), f"tablet-reset:{sitting_id}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(mac[:8], 'big') % 1_000_000:06d}"


def reset_tablet(db: Session, secret_key: str, sitting: Sitting, terminal_id: int, code: str) -> None:
    """重置本终端: refused without the secretariat's code and while a vote is open; the tablet is
    then not set up until its credential is entered again."""
    # Six digits could be guessed: the login limits (login_limits) hold for this code too, per
    # tablet (5 wrong codes in 5 minutes lock that tablet out of resetting for 5 minutes).
    name, source, now = f"tablet-reset:{sitting.id}", f"terminal:{terminal_id}", database_now(db)
    if login_limits.refusal(db, name, source, now) is not None:
        raise TooManyRequests("too many wrong reset codes from this tablet: wait 5 minutes", where="code",
                              zh="本表决器重置码错误次数过多：请 5 分钟后再试")
    # Bytes: compare_digest refuses non-ASCII str, and a typed code may hold anything.
    if not hmac.compare_digest(str(code).strip().encode("utf-8"), reset_code(secret_key, sitting.id).encode()):
        login_limits.record_failure(db, name, source, now)
        err = Forbidden("wrong reset code: the secretariat's console shows it", where="code",
                        zh="重置码不正确：请会务工作人员在控制台查看重置码")
        err.commit_audit = True  # the failure is kept, as a failed login's is
        raise err
    login_limits.forget_failures(db, name, source)
    voting_now = open_item(db, sitting)
    if voting_now is not None:
        raise Conflict(f"a vote ({voting_now.title}) is open: a tablet is not reset during a vote",
                       where="vote", zh=f"《{voting_now.title}》正在表决：表决期间不能重置表决器")
    term = db.get(Terminal, terminal_id)
    term.set_up_at = term.last_seen_at = None
    db.flush()
    audit.append(db, AuditKind.TERMINAL_RESET, {"terminal_id": term.id, "name": term.name}, sitting_id=sitting.id)
