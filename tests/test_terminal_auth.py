"""Who may call the seat-terminal and counting-station API (Flask test client): no, a malformed,
an unknown or a revoked credential is 401 in the API's error shape and stores nothing; a station's
and a seat's credentials are not interchangeable (403). A secret vote's cast carries no
credential at all (cast_endpoint.py): for it, the credential guards the blind signature, and a
named vote's cast is checked like every other terminal call."""
from __future__ import annotations

import pytest
from helpers_live import Api, setup_sitting
from terminal_support import assert_error_shape, cast, get_ballot, n_casts

from ballot_service.crypto import tablet


@pytest.mark.parametrize("method,path", [("GET", "/api/terminal/state"), ("GET", "/api/terminal/round-key"),
                                         ("POST", "/api/terminal/blind-sign"), ("POST", "/api/terminal/checkin"),
                                         ("POST", "/api/station/paper"), ("POST", "/api/station/hand-out"),
                                         ("POST", "/api/station/tally-sheet")])
def test_missing_credential_is_401(app, method, path):
    fresh = app.test_client()  # no operator cookie
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        r = fresh.open(path, method=method, json={}, headers=headers)
        assert r.status_code == 401, (headers, r.get_json())
        assert_error_shape(r.get_json(), "Unauthorized")


def test_named_cast_without_a_valid_credential_is_401(app, api):
    s = setup_sitting(api, members=3, secret=False)
    no = s.members[0]
    ballot = get_ballot(api, s.creds[no])
    fresh = app.test_client()
    body = {**ballot, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id()}
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer not-a-credential"}):
        r = fresh.post("/api/terminal/cast", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.get_json())
        assert_error_shape(r.get_json(), "Unauthorized")
    assert n_casts(app) == 0
    assert cast(api, s.creds[no], ballot, {"motion": "for"})[0] == 201


@pytest.mark.parametrize("secret", [True, False], ids=["secret", "named"])
def test_unknown_and_revoked_credentials_are_401(app, api, secret):
    s = setup_sitting(api, members=3, secret=secret)
    fresh = Api.flask(app.test_client())
    status, data = fresh.call("GET", "/api/terminal/state", credential="not-a-credential", expect=None)
    assert status == 401
    assert_error_shape(data, "Unauthorized")

    no = s.members[0]
    _, state = fresh.call("GET", "/api/terminal/state", credential=s.creds[no])
    ballot = get_ballot(fresh, s.creds[no]) if not secret else None
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    calls = [("GET", "/api/terminal/state", None), ("GET", "/api/terminal/round-key", None),
             ("POST", "/api/terminal/blind-sign", {"round_ref": state["vote"]["round_ref"], "blinded_msg": "AAAA"})]
    if not secret:  # a named vote's cast is bound to the terminal's member: a revoked one casts nothing
        calls.append(("POST", "/api/terminal/cast", {**ballot, "marks": {"motion": "for"},
                                                     "retry_id": tablet.new_retry_id()}))
    for method, path, body in calls:
        status, data = fresh.call(method, path, body, credential=s.creds[no], expect=None)
        assert status == 401, (path, data)
        assert "revoked" in assert_error_shape(data, "Unauthorized")["message"]
    assert n_casts(app) == 0


def test_station_and_seat_credentials_are_not_interchangeable(app, api):
    s = setup_sitting(api, members=3, secret=False)
    no = s.members[0]
    ballot = get_ballot(api, s.creds[no])
    status, data = cast(api, s.station, ballot, {"motion": "for"})  # a named vote's cast
    assert status == 403
    assert_error_shape(data, "Forbidden")
    for path, body in (("/api/station/paper", {"ballot": "BS1.x.y", "marks": {"motion": "for"}}),
                       ("/api/station/hand-out", {"ballots": ["BS1.x.y"]}),
                       ("/api/station/tally-sheet", {"item_id": s.item_id, "teller": "x", "sheet": {}})):
        status, data = api.call("POST", path, body, credential=s.creds[no], expect=None)
        assert status == 403, (path, data)
        assert_error_shape(data, "Forbidden")
    for method, path, body in (("GET", "/api/terminal/round-key", None),
                               ("POST", "/api/terminal/blind-sign", {"round_ref": ballot["round_ref"],
                                                                     "blinded_msg": "AAAA"})):
        status, data = api.call(method, path, body, credential=s.station, expect=None)
        assert status == 403, (path, data)
        assert_error_shape(data, "Forbidden")
    assert n_casts(app) == 0
    assert cast(api, s.creds[no], ballot, {"motion": "for"})[0] == 201
