"""A hybrid round's paper ballot at intake (formats/ballots.py, BR1): signed with the round's
RSA key when the secretariat allowed it (further_ballots.allow_paper), so it is checked and stored as
a tablet's ballot is and nothing in its cast row says it came on paper (README, "Hybrid votes")."""
from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from ballot_service.crypto import blind_ballots
from ballot_service.domain import intake_refusals as refusals
from ballot_service.domain import issuance, round_facts
from ballot_service.errors import InvalidInput


def prepare(db: Session, settings, job, token: dict) -> None:
    """A hybrid round's paper ballot (formats/ballots.py, BR1): checked with the round's key and
    stored as a tablet's ballot is (the digest over the same ballot object, a retry hash of
    the same form, random, that no resend can match), so the cast row and the bundle's line
    do not say it came on paper; `Round.paper_returned` counts it instead (intake._decide).
    A tablet's ballot written out in this form is refused: its serial has no paper mark
    (blind_ballots.paper_serial), and counting it as paper would shift the split by channel."""
    ballot = blind_ballots.BlindBallot(token["round_ref"], token["payload"]["serial"], token["prefix"],
                                       token["sig"])
    job.token_text, job.msg_prefix = ballot.as_object(), ballot.prefix
    job.retry_hash = secrets.token_hex(32)
    rk_id = blind_ballots.round_id_of(ballot.round_ref)
    rk = round_facts.round_key(db, rk_id)
    payload = token["payload"]
    if rk is None or rk.sitting_id != job.sitting.id:
        job.refusal = (refusals.SITTING_VOTE, "unknown", "this ballot is not for a vote of this session")
        return
    job.key = (rk.sitting_id, rk.item_id, rk.number)
    job.signature_refusal = round_facts.signature_refusal(rk, ballot)
    if job.signature_refusal is not None:
        return
    if (payload["body"], payload["item"], payload["round"]) != (rk.body_id, rk.item_id, rk.number):
        job.signature_refusal = ("wrong_item", "the numbers printed in the ballot's code are not its round's")
    elif issuance.is_paper_serial(db, settings, rk_id, ballot.serial) is False:
        raise InvalidInput("this is a tablet's ballot, not a paper ballot: it is cast from its tablet",
                           where="ballot", zh="这是表决器选票，不是纸质选票：须从表决器提交，不能在计票处录入")
