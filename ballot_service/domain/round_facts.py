"""The fixed facts of a round a ballot names (candidates, channel, secrecy: they never
change once a round exists), cached per engine so intake reads them once, and the queries
intake uses to read a round's state under the write lock; and a blind-signed round's announced
key, cached likewise (a tablet's ballot, or a hybrid round's paper ballot, is checked with it)."""
from __future__ import annotations

import threading
import weakref
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.db import db_now, read_phase
from ballot_service.models import Item, Round, Sitting
from ballot_service.rules.evaluation_tally import option_keys
from ballot_service.vocab import ItemKind, RoundStatus


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
_ROUND_LOCK = select(Round.id).where(Round.id == bindparam("round_id"))
_ROUND_SHARED, _ROUND_TO_WRITE = _ROUND_LOCK.with_for_update(read=True), _ROUND_LOCK.with_for_update(key_share=True)


def lock_in_id_order(conn, engine: Engine, wants: dict) -> None:
    """PostgreSQL: lock a batch's rounds in id order before it decides its casts (which read
    each round FOR SHARE again, as they come). `wants`: round key -> True where the batch may
    write the round's own row (a paper cast: 重复扫描's count, a hybrid vote's paper count),
    taken FOR NO KEY UPDATE; the others FOR SHARE.
    Why: a ballot set's close, tally or extension locks its rounds FOR UPDATE in id order
    (voting.lock_rounds); a batch taking them in the order its casts arrived could hold one
    the close waits for while waiting for one the close holds. And two stations' scans each
    holding a round FOR SHARE and then writing it each waited for the other's share. Both are
    deadlocks, which PostgreSQL breaks by failing one of the two."""
    if len(wants) < 2 and not any(wants.values()):
        return  # one round, shared: _round_of takes it
    ids = {}
    for key, write in wants.items():
        facts = known(engine, key)
        if facts is None:  # not yet learnt: its id, unlocked
            facts = conn.execute(ROUND_OF_BALLOT, {"sitting_id": key[0], "item_id": key[1], "round_no": key[2]}).first()
        if facts is not None:
            ids[facts.id] = write
    for round_id in sorted(ids):
        conn.execute(_ROUND_TO_WRITE if ids[round_id] else _ROUND_SHARED, {"round_id": round_id}).all()


def known(engine: Engine, key: tuple) -> RoundFacts | None:
    with _facts_lock:
        return _facts.get(engine, {}).get(key)


def remember(engine: Engine, key: tuple, facts: RoundFacts) -> None:
    with _facts_lock:
        _facts.setdefault(engine, {})[key] = facts


def facts_of(row) -> RoundFacts:
    """The facts in a ROUND_OF_BALLOT row."""
    return RoundFacts(row.id, row.item_id, row.number, tuple(row.candidate_keys), row.channel, row.secret,
                      option_keys(row.options) if row.kind == ItemKind.EVALUATION else None, row.stage)


def learn_on(engine: Engine, round_id: int) -> None:
    """learn() in a session of its own (the ASGI front's blind signatures, web/issue_on_loop.py)."""
    with Session(engine) as db:
        learn(db, round_id)


def learn(db: Session, round_id: int) -> None:
    """Cache an open round's announced key and facts before its first cast arrives: a process
    that blind-signed a round's ballots then takes its casts on the fast path from the first
    (web/cast_on_loop.py), instead of the opening wave's first casts queueing for Flask's
    threads (benchmarks/bench_casts.py: they were its p99)."""
    rk = round_key(db, round_id)
    if rk is None or rk.public_key is None:
        return
    key = (rk.sitting_id, rk.item_id, rk.number)
    if known(db.get_bind(), key) is not None:
        return
    with read_phase(db):
        row = db.execute(ROUND_OF_BALLOT, {"sitting_id": key[0], "item_id": key[1], "round_no": key[2]}).first()
    if row is not None and row.status != RoundStatus.PENDING:
        remember(db.get_bind(), key, facts_of(row))


class _RoundKey(NamedTuple):
    sitting_id: int
    body_id: int
    item_id: int
    number: int
    secret: bool
    channel: str
    public_key: object  # rsa.RSAPublicKey, or None: the round has no blind key (not a terminal round)


_keys: "weakref.WeakKeyDictionary[Engine, dict]" = weakref.WeakKeyDictionary()
_keys_lock = threading.Lock()


def known_round_key(engine: Engine, round_id: int) -> _RoundKey | None:
    """round_key's answer if this process has it already (no database read), else None."""
    with _keys_lock:
        return _keys.get(engine, {}).get(round_id)


def round_key(db: Session, round_id: int) -> _RoundKey | None:
    """The round's fixed facts and announced key (never change once set at opening)."""
    engine = db.get_bind()
    hit = known_round_key(engine, round_id)
    if hit is not None:
        return hit
    with read_phase(db):
        row = db.execute(select(Item.sitting_id, Sitting.body_id, Item.id, Round.number, Item.secret,
                                Item.channel, Round.blind_public_key)
                         .join(Item, Item.id == Round.item_id).join(Sitting, Sitting.id == Item.sitting_id)
                         .where(Round.id == round_id)).first()
    if row is None:
        return None
    if row.blind_public_key is None:  # not opened yet, or not a terminal round: do not cache
        return _RoundKey(row.sitting_id, row.body_id, row.id, row.number, row.secret, row.channel, None)
    found = _RoundKey(row.sitting_id, row.body_id, row.id, row.number, row.secret, row.channel,
                      blind_ballots.load_round_key(row.blind_public_key))
    with _keys_lock:
        _keys.setdefault(engine, {})[round_id] = found
    return found


def signature_refusal(rk: _RoundKey, ballot) -> tuple | None:
    """("forged", message) when `ballot` (a blind_ballots.BlindBallot: a tablet's, or a hybrid
    round's paper ballot) is not signed by its round's announced key; else None."""
    try:
        if rk.public_key is None:
            raise blind_rsa.InvalidSignature()
        blind_ballots.verify(rk.public_key, ballot)
    except blind_rsa.InvalidSignature:
        return "forged", "选票签名无效 the ballot's signature is not this round's"
    return None
