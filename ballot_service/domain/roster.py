"""Storing a roster: members added, updated or leaving office, by 代表证号 (the rows come
checked from formats.roster); and the members as the console lists them."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.formats.roster import RosterRow
from ballot_service.models import Body, Member
from ballot_service.vocab import AuditKind


def import_roster(db: Session, body: Body, rows: list[RosterRow], source: str) -> dict:
    """Add new members and update existing ones (by 代表证号); members not in the file
    leave office. Returns counts. Only flushes: the caller commits."""
    existing = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    added = updated = 0
    for r in rows:
        m = existing.pop(r.member_no, None)
        if m is None:
            db.add(Member(body_id=body.id, member_no=r.member_no, name=r.name, group=r.group,
                          seat=r.seat, card_code=r.card_code, in_office=True))
            added += 1
        else:
            m.name, m.group, m.seat, m.card_code, m.in_office = r.name, r.group, r.seat, r.card_code, True
            updated += 1
    left = 0
    for m in existing.values():
        if m.in_office:
            m.in_office = False
            left += 1
    db.flush()
    summary = {"added": added, "updated": updated, "left_office": left, "in_office": len(rows)}
    audit.append(db, AuditKind.ROSTER_IMPORTED, {"body_id": body.id, "source": source, **summary}, body_id=body.id)
    return summary


def members_of(db: Session, body: Body, *, in_office_only: bool = False, by_group: bool = False) -> list[Member]:
    """A body's members by 代表证号 (or by group first), those in office only if asked."""
    q = select(Member).where(Member.body_id == body.id)
    if in_office_only:
        q = q.where(Member.in_office.is_(True))
    order = (Member.group, Member.member_no) if by_group else (Member.member_no,)
    return list(db.scalars(q.order_by(*order)))


def roster_changes(db: Session, body: Body, rows: list[RosterRow]) -> dict:
    """What importing `rows` would do, before it is done: added, updated and leaving office."""
    current = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    in_file = {r.member_no for r in rows}
    return {"added": [r for r in rows if r.member_no not in current],
            "updated": [r for r in rows if r.member_no in current],
            "leaving": [m for no, m in current.items() if no not in in_file and m.in_office]}
