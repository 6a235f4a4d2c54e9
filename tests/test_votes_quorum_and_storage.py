"""Opening a vote and what a cast stores (Flask test client): opening without quorum is refused
(409) and audited, the vote opens once enough members checked in; a named vote stores the member
with the cast, a secret one stores no member anywhere (casts or audit events)."""
from __future__ import annotations

import json

import pytest
from helpers_live import setup_sitting
from sqlalchemy import select
from terminal_support import all_casts, assert_error_shape, cast, events, get_ballot, query

from ballot_service.models import Item, Member, Round


def test_open_without_quorum_is_refused_and_audited(app, api):
    s = setup_sitting(api, members=6, present=3, open_vote=False)  # congress: needs 4 of 6
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409
    assert_error_shape(data, "QuorumNotMet")
    refused = events(app, "vote_open_refused")
    assert len(refused) == 1
    assert json.loads(refused[0].data)["reason"] == "quorum_not_met"
    (rnd,) = [r for (r,) in query(app, select(Round).where(Round.item_id == s.item_id))]
    assert rnd.status == "pending" and rnd.opened_at is None
    assert query(app, select(Item.status).where(Item.id == s.item_id))[0][0] == "draft"
    status, _ = api.call("GET", "/api/terminal/ballot", credential=s.creds[s.members[0]], expect=None)
    assert status == 404
    # With one more member checked in the vote opens.
    api.call("POST", "/api/terminal/checkin", {"member": s.members[3]}, credential=s.creds[s.members[3]])
    api.call("POST", f"/api/admin/items/{s.item_id}/open")


@pytest.mark.parametrize("secret", [True, False])
def test_named_vote_stores_member_secret_does_not(app, api, secret):
    s = setup_sitting(api, members=3, secret=secret)
    for no in s.members:
        assert cast(api, s.creds[no], get_ballot(api, s.creds[no]), {"motion": "for"})[0] == 201
    stored = {c.member_id for c in all_casts(app)}
    if secret:
        assert stored == {None}
        for e in events(app, "casts_accepted"):
            assert set(json.loads(e.data)) == {"round_id", "count"}
    else:
        ids = {i for (i,) in query(app, select(Member.id).where(Member.member_no.in_(s.members)))}
        assert stored == ids
