"""Refused submissions at cast intake (intake.py decides, under the write lock): where each is
counted and its audit event.

Where a refusal is counted (the Refusal rows of one round; the record and the audit
bundle's counts.json report them per round, and the cast_refused event names the same
round in `round_id`):

- a ballot that names an opened round of this session is counted on that round: forged,
  wrong_item, unknown/spare (paper serial), reused, late and wrong_round alike;
- `late`: the round it names is still its item's current round (no runoff replaced it)
  and that round is closed or past its time limit: a straggler of that very vote;
- `wrong_round`: the round it names was superseded by a later round of its item (a
  runoff replaced it), whether or not some vote is open now. Counted on the round the
  ballot names, i.e. the earlier round, after its close; the round it was presented
  during is not told apart (a runoff's own record therefore does not include it);
- `unknown` (the ballot names another session, or an item or round this session does not
  have, so it names no round of ours) and a ballot of a round not opened yet (a paper
  ballot returned before the vote opens, refused as `late` with its own message): counted
  on the session's current vote, the round of this session opened most recently (the open
  one while a vote is open). If the session has not opened any vote yet there is nothing
  to count it on: it is only in the audit log (round_id null);
- `malformed` (not a ballot at all: bad text, base64 or JSON) is only audited:
  it is not a submission of a ballot (RULES §4), often a bad scan, and counts nowhere.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.domain.round_facts import RoundFacts
from ballot_service.domain.voting import count_refusal
from ballot_service.formats import ballots
from ballot_service.models import Item, Round, Sitting
from ballot_service.vocab import AuditKind, RoundStatus

SITTING_VOTE = object()  # count a refusal on the session's current vote (module docstring)


def _sitting_vote(db: Session, sitting: Sitting) -> int | None:
    """The session's current vote: the round opened most recently (the open one while a vote
    is open, since a session has at most one open vote)."""
    return db.scalar(select(Round.id).join(Item, Item.id == Round.item_id)
                     .where(Item.sitting_id == sitting.id, Round.opened_at.is_not(None))
                     .order_by(Round.opened_at.desc(), Round.id.desc()).limit(1))


def refusal(db: Session, sitting, count_on, reason: str, message: str,
            events: list) -> ballots.BallotRefused:
    """Count a refusal (under the write lock) and queue its audit event; return the error to
    answer with. `count_on`: a round id, SITTING_VOTE, or None (counted nowhere, only
    audited)."""
    round_id = _sitting_vote(db, sitting) if count_on is SITTING_VOTE else count_on
    if round_id is not None:
        count_refusal(db, round_id, reason)
    # No terminal, seat, member or serial in a refusal event: a serial's place in the chain,
    # between the batches' counts, would order that ballot's arrival. On the ballot's body's
    # chain; a ballot that names no session of ours (malformed) on the server chain.
    chain = sitting.body_id if sitting is not None else audit.SERVER_CHAIN
    events.append((chain, AuditKind.CAST_REFUSED, {"round_id": round_id, "reason": reason}))
    err = ballots.BallotRefused(reason, message)
    err.commit_audit = True
    return err


def open_now(status: str, closes_at, now) -> bool:
    """`now`: the database's clock (round_facts), which the time limit was set from."""
    return status == RoundStatus.OPEN and (closes_at is None or now < closes_at)


def not_open(db: Session, facts: RoundFacts, status: str) -> tuple:
    """A genuine ballot of a round that is not open now: (reason, message, where it is counted).
    `late` if its round is still its item's current round, `wrong_round` if a later round (a
    runoff) replaced it."""
    if status == RoundStatus.PENDING:  # not opened yet: no Refusal rows on it
        return "late", "表决尚未开始 the vote has not opened yet; this ballot was not counted", SITTING_VOTE
    latest = db.scalar(select(Round.number).where(Round.item_id == facts.item_id)
                       .order_by(Round.number.desc()).limit(1))
    if latest is not None and latest > facts.number:
        message = (f"这是第{facts.number}轮的选票，该轮表决已被第{latest}轮取代 this ballot is for round "
                   f"{facts.number}, which round {latest} has replaced; it was not counted")
        return "wrong_round", message, facts.id
    return "late", "表决已结束 the vote is closed; this ballot was not counted", facts.id
