"""The counting-station API (Flask test client): paper ballots printed, handed out once, cast
once (void allowed; spare and reused refused and counted; not from a seat terminal); hand-count
tally sheets entered after the close and confirmed by a second teller with the same figures."""
from __future__ import annotations

import json

from helpers_live import setup_sitting
from terminal_support import all_casts, assert_error_shape, events, n_casts, refusals

from ballot_service.crypto import tablet


def test_paper_flow(app, api):
    s = setup_sitting(api, members=3, channel="paper")
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 4})
    texts = printed["ballots"]
    before = len(events(app, "paper_ballots_handed_out"))
    status, data = api.call("POST", "/api/station/hand-out", {"ballots": texts[:3]}, credential=s.station)
    assert status == 201 and data == {"handed_out": 3}
    # One count for the stack: no event per ballot, so nothing gives the order of hand-out.
    (ev,) = events(app, "paper_ballots_handed_out")[before:]
    assert json.loads(ev.data) == {"round_id": json.loads(ev.data)["round_id"], "count": 3} and ev.at is None
    assert not events(app, "paper_ballot_handed_out")
    status, data = api.call("POST", "/api/station/hand-out", {"ballots": [texts[3], texts[0]]},
                            credential=s.station, expect=None)
    assert status == 409  # the whole stack is refused: texts[0] was handed out already
    assert_error_shape(data)

    def paper(text, marks):
        return api.call("POST", "/api/station/paper", {"ballot": text, "marks": marks}, credential=s.station,
                        expect=None)

    status, data = paper(texts[0], {"motion": "void"})
    assert status == 201, data
    status, data = paper(texts[1], {"motion": "for"})
    assert status == 201
    assert paper(texts[1], {"motion": "for"})[0] == 200
    status, data = paper(texts[1], {"motion": "against"})
    assert status == 409 and data["errors"][0]["reason"] == "reused"
    status, data = paper(texts[3], {"motion": "for"})  # printed, never handed out
    assert status == 403
    assert assert_error_shape(data, "BallotRefused")["reason"] == "spare"
    status, data = paper(texts[2], {"bogus": "for"})
    assert status == 400
    assert n_casts(app) == 2
    assert {c.marks["motion"] for c in all_casts(app)} == {"void", "for"}
    r = refusals(app, s.item_id)
    assert r["spare"] == 1 and r["reused"] == 1
    # A paper ballot cannot be cast from a seat terminal.
    status, data = api.call("POST", "/api/terminal/cast", {"ballot": texts[2], "marks": {"motion": "for"},
                                                           "retry_id": tablet.new_retry_id()},
                            credential=s.creds[s.members[0]], expect=None)
    assert status == 400
    # Nor a seat terminal's ballot at the station (there is none for a paper vote: no round key).
    status, data = api.call("GET", "/api/terminal/round-key", credential=s.creds[s.members[0]], expect=None)
    assert status == 404
    assert n_casts(app) == 2


SHEET = {"issued": 3, "returned": 3, "invalid": 0,
         "counts": {"motion": {"for": 2, "against": 1, "abstain": 0, "void": 0}}}


def test_tally_sheet_needs_a_second_teller(app, api):
    s = setup_sitting(api, members=3, channel="tally_sheet")

    def sheet(credential, data=SHEET, item_id=s.item_id):
        return api.call("POST", "/api/station/tally-sheet", {"item_id": item_id, "sheet": data},
                        credential=credential, expect=None)

    status, data = sheet(s.counter)
    assert status == 409  # the vote is still open
    assert_error_shape(data, "Conflict")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    bad = json.loads(json.dumps(SHEET))
    bad["counts"]["motion"]["for"] = 3
    assert sheet(s.counter, bad)[0] == 400  # rows must add up to the valid ballots
    assert sheet(s.station)[0] == 403  # a station registered to no teller
    assert sheet(s.counter) == (201, {"state": "entered"})
    status, data = sheet(s.counter)
    assert status == 409 and data["errors"][0]["where"] == "teller"
    differing = json.loads(json.dumps(SHEET))
    differing["counts"]["motion"] = {"for": 1, "against": 2, "abstain": 0, "void": 0}
    status, data = sheet(s.scrutineer, differing)
    assert status == 409 and data["errors"][0]["where"] == "sheet"
    assert sheet(s.scrutineer) == (201, {"state": "confirmed"})
    assert sheet(s.counter)[0] == 409
    assert [e.kind for e in events(app, "tally_sheet_entered")] == ["tally_sheet_entered"]
    assert len(events(app, "tally_sheet_confirmed")) == 1
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "decided", result
