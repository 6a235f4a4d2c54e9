"""The adjudication queue's one question for the rest of the domain: does any scanned page
still wait for the tellers (or the 总监票人)? A paper vote is neither closed nor tallied while
one does, since a decided ballot still goes through intake, which takes ballots only while the
vote is open. A page whose QR code could not be read names no round: it holds every paper
vote of its session."""
from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ballot_service.errors import Conflict
from ballot_service.models import Item, Round, ScannedPage
from ballot_service.vocab import Channel

PENDING = ("queued", "waiting")   # queued: for two tellers; waiting: for the 总监票人


def pending_pages(db: Session, item: Item, rnd: Round) -> int:
    return db.scalar(select(func.count()).select_from(ScannedPage).where(
        ScannedPage.status.in_(PENDING), ScannedPage.sitting_id == item.sitting_id,
        or_(ScannedPage.round_id == rnd.id, ScannedPage.round_id.is_(None)))) or 0


def require_none_pending(db: Session, item: Item, rnd: Round, action: str, action_zh: str) -> None:
    if item.channel != Channel.PAPER:
        return
    n = pending_pages(db, item, rnd)
    if n:
        raise Conflict(f"{n} scanned ballot(s) of {item.key} still wait for adjudication: decide them before "
                       f"you {action}", where="item",
                       zh=f"{item.key} 还有{n}张扫描选票待裁定：裁定后才能{action_zh}")
