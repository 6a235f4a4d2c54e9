"""Who has not voted yet in a round: how many for a secret vote (the service cannot know who,
and must not), the deputies' names for a named (记名) vote, whose casts carry the member."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import cast_staging
from ballot_service.models import Cast, Issuance, Item, Member, Round
from ballot_service.vocab import Channel


def not_voted(db: Session, item: Item, rnd: Round) -> dict:
    """{"count": present at opening − ballots returned, "names": [...] for a named tablet vote,
    else None}. Nothing before the round opens."""
    if rnd.present is None:
        return {"count": None, "names": None}
    returned = cast_staging.returned(db, rnd.id)
    names = None
    if not item.secret and item.channel == Channel.TERMINAL:
        voted = select(Cast.member_id).where(Cast.round_id == rnd.id, Cast.member_id.is_not(None))
        names = list(db.scalars(
            select(Member.name).join(Issuance, Issuance.member_id == Member.id)
            .where(Issuance.round_id == rnd.id, Member.id.not_in(voted)).order_by(Member.member_no)))
    return {"count": max(rnd.present - returned, 0), "names": names}
