"""Cast intake through the terminal API (Flask test client): a receipt, the same receipt on a
retry, a reused ballot refused; forged and malformed ballot text refused and counted (or only
audited); a cast after the vote closed is late."""
from __future__ import annotations

import json
import re

from helpers_live import setup_session
from sqlalchemy import select
from terminal_support import (
    RE_RECEIPT,
    assert_error_shape,
    cast,
    events,
    get_ballot,
    n_casts,
    query,
    refusals,
    resign,
)

from ballot_service.formats import ballots
from ballot_service.models import Cast


def test_cast_retry_and_reuse(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, first = cast(api, cred, ballot, {"motion": "for"})
    assert status == 201
    assert first["repeated"] is False
    assert re.match(RE_RECEIPT, first["receipt"])
    assert first["serial"] == ballots.text_to_token(ballot)["payload"]["serial"]

    status, again = cast(api, cred, ballot, {"motion": "for"})
    assert status == 200
    assert again["receipt"] == first["receipt"] and again["repeated"] is True

    status, data = cast(api, cred, ballot, {"motion": "against"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "reused"
    assert n_casts(app) == 1
    assert refusals(app, s.item_id)["reused"] == 1
    assert [c.marks for (c,) in query(app, select(Cast))] == [{"motion": "for"}]


def test_forged_ballot_is_refused_and_counted(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, data = cast(api, cred, resign(ballot), {"motion": "for"})
    assert status == 403
    assert assert_error_shape(data, "BallotRefused")["reason"] == "forged"
    # A stranger's key for a made-up serial is forged too, never 'unknown'.
    status, data = cast(api, cred, resign(ballot, {"serial": "ab" * 16}), {"motion": "for"})
    assert status == 403 and data["errors"][0]["reason"] == "forged"
    assert n_casts(app) == 0
    assert refusals(app, s.item_id)["forged"] == 2
    assert len(events(app, "cast_refused")) == 2
    assert cast(api, cred, ballot, {"motion": "for"})[0] == 201


def test_garbage_ballot_text_is_malformed(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    for text in ("hello", "BS1.e30.AAAA", "BS1..", "BS2.a.b", "x" * 3000):
        status, data = cast(api, cred, text, {"motion": "for"})
        assert status == 400, (text, data)
        assert assert_error_shape(data, "BallotRefused")["reason"] == "malformed"
    assert n_casts(app) == 0


def test_cast_after_close_is_late(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    status, data = cast(api, cred, ballot, {"motion": "for"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "late"
    assert refusals(app, s.item_id)["late"] == 1
    assert n_casts(app) == 0
    assert [json.loads(e.data)["reason"] for e in events(app, "cast_refused")] == ["late"]
    status, data = api.call("GET", "/api/terminal/ballot", credential=cred, expect=None)
    assert status == 404
