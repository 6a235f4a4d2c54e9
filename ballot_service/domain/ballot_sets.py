"""Ballot sets (选举票组): several elections printed on one ballot paper (主任, 副主任, 委员)
open, close and are tallied together. Items of a sitting that share `Item.ballot_set` form
one set; opening, closing or tallying any of them does it for every member whose round is at
that step (a re-vote after the set's tally is a set of those still to decide). Records stay
one per item. The database allows one open item or one open set per sitting (OpenBallot).

On tablets the set is one ballot screen (the seat state's vote.ballot_set, `open_members`):
one blind signature per round fetched in one request, one unlinkable cast per round. On paper
it is one sheet (set_sheets): one QR with each election's own signed ballot."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ballot_service.config import Settings
from ballot_service.db import database_now
from ballot_service.domain import further_ballots, tally, voting
from ballot_service.domain.sittings import get_item
from ballot_service.errors import NotFound
from ballot_service.models import Item, Round
from ballot_service.vocab import ItemStatus, RoundStatus


def item_for_change(db: Session, item_id: int, sitting_wide: bool = False, with_rounds: bool = True) -> Item:
    """The item, for a secretariat step that reads its state and then writes: open, close,
    tally, record, publish, 延长时间, 补发, 另行选举, edit, delete, move, print. PostgreSQL: it
    and the other items of its ballot set (`sitting_wide`: every item of the sitting, as
    上移/下移 writes a neighbour's place and an edit may move it into another set) are locked
    in id order and read again with their candidates and rounds, then their rounds are locked
    (voting.lock_rounds). So of two steps
    at once (a double click, two operators, two nodes) the second waits for the first to commit,
    then sees what it did and is refused with the reason instead of doing it twice or on a
    stale round; an item deleted meanwhile is not found. (SQLite: every transaction holds the
    write lock from its BEGIN.) Not `with_rounds`: the items only, for a step that holds them
    for seconds (printing through the API signs up to 20,000 ballots) while casts and the
    tellers' decisions go on, as those lock rounds but never items."""
    item = get_item(db, item_id)
    if db.get_bind().dialect.name == "sqlite":
        return item
    ids = {m.id for m in members(db, item)}
    while True:
        # An election that joined the set while this waited (check_ballot_set) is locked too:
        # from a savepoint rolled back (which lets go of this pass's locks), all in id order.
        attempt = db.begin_nested()
        which = Item.sitting_id == item.sitting_id if sitting_wide else Item.id.in_(ids)
        locked = db.scalars(select(Item).where(which).order_by(Item.id)
                            .with_for_update().options(selectinload(Item.rounds), selectinload(Item.candidates))
                            .execution_options(populate_existing=True)).all()
        grown = set() if sitting_wide or item not in locked else {m.id for m in members(db, item)} - ids
        if not grown:
            attempt.commit()
            break
        attempt.rollback()
        ids |= grown
    if item not in locked:
        raise NotFound(f"no vote item with id {item_id}: it was deleted meanwhile", where="item_id",
                       zh=f"编号为 {item_id} 的表决事项已被删除")
    # Their rounds too, all at once, before the step appends to the audit chain: a set step
    # that locked each round as it came to it, holding the chain's head, waited for a cast batch
    # (holding that round FOR SHARE) that waited for the head. Sitting-wide: only the item's own
    # set's (the others' items are held; their rounds, an open vote's among them, go on taking casts).
    if with_rounds:
        own = {m.id for m in members(db, item)} if sitting_wide else ids
        voting.lock_rounds(db, [r for m in locked if m.id in own for r in m.rounds])
    return item


def members(db: Session, item: Item) -> list[Item]:
    """The items of `item`'s ballot set in the order of business, or [item] alone."""
    if not item.ballot_set:
        return [item]
    return list(db.scalars(select(Item).where(Item.sitting_id == item.sitting_id, Item.ballot_set == item.ballot_set)
                           .order_by(Item.position)))


def open_members(db: Session, item: Item) -> list[Item]:
    """The open elections of `item`'s ballot set (a re-vote opens only the undecided), in the
    order of business: one tablet ballot and one screen for them all; [item] outside a set."""
    return [m for m in members(db, item) if m.status == ItemStatus.OPEN] or [item]


def voted_with(db: Session, item: Item) -> list[Item]:
    """The elections of `item`'s set on the ballot last opened with it (their rounds share one
    opening time, open_set), in the order of business: what the screen and the console show
    together while that ballot is voted, closed and counted; [item] outside a set."""
    opened = voting.current_round(item).opened_at
    return [m for m in members(db, item) if voting.current_round(m).opened_at == opened] or [item]


def ballot_of(item: Item) -> str:
    """What is open while `item` is (OpenBallot.ballot): its set, or the item alone."""
    return f"set:{item.ballot_set}" if item.ballot_set else f"item:{item.id}"


def _at(db: Session, item: Item, status: str) -> list[Item]:
    """`item`, then the other items of its set whose newest round has `status` (`item` alone when
    its own round is not at that step: its single-item step refuses with the reason)."""
    found = [m for m in members(db, item) if voting.current_round(m).status == status]
    if item not in found:
        return [item]  # the single-item step refuses with its own reason
    return [item] + [m for m in found if m is not item]


def open_set(db: Session, settings: Settings, item: Item, override_reason: str | None = None) -> list[Round]:
    """Open the vote on `item` and, in a ballot set, on every member with a round not yet started."""
    opening = _at(db, item, "pending")
    voting.lock_rounds(db, [voting.current_round(m) for m in opening])  # a racing opening: refused
    # a set's items share one opening time, so their time limits end together
    ballot, now = ballot_of(item), database_now(db) if item.ballot_set else None
    return [voting.open_round(db, settings, m, override_reason, ballot=ballot, now=now) for m in opening]


def close_set(db: Session, settings: Settings, item: Item) -> list[Round]:
    """Close the vote on `item` and every open member of its ballot set. Their rounds are locked
    first in id order, the order a blind signature's count holds them in (issuance_counts), so
    a count of the set's ballots and its close never wait on each other (PostgreSQL)."""
    closing = _at(db, item, RoundStatus.OPEN)
    voting.lock_rounds(db, [voting.current_round(m) for m in closing])
    return [voting.close_round(db, settings, m) for m in closing]


def tally_set(db: Session, item: Item) -> dict:
    """Tally `item`'s closed round and every closed member's: `item`'s result, with the set's
    other results under "ballot_set" ({key: result}) when it is in one."""
    done = {m.key: tally.tally_item(db, m) for m in _at(db, item, RoundStatus.CLOSED)}
    result = done.pop(item.key)
    return {**result, "ballot_set": done} if item.ballot_set else result


def extend_set(db: Session, item: Item, minutes) -> list[Round]:
    """延长表决时间 for `item` and every open member of its ballot set: they close together."""
    return [voting.extend_round(db, m, minutes) for m in _at(db, item, RoundStatus.OPEN)]


def replace_set(db: Session, settings: Settings, item: Item, member_no: str, reason: str,
                paper: bool = False) -> dict:
    """补发选票 (or, `paper`, a hybrid vote's paper ballot) for `item` and every open member of
    its set: the tablet takes the set's ballots together (all or none), so a replacement, or
    paper instead of the tablet, is of them all. With `paper`, the answer's `ballots` lists
    each election's signed paper ballot as (item id, QR text), to be printed at once."""
    if not paper:
        return [further_ballots.allow_replacement(db, m, member_no, reason) for m in open_members(db, item)][0]
    done = [(m.id, further_ballots.allow_paper(db, settings, m, member_no, reason)) for m in open_members(db, item)]
    return {**done[0][1], "ballots": [(item_id, result["ballot"]) for item_id, result in done]}


def quorum_failed_set(db: Session, item: Item) -> dict:
    """Record lack of quorum for `item` and every member of its set not yet opened: the set
    could not be voted (its result, the others' under "ballot_set" as tally_set gives them)."""
    done = {m.key: voting.record_quorum_not_met(db, m) for m in _at(db, item, "pending")}
    result = done.pop(item.key)
    return {**result, "ballot_set": done} if item.ballot_set else result
