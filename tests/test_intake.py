"""Cast intake through the terminal API (Flask test client): a receipt, the same receipt on a
retry (the same retry id), a reused ballot refused; forged ballots refused and counted,
malformed ones only audited; a ballot naming no round of the service is unknown; a cast after
the vote closed is late."""
from __future__ import annotations

import json
import os
import re

from helpers_live import setup_sitting
from terminal_support import (
    RE_RECEIPT,
    all_casts,
    assert_error_shape,
    cast,
    events,
    forge,
    get_ballot,
    n_casts,
    refusals,
    refused_event_rounds,
)

from ballot_service.crypto import tablet
from ballot_service.formats.encoding import b64url_encode


def test_cast_retry_and_reuse(app, api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    retry = tablet.new_retry_id()
    status, first = cast(api, cred, ballot, {"motion": "for"}, retry_id=retry)
    assert status == 201
    assert first["repeated"] is False
    assert re.match(RE_RECEIPT, first["receipt"])
    assert first["serial"] == ballot["serial"]

    status, again = cast(api, cred, ballot, {"motion": "for"}, retry_id=retry)
    assert status == 200
    assert again["receipt"] == first["receipt"] and again["repeated"] is True

    status, data = cast(api, cred, ballot, {"motion": "against"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "reused"
    assert n_casts(app) == 1
    assert refusals(app, s.item_id)["reused"] == 1
    assert [c.marks for c in all_casts(app)] == [{"motion": "for"}]


def test_forged_ballot_is_refused_and_counted(app, api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, data = cast(api, cred, forge(ballot), {"motion": "for"})
    assert status == 403
    assert assert_error_shape(data, "BallotRefused")["reason"] == "forged"
    # A stranger's key for a made-up serial is forged too, never 'unknown'.
    status, data = cast(api, cred, forge(ballot, serial="ab" * 16), {"motion": "for"})
    assert status == 403 and data["errors"][0]["reason"] == "forged"
    # The round's genuine signature moved onto another serial does not verify either.
    status, data = cast(api, cred, {**ballot, "serial": "cd" * 16}, {"motion": "for"})
    assert status == 403 and data["errors"][0]["reason"] == "forged"
    assert n_casts(app) == 0
    assert refusals(app, s.item_id)["forged"] == 3
    assert len(events(app, "cast_refused")) == 3
    assert cast(api, cred, ballot, {"motion": "for"})[0] == 201


def test_garbage_ballot_is_malformed(app, api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    good = get_ballot(api, cred)
    # Without a round_ref it is not a terminal cast at all (a paper ballot's text neither): 400.
    for bad in ({"ballot": "BS1.e30.AAAA"}, {**good, "round_ref": 1}):
        status, data = cast(api, cred, bad, {"motion": "for"})
        assert status == 400 and assert_error_shape(data)["where"] == "round_ref", data
    garbage = [{**good, "round_ref": "round-1"}, {**good, "serial": "AB" * 16},
               {**good, "serial": "ab" * 15}, {**good, "prefix": "!!!"}, {**good, "prefix": good["prefix"][:-4]},
               {**good, "signature": good["signature"][:-8]}, {**good, "signature": None},
               {k: v for k, v in good.items() if k != "serial"}, {**good, "signature": "x" * 3000}]
    for bad in garbage:
        status, data = cast(api, cred, bad, {"motion": "for"})
        assert status == 400, (bad, data)
        assert assert_error_shape(data, "BallotRefused")["reason"] == "malformed"
    assert n_casts(app) == 0
    assert sum(refusals(app).values()) == 0  # not a ballot: audited only, counted nowhere
    assert {r for r, _ in refused_event_rounds(app)} == {None}
    assert cast(api, cred, good, {"motion": "for"})[0] == 201


def test_ballot_of_a_round_the_service_does_not_have_is_unknown(app, api):
    """A terminal ballot names its round (round_ref) and nothing else: one naming no round of
    this service is `unknown`. It names no session either, so it is audited only (paper
    ballots, which name their session, are counted on the session's vote: test_intake_rounds)."""
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, data = cast(api, cred, forge(ballot, round_ref="r999"), {"motion": "for"})
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "unknown"
    assert refused_event_rounds(app) == [(None, "unknown")]
    assert sum(refusals(app).values()) == 0 and n_casts(app) == 0


def test_cast_after_close_is_late(app, api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    status, data = cast(api, cred, ballot, {"motion": "for"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "late"
    assert refusals(app, s.item_id)["late"] == 1
    assert n_casts(app) == 0
    assert [json.loads(e.data)["reason"] for e in events(app, "cast_refused")] == ["late"]
    # No ballot is signed for a closed vote (there is no open round for this terminal).
    blinded = b64url_encode(os.urandom(256))
    status, data = api.call("POST", "/api/terminal/blind-sign", {"round_ref": ballot["round_ref"], "blinded_msg": blinded},
                            credential=cred, expect=None)
    assert status == 404, data
    assert_error_shape(data, "NotFound")
