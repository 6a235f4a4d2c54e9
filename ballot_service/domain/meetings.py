"""Plenary meetings (全体会议) within a session (会次): the session's roster is shared, but each
meeting has its own check-in (签到) and so its own quorum. Starting the next meeting keeps the
check-in of the one ending (Meeting, MeetingAttendance) and empties Attendance, so every
deputy checks in again; everything that reads attendance reads the meeting under way."""
from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.domain.sittings import attendance_state, open_item_locked, require_open
from ballot_service.errors import Conflict
from ballot_service.models import Attendance, Meeting, MeetingAttendance, Sitting
from ballot_service.vocab import AuditKind

_DIGITS = "零一二三四五六七八九"


def meeting_name(number: int) -> str:
    """1 → 第一次全体会议, 12 → 第十二次全体会议 (up to 99)."""
    tens, ones = divmod(number, 10)
    if number < 10:
        word = _DIGITS[number]
    else:
        word = ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")
    return f"第{word}次全体会议"


def current_number(db: Session, sitting: Sitting) -> int:
    """The number of the meeting under way: one more than the meetings that have ended."""
    return (db.scalar(select(func.max(Meeting.number)).where(Meeting.sitting_id == sitting.id)) or 0) + 1


def ended_meetings(db: Session, sitting: Sitting) -> list[Meeting]:
    return list(db.scalars(select(Meeting).where(Meeting.sitting_id == sitting.id).order_by(Meeting.number)))


def start_next_meeting(db: Session, sitting: Sitting) -> int:
    """End the meeting under way (its check-in kept) and start the next: nobody is checked in
    until they check in again. Refused while a vote is open. Returns the new meeting's number."""
    voting_now = open_item_locked(db, sitting)  # the strong lock first: FOR SHARE, then a stronger one, deadlocks a double click
    require_open(db, sitting, "开始下一次全体会议", "starting the next plenary meeting")
    if voting_now is not None:
        raise Conflict(f"{voting_now.title} is being voted: close the vote before the next meeting starts",
                       where="meeting", zh=f"《{voting_now.title}》正在表决：请先结束表决，再开始下一次全体会议")
    number = current_number(db, sitting)
    state = attendance_state(db, sitting)
    ended = ended_meetings(db, sitting)
    started = ended[-1].ended_at if ended else sitting.created_at
    meeting = Meeting(sitting_id=sitting.id, number=number, started_at=started, members=state.members,
                      present=state.present, leave=state.leave)
    db.add(meeting)
    db.flush()
    rows = db.execute(select(Attendance.member_id, Attendance.status, Attendance.method)
                      .where(Attendance.sitting_id == sitting.id)).all()
    db.add_all(MeetingAttendance(meeting_id=meeting.id, member_id=m, status=status, method=how)
               for m, status, how in rows)
    db.execute(delete(Attendance).where(Attendance.sitting_id == sitting.id))
    db.flush()
    audit.append(db, AuditKind.MEETING_STARTED, {
        "session_id": sitting.id, "number": number + 1, "name": meeting_name(number + 1),
        "ended": {"number": number, "members": state.members, "present": state.present, "leave": state.leave}},
        sitting_id=sitting.id)
    return number + 1


def attendance_by_member(db: Session, sitting: Sitting) -> dict[int, str]:
    """Member id -> Presence word, for the members with an attendance row in the meeting under way."""
    return dict(db.execute(select(Attendance.member_id, Attendance.status)
                           .where(Attendance.sitting_id == sitting.id)).all())
