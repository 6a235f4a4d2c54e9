"""A 另行选举 saved for a later sitting (issue 20 item 3, "或者在下次会议另行选举"): one console
step creates, in a later open sitting of the same body, a draft election item for the seats an
election left unfilled, linked to it (Item.another_of). Its round 1 is a 另行选举 (decided by
more than half of all deputies, RULES.md §5.4) on the candidates election_items.another_slate
checks against the 差额. Both sittings' audit chains name the link; both records say it."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ballot_service.domain import audit, election_items
from ballot_service.domain.item_checks import item_event
from ballot_service.domain.sittings import lock_for_new_item
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.models import Candidate, Item, Round, Sitting
from ballot_service.numbers import is_int
from ballot_service.vocab import AuditKind, ElectionStage, ItemKind, RoundStatus, SittingStatus

KEY_SUFFIX = "-另行选举"


def target_sitting(db: Session, item: Item, sitting_id) -> Sitting:
    """The later sitting a 另行选举 is saved for: of the same body, another one, not closed."""
    if not is_int(sitting_id) or sitting_id < 1:
        raise InvalidInput("sitting_id must be a session id", where="sitting_id", zh="会次编号须为正整数")
    sitting = db.get(Sitting, sitting_id)
    if sitting is None or sitting.body_id != item.sitting.body_id:
        raise NotFound(f"the body of {item.key} has no session {sitting_id}", where="sitting_id",
                       zh=f"选举 {item.key} 所属的人大没有编号为 {sitting_id} 的会次，另行选举只能安排在本级人大的会次")
    if sitting.id == item.sitting_id:
        raise InvalidInput("this is the election's own session: start the 另行选举 without sitting_id",
                           where="sitting_id", zh="这是本次会议：在本次会议另行选举请不选择会次")
    if sitting.status != SittingStatus.OPEN:
        raise Conflict(f"session {sitting.name} is closed", where="sitting_id",
                       zh=f"{sitting.name}已闭会，不能安排另行选举")
    return sitting


def later_sittings(db: Session, item: Item) -> list[Sitting]:
    """The sittings a 另行选举 of `item` can be saved for: the body's other ones not yet closed."""
    return list(db.scalars(select(Sitting).where(Sitting.body_id == item.sitting.body_id, Sitting.id != item.sitting_id,
                                                 Sitting.status == SittingStatus.OPEN).order_by(Sitting.id)))


def save_another(db: Session, item: Item, sitting_id, candidates: list | None) -> Item:
    """另行选举 saved for `sitting_id`: a new draft election item there for the unfilled seats."""
    sitting = target_sitting(db, item, sitting_id)
    seats, keys, new, slate = election_items.another_slate(db, item, candidates)
    lock_for_new_item(db, sitting, None, "安排另行选举", "saving a 另行选举 for it")  # in no ballot set
    titles = {c.key: c.title for c in item.candidates} | dict(new)
    key = item.key[:64 - len(KEY_SUFFIX)] + KEY_SUFFIX
    if db.scalar(select(Item.id).where(Item.sitting_id == sitting.id, Item.key == key)) is not None:
        raise Conflict(f"session {sitting.name} already has an item {key}", where="sitting_id",
                       zh=f"{sitting.name}已有编号为 {key} 的表决事项")
    position = (db.scalar(select(func.max(Item.position)).where(Item.sitting_id == sitting.id)) or 0) + 1
    later = Item(sitting_id=sitting.id, key=key, kind=ItemKind.ELECTION, title=item.title, places=seats,
                 base=item.base, majority=item.majority, secret=True, channel=item.channel, position=position,
                 time_limit_s=item.time_limit_s, mark_rule=item.mark_rule, office=item.office,
                 by_election=item.by_election, another_of=item.id)
    later.candidates = [Candidate(key=k, title=titles[k], position=i) for i, k in enumerate(keys)]
    later.rounds = [Round(number=1, places=seats, candidate_keys=keys, status=RoundStatus.PENDING,
                          stage=ElectionStage.ANOTHER)]
    try:
        with db.begin_nested():  # items.another_of is unique: a concurrent save for this election lost
            db.add(later)
            db.flush()
    except IntegrityError:
        raise Conflict(f"a 另行选举 of {item.key} was saved meanwhile", where="item",
                       zh=f"选举 {item.key} 的另行选举已由他人同时安排，不能再次发起") from None
    link = {"another_of": {"session_id": item.sitting_id, "item_id": item.id, "key": item.key},
            "article": slate.article}
    audit.append(db, AuditKind.ITEM_CREATED, {**item_event(later, {}, ElectionStage.ANOTHER), **link},
                 sitting_id=sitting.id)
    audit.append(db, AuditKind.ELECTION_ANOTHER_CREATED,
                 {"item_id": item.id, "places": seats, "candidates": keys, "article": slate.article,
                  "saved_for": {"session_id": sitting.id, "item_id": later.id, "key": later.key}},
                 sitting_id=item.sitting_id)
    return later


def another_links(db: Session, item: Item) -> dict:
    """What a record says of a saved 另行选举: the later item this election's unfilled seats
    went to ({"another_next": …}), or the election this item fills ({"another_of": …})."""
    out = {}
    later = db.scalar(select(Item).where(Item.another_of == item.id))
    if later is not None:
        out["another_next"] = _named(later)
    if item.another_of is not None:
        out["another_of"] = _named(db.get(Item, item.another_of))
    return out


def _named(item: Item) -> dict:
    return {"item_id": item.id, "key": item.key, "title": item.title,
            "session": {"id": item.sitting_id, "name": item.sitting.name}}
