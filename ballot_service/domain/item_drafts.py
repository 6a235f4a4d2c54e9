"""Changing a vote item before it opens (事项未开始表决前): edit it, delete it, move it up or down
in the order of business. Refused once its vote has opened (or was recorded as without quorum)
and once paper ballots were printed for it: a printed ballot names the candidates it was
printed with. Each change is an audit event (item_edited carries the item as item_created
does, so the verifier knows the item as it was finally voted)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service.domain import audit, election_items, voting
from ballot_service.domain.item_checks import check_item, item_event
from ballot_service.domain.sittings import require_open
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.models import Candidate, Item, PaperBallot, Record, Refusal, Round
from ballot_service.vocab import (
    AuditKind,
    Base,
    Channel,
    ElectionStage,
    ItemKind,
    ItemStatus,
    Majority,
    MarkRule,
    RoundStatus,
)


def _require_draft(db: Session, item: Item, doing_zh: str, doing_en: str) -> Round:
    require_open(db, item.sitting, doing_zh, doing_en)
    rounds = list(item.rounds)
    voting.lock_rounds(db, rounds)  # an opening at the same moment: this waits for it, then refuses
    if item.status != ItemStatus.DRAFT or len(rounds) != 1 or rounds[0].status != RoundStatus.PENDING:
        raise Conflict(f"{item.title}: its vote has started, so it can no longer be {doing_en}",
                       where="item", zh=f"《{item.title}》已开始表决，不能再{doing_zh}")
    printed = db.scalar(select(func.count()).select_from(PaperBallot).where(PaperBallot.round_id == rounds[0].id))
    if printed:
        raise Conflict(f"{item.title}: {printed} paper ballots are printed with it as it is; it can no longer be "
                       f"{doing_en}", where="item",
                       zh=f"《{item.title}》已印制纸质选票 {printed} 张，不能再{doing_zh}")
    return rounds[0]


def edit_item(db: Session, item: Item, *, key: str, kind: str, title: str, candidates: list[dict] | None = None,
              places: int | None = None, base: str = Base.MEMBERS, majority: str = Majority.HALF,
              secret: bool = True, channel: str = Channel.TERMINAL, time_limit_s: int | None = None,
              mark_rule: str = MarkRule.ANY, options: list[dict] | None = None, grading: dict | None = None,
              office: str | None = None, by_election: bool = False, rule_given: bool = False,
              ballot_set: str | None = None) -> Item:
    """Replace everything about a draft item (as create_item checks it); its id stays. An
    election's 差额 is checked anew: its office, seats and nominees decide whether round 1 is
    the election or a 预选 (election_items.check_new_election)."""
    rnd = _require_draft(db, item, "修改", "edited")
    key, title, cleaned, places, keys, (options, grading, scale_rule) = check_item(
        db, item.sitting, key=key, kind=kind, title=title, candidates=candidates, places=places, base=base,
        majority=majority, secret=secret, channel=channel, time_limit_s=time_limit_s, mark_rule=mark_rule,
        options=options, grading=grading, item_id=item.id)
    stage, round_places = None, places
    if kind == ItemKind.ELECTION:
        stage, round_places = election_items.check_new_election(office, by_election, places, len(cleaned),
                                                                rule_given, secret)
        if item.another_of is not None and stage == ElectionStage.FIRST:  # saved from an earlier sitting
            stage = ElectionStage.ANOTHER
    else:
        office, by_election = None, False
    ballot_set = election_items.check_ballot_set(db, item.sitting_id, ballot_set, kind, channel, item_id=item.id)
    item.key, item.kind, item.title, item.places = key, kind, title, places
    item.base, item.majority, item.secret, item.channel, item.time_limit_s = base, majority, secret, channel, \
        time_limit_s
    item.mark_rule, item.options, item.grading = mark_rule, options, grading
    item.office, item.by_election, item.ballot_set = office, by_election, ballot_set
    item.candidates.clear()
    db.flush()  # the old candidates go before the new ones take their keys
    item.candidates.extend(Candidate(key=c["key"], title=c["title"], description=c.get("description"),
                                     office=c.get("office"), position=i) for i, c in enumerate(cleaned))
    rnd.places, rnd.candidate_keys, rnd.stage = round_places, keys, stage
    db.flush()
    audit.append(db, AuditKind.ITEM_EDITED, item_event(item, scale_rule, stage), sitting_id=item.sitting_id)
    return item


def delete_item(db: Session, item: Item) -> None:
    """Delete a draft item with its (never opened) round."""
    rnd = _require_draft(db, item, "删除", "deleted")
    if item.another_of is not None and db.scalar(select(Record.id).where(Record.item_id == item.another_of)):
        # the election's signed record says its unfilled seats are elected here
        raise Conflict(f"{item.title} is the 另行选举 the signed record of the election names; it cannot be deleted",
                       where="item", zh=f"《{item.title}》是已签发的选举结果记录所载明的另行选举，不能删除")
    data = {"session_id": item.sitting_id, "item_id": item.id, "key": item.key, "title": item.title}
    db.query(Refusal).filter(Refusal.round_id == rnd.id).delete()
    db.delete(rnd)
    db.delete(item)  # its candidates go with it (cascade)
    db.flush()
    audit.append(db, AuditKind.ITEM_DELETED, data, sitting_id=data["session_id"])


def move_item(db: Session, item: Item, direction: str) -> None:
    """Swap a draft item with its neighbour above ("up") or below ("down") in the sitting's order."""
    if direction not in ("up", "down"):
        raise InvalidInput("direction must be up or down", where="direction", zh="移动方向须为 up（上移）或 down（下移）")
    _require_draft(db, item, "调整顺序", "moved")
    order = Item.position.desc() if direction == "up" else Item.position
    near = Item.position < item.position if direction == "up" else Item.position > item.position
    other = db.scalar(select(Item).where(Item.sitting_id == item.sitting_id, near).order_by(order).limit(1))
    if other is None:
        return  # already first (last)
    item.position, other.position = other.position, item.position
    db.flush()
    audit.append(db, AuditKind.ITEM_MOVED, {"session_id": item.sitting_id, "item_id": item.id, "position": item.position,
                                    "swapped_with": other.id}, sitting_id=item.sitting_id)
