"""Who may call the seat-terminal and counting-station API (Flask test client): no, a malformed,
an unknown or a revoked credential is 401 in the API's error shape and stores nothing; a station's
and a seat's credentials are not interchangeable (403)."""
from __future__ import annotations

import pytest
from helpers_live import Api, setup_session
from terminal_support import assert_error_shape, cast, get_ballot, n_casts


@pytest.mark.parametrize("method,path", [("GET", "/api/terminal/state"), ("GET", "/api/terminal/ballot"),
                                         ("POST", "/api/terminal/cast"), ("POST", "/api/terminal/checkin"),
                                         ("POST", "/api/station/paper"), ("POST", "/api/station/hand-out"),
                                         ("POST", "/api/station/tally-sheet")])
def test_missing_credential_is_401(app, method, path):
    fresh = app.test_client()  # no operator cookie
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        r = fresh.open(path, method=method, json={}, headers=headers)
        assert r.status_code == 401, (headers, r.get_json())
        assert_error_shape(r.get_json(), "Unauthorized")


def test_unknown_and_revoked_credentials_are_401(app, api):
    s = setup_session(api, members=3)
    fresh = Api.flask(app.test_client())
    status, data = fresh.call("GET", "/api/terminal/state", credential="not-a-credential", expect=None)
    assert status == 401
    assert_error_shape(data, "Unauthorized")

    no = s.members[0]
    ballot = get_ballot(fresh, s.creds[no])
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    for method, path, body in (("GET", "/api/terminal/state", None), ("GET", "/api/terminal/ballot", None),
                               ("POST", "/api/terminal/cast", {"ballot": ballot, "marks": {"motion": "for"}})):
        status, data = fresh.call(method, path, body, credential=s.creds[no], expect=None)
        assert status == 401, data
        assert "revoked" in assert_error_shape(data, "Unauthorized")["message"]
    assert n_casts(app) == 0


def test_station_and_seat_credentials_are_not_interchangeable(app, api):
    s = setup_session(api, members=3)
    no = s.members[0]
    ballot = get_ballot(api, s.creds[no])
    status, data = cast(api, s.station, ballot, {"motion": "for"})
    assert status == 403
    assert_error_shape(data, "Forbidden")
    for path, body in (("/api/station/paper", {"ballot": ballot, "marks": {"motion": "for"}}),
                       ("/api/station/hand-out", {"ballot": ballot}),
                       ("/api/station/tally-sheet", {"item_id": s.item_id, "teller": "x", "sheet": {}})):
        status, data = api.call("POST", path, body, credential=s.creds[no], expect=None)
        assert status == 403, (path, data)
        assert_error_shape(data, "Forbidden")
    status, data = api.call("GET", "/api/terminal/ballot", credential=s.station, expect=None)
    assert status == 403
    assert n_casts(app) == 0
    assert cast(api, s.creds[no], ballot, {"motion": "for"})[0] == 201
