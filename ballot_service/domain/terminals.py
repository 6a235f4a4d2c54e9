"""Seat terminals and counting stations: registering one (its one-time credential),
recognising its credential on each request, and revoking it."""
from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ballot_service.db import get_or_not_found, read_phase, utcnow
from ballot_service.domain import audit
from ballot_service.domain.sittings import find_member, require_open, set_attendance
from ballot_service.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from ballot_service.models import Attendance, Member, Sitting, Terminal
from ballot_service.vocab import AuditKind, Presence, TellerRole, TerminalKind, values


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def register_terminal(db: Session, sitting: Sitting, name: str, kind: str,
                      seat: str | None = None, *, holder: str | None = None,
                      teller_role: str | None = None) -> tuple[Terminal, str]:
    """Register a seat terminal or counting station; returns it with its one-time credential.
    Only the credential's hash is stored.

    A counting station that enters tally sheets is held by a teller: `holder` (their name)
    and `teller_role` (vocab.TellerRole: counter 计票人 or scrutineer 监票人) go together. The
    name on a tally sheet is always the holder of the credential that sent it."""
    require_open(db, sitting, "登记终端", "registering a terminal")
    if kind not in values(TerminalKind):
        raise InvalidInput("kind must be seat or counting_station", where="kind",
                           zh="终端类型须为 seat（表决器）或 counting_station（计票站）")
    if not name:
        raise InvalidInput("terminal name is empty", where="name", zh="终端名称不能为空")
    holder = holder.strip() if isinstance(holder, str) else None
    if holder or teller_role:
        if kind != TerminalKind.COUNTING_STATION:
            raise InvalidInput("only a counting station is held by a teller", where="holder",
                               zh="只有计票站才登记计票人或监票人")
        if not holder:
            raise InvalidInput("a teller's station needs the holder's name", where="holder",
                               zh="须填写持有该计票站凭据的计票人或监票人姓名")
        if teller_role not in values(TellerRole):
            raise InvalidInput("teller_role must be counter, scrutineer or chief", where="teller_role",
                               zh="计票站角色须为 counter（计票人）、scrutineer（监票人）或 chief（总监票人）")
    if kind == TerminalKind.SEAT and seat:
        _require_roster_seat(db, sitting, seat)
        clash = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.seat == seat,
                                                 Terminal.revoked_at.is_(None)))
        if clash:
            raise Conflict(f"seat {seat} already has terminal {clash.name}", where="seat",
                           zh=f"座位 {seat} 已登记终端 {clash.name}")
    credential = secrets.token_urlsafe(32)
    term = Terminal(sitting_id=sitting.id, name=name, kind=kind, seat=seat, holder=holder or None,
                    teller_role=teller_role or None, credential_hash=credential_hash(credential))
    db.add(term)
    db.flush()
    event = {"terminal_id": term.id, "name": name, "kind": kind, "seat": seat}
    if term.holder:
        event.update(holder=term.holder, teller_role=term.teller_role)
    audit.append(db, AuditKind.TERMINAL_REGISTERED, event, sitting_id=sitting.id)
    return term, credential


def _require_roster_seat(db: Session, sitting: Sitting, seat: str) -> None:
    """A seat tablet names a seat of the roster (a member without a seat is known by their
    number); a spare tablet names none. A typo like 9排99座 would make a tablet no one can use."""
    known = db.scalar(select(Member.id).where(Member.body_id == sitting.body_id, Member.in_office.is_(True),
                                              (Member.seat == seat) | (Member.seat.is_(None) & (Member.member_no == seat)))
                      .limit(1))
    if known is None:
        raise InvalidInput(f"no member of the roster has seat {seat}: check the seat, or register a spare "
                           f"tablet without a seat", where="seat",
                           zh=f"名册中没有座位 {seat}：请核对座位号；备用表决器不填座位")


def get_terminal(db: Session, terminal_id: int) -> Terminal:
    return get_or_not_found(db, Terminal, terminal_id, where="terminal_id", en=f"no terminal {terminal_id}",
                            zh=f"没有编号为 {terminal_id} 的终端")


