"""The fixed facts of a round a ballot names (candidates, channel, secrecy: they never
change once a round exists), cached per engine so intake reads them once, and the queries
intake uses to read a round's state under the write lock."""
from __future__ import annotations

import threading
import weakref
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from ballot_service.db import db_now
from ballot_service.models import Item, Round


class RoundFacts(NamedTuple):
    """What never changes once a round exists (rounds are never edited or deleted)."""

    id: int
    item_id: int
    number: int
    candidate_keys: tuple
    channel: str
    secret: bool
    options: tuple | None = None  # an evaluation's option keys (a ballot's marks are these)
    stage: str | None = None  # elections: vocab.ElectionStage (write-ins in first and another rounds)


# Per engine (tests build an engine per database): (session, item, round number) -> facts.
_facts: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()
_facts_lock = threading.Lock()

# `now`: the database's clock, which a round's time limit (closes_at) is set from and compared
# with, so app nodes with clocks apart agree on when a vote's time is up.
ROUND_OF_BALLOT = (
    select(Round.id, Round.item_id, Round.number, Round.candidate_keys, Item.channel, Item.secret,
           Round.status, Round.closes_at, db_now().label("now"), Item.kind, Item.options,
           Round.stage)
    .join(Item, Item.id == Round.item_id)
    .where(Item.sitting_id == bindparam("sitting_id"), Item.id == bindparam("item_id"),
           Round.number == bindparam("round_no")))
ROUND_STATE = select(Round.status, Round.closes_at, db_now().label("now")).where(Round.id == bindparam("round_id"))
ROUND_OF_BALLOT_SHARED = ROUND_OF_BALLOT.with_for_update(read=True, of=Round)
ROUND_STATE_SHARED = ROUND_STATE.with_for_update(read=True)


def known(engine: Engine, key: tuple) -> RoundFacts | None:
    with _facts_lock:
        return _facts.get(engine, {}).get(key)


def remember(engine: Engine, key: tuple, facts: RoundFacts) -> None:
    with _facts_lock:
        _facts.setdefault(engine, {})[key] = facts
