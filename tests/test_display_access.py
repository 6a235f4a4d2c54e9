"""Who may see the presiding officer's screen (/display): anonymous callers and seat terminals
are refused, the display operator, the auditor and the secretariat may look, the screen's login
cannot change anything; unknown sittings are 404; the index lists sittings newest first."""
from __future__ import annotations

import re

from helpers_live import AUDITOR, DISPLAY_OPERATOR, OPERATOR, login_client, setup_sitting


def test_roles(api, staff, app, client):
    s = setup_sitting(api, members=3, open_vote=False)
    sid = s.sitting_id
    anon = app.test_client()
    for path in ("/display", f"/display/{sid}"):
        r = anon.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
    for path in (f"/display/{sid}/state", f"/display/{sid}/events"):
        r = anon.get(path)
        assert r.status_code == 401, path
        assert r.get_json()["errors"][0]["errorType"] == "Unauthorized"
        # A seat terminal's credential is no way in either.
        r = anon.get(path, headers={"Authorization": f"Bearer {s.creds['M0001']}"})
        assert r.status_code in (401, 403) and "errors" in r.get_json(), path
    for who in (DISPLAY_OPERATOR, AUDITOR, OPERATOR):
        c = login_client(app, who)
        assert c.get("/display").status_code == 200
        assert c.get(f"/display/{sid}").status_code == 200
        assert c.get(f"/display/{sid}/state").status_code == 200
    screen = login_client(app, DISPLAY_OPERATOR)
    r = screen.get("/display/9999/state")
    assert r.status_code == 404 and r.get_json()["errors"][0]["errorType"] == "NotFound"
    assert screen.get("/display/9999").status_code == 404
    assert screen.get("/display/9999/events").status_code == 404
    # The screen's login cannot change anything.
    r = screen.post(f"/api/admin/items/{s.item_id}/open")
    assert r.status_code == 403


def test_index_lists_sittings_newest_first(api, screen):
    s1 = setup_sitting(api, members=2, open_vote=False)
    _, second = api.call("POST", "/api/admin/sessions", {"body_id": s1.body_id, "name": "第二次会议"})
    html = screen.get("/display").get_data(as_text=True)
    ids = [int(x) for x in re.findall(r'data-sitting-id="(\d+)"', html)]
    assert ids == [second["id"], s1.sitting_id]
    assert f'href="/display/{second["id"]}"' in html