def release_terminal(db: Session, term: Terminal) -> None:
    """The secretariat releases a spare seat tablet from the member it checked in, so another
    member can check in there. The member's attendance is unchanged."""
    if term.kind != TerminalKind.SEAT:
        raise InvalidInput("only a seat tablet is bound to a member", where="terminal_id",
                           zh="只有表决器才会绑定代表")
    if term.bound_member_id is None:
        return
    require_open(db, db.get(Sitting, term.sitting_id), "解除表决器绑定", "releasing a tablet")
    member = db.get(Member, term.bound_member_id)
    term.bound_member_id = None
    db.flush()
    audit.append(db, AuditKind.TERMINAL_RELEASED, {"terminal_id": term.id, "name": term.name,
                                           "member_no": member.member_no if member else None},
                 sitting_id=term.sitting_id)


class TerminalIdentity(NamedTuple):
    """Who a terminal request comes from: the terminal's plain facts and its session's body."""

    id: int
    sitting_id: int
    body_id: int
    kind: str
    name: str
    seat: str | None
    revoked_at: object


# Built once: runs for every terminal request. Plain columns, no ORM objects.
_TERMINAL_BY_CREDENTIAL = (
    select(Terminal.id, Terminal.sitting_id, Sitting.body_id, Terminal.kind, Terminal.name, Terminal.seat,
           Terminal.revoked_at)
    .join(Sitting, Sitting.id == Terminal.sitting_id).where(Terminal.credential_hash == bindparam("h")))
_terminal_sql: dict = {}  # SQLite dialect -> the statement above as SQL text


def authenticate_terminal(db: Session, credential: str) -> TerminalIdentity:
    """The live (unrevoked) terminal holding `credential`, else Unauthorized.

    Revocation is read from the database on every request (no cache), so it takes effect at
    once in every worker. SQLite: one plain SELECT on a pooled connection outside any
    transaction (WAL: it sees the last commit and neither takes nor waits for the write
    lock); the request's session is not touched. Elsewhere: a read phase of the session."""
    h = credential_hash(credential)
    engine = db.get_bind()
    if engine.dialect.name == "sqlite":
        sql = _terminal_sql.get(engine.dialect)
        if sql is None:
            sql = _terminal_sql[engine.dialect] = str(_TERMINAL_BY_CREDENTIAL.compile(dialect=engine.dialect))
        raw = engine.raw_connection()
        try:
            found = raw.driver_connection.execute(sql, (h,)).fetchone()
        finally:
            raw.close()
    else:
        with read_phase(db):
            found = db.execute(_TERMINAL_BY_CREDENTIAL, {"h": h}).first()
    if found is None:
        raise Unauthorized("unknown terminal credential")
    term = TerminalIdentity(*found)
    if term.revoked_at is not None:
        raise Unauthorized(f"terminal {term.name} was revoked")
    return term


def revoke_terminal(db: Session, term: Terminal) -> None:
    if term.revoked_at is None:
        term.revoked_at = utcnow()
        db.flush()
        audit.append(db, AuditKind.TERMINAL_REVOKED, {"terminal_id": term.id, "name": term.name},
                     sitting_id=term.sitting_id)


def check_in_at_terminal(db: Session, sitting: Sitting, terminal_id: int, entered: str) -> Member:
    """A seat tablet checks a member in (签到). The seat decides who may check in there:

    - a tablet at a seat the roster assigns checks in only the member(s) of that seat;
    - a spare tablet (no seat, or a seat no member has) checks in the member whose card or
      number is entered first, and stays bound to them until the secretariat releases it
      (release_terminal); it never takes a member whose own seat has a live tablet.
    A member on leave (请假) is changed only by the secretariat, never from a tablet."""
    require_open(db, sitting, "签到", "check-in", take_turns=True)  # first: set_attendance takes it again
    # FOR NO KEY UPDATE: an opening inserting this terminal's issuance (its foreign key takes
    # FOR KEY SHARE) does not wait for this check-in, which waits for the chain's head it holds.
    term = db.get(Terminal, terminal_id, with_for_update={"key_share": True})
    if term is None or term.kind != TerminalKind.SEAT:
        raise Forbidden("only a seat tablet checks members in", where="terminal",
                        zh="只有表决器可以签到")
    member = find_member(db, sitting.body_id, entered)
    assigned = list(db.scalars(select(Member).where(Member.body_id == sitting.body_id, Member.seat == term.seat,
                                                    Member.in_office.is_(True)))) if term.seat else []
    if assigned:
        if member.id not in {m.id for m in assigned}:
            # Neither whose number it is nor who sits here: a tablet must not map numbers to names.
            raise Forbidden(f"number {member.member_no} does not belong to seat {term.seat}; "
                            f"check in at your own seat", where="member",
                            zh=f"代表证号 {member.member_no} 不属于本座位（{term.seat}），"
                               f"请核对号码，或在本人座位签到、联系工作人员")
    else:
        if term.bound_member_id is not None and term.bound_member_id != member.id:
            raise Conflict("this tablet is bound to another member until the secretariat releases it",
                           where="member", zh="本表决器已绑定另一位代表，须由会务工作人员解除绑定后才能换人签到")
        if member.seat:
            own = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.kind == TerminalKind.SEAT,
                                                   Terminal.seat == member.seat, Terminal.revoked_at.is_(None),
                                                   Terminal.id != term.id))
            if own is not None:
                raise Forbidden(f"number {member.member_no} has a tablet at its own seat; check in there",
                                where="member", zh=f"代表证号 {member.member_no} 的座位有表决器，请在本人座位签到")
        elsewhere = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id,
                                                     Terminal.bound_member_id == member.id,
                                                     Terminal.revoked_at.is_(None), Terminal.id != term.id))
        if elsewhere is not None:
            raise Conflict(f"number {member.member_no} is already checked in at another tablet",
                           where="member", zh=f"代表证号 {member.member_no} 已在另一台表决器签到")
    att = db.scalar(select(Attendance).where(Attendance.sitting_id == sitting.id,
                                             Attendance.member_id == member.id))
    if att is not None and att.status == Presence.LEAVE:
        raise Conflict(f"number {member.member_no} is on leave: only the secretariat changes that",
                       where="member", zh=f"代表证号 {member.member_no} 已请假，须由会务工作人员办理销假后签到")
    if not assigned and term.bound_member_id != member.id:
        term.bound_member_id = member.id
        db.flush()
        audit.append(db, AuditKind.TERMINAL_BOUND, {"terminal_id": term.id, "name": term.name,
                                            "member_no": member.member_no}, sitting_id=sitting.id)
    set_attendance(db, sitting, member, Presence.PRESENT, "terminal", terminal_id=term.id)
    return member


def register_every_seat(db: Session, sitting: Sitting) -> list:
    """A seat tablet for every roster seat (else 代表证号) of a member in office that has none:
    register_terminal's (terminal, credential) for each."""
    taken = set(db.scalars(select(Terminal.seat).where(Terminal.sitting_id == sitting.id,
                                                       Terminal.revoked_at.is_(None))))
    made = []
    for m in db.scalars(select(Member).where(Member.body_id == sitting.body_id,
                                             Member.in_office.is_(True)).order_by(Member.seat)):
        seat = m.seat or m.member_no
        if seat not in taken:
            made.append(register_terminal(db, sitting, f"席位 {seat}", TerminalKind.SEAT, seat))
            taken.add(seat)
    return made


def terminal_list(db: Session, sitting: Sitting) -> tuple[list[Terminal], dict[int, str]]:
    """A sitting's terminals by id, and who checked in at each tablet (terminal id -> name):
    attendance names the terminal used."""
    terminals = list(db.scalars(select(Terminal).where(Terminal.sitting_id == sitting.id).order_by(Terminal.id)))
    checked_in = dict(db.execute(select(Attendance.terminal_id, Member.name).join(Member, Member.id == Attendance.member_id)
                                 .where(Attendance.sitting_id == sitting.id, Attendance.status == Presence.PRESENT,
                                        Attendance.terminal_id.is_not(None))).all())
    return terminals, checked_in
