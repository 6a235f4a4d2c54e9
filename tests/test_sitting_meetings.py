"""Check-in per plenary meeting (issue #17 item 17): a session spans several 全体会议; each has
its own check-in and quorum over the session's one roster. Starting the next meeting keeps
the last one's check-in and asks everyone to check in again; refused during a vote."""
from __future__ import annotations

import json
import re

from bundle_support import export_and_verify
from console_support import flashes, post
from helpers_live import (
    DISPLAY_OPERATOR,
    Api,
    create_item,
    create_operator_in_db,
    login_client,
    setup_sitting,
)
from terminal_support import events


def attendance(api, s):
    return api.call("GET", f"/api/admin/sessions/{s.sitting_id}/attendance")[1]


def test_each_plenary_meeting_has_its_own_check_in_and_quorum(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=6, present=5, open_vote=False)  # congress: quorum 2/3 of 6 = 4
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)
    assert '<span id="meeting-name">第一次全体会议</span>' in page
    assert api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])[1]["session"]["meeting"] == "第一次全体会议"

    r = post(console, f"/console/sessions/{s.sitting_id}/meetings/next", follow_redirects=True)
    assert ("ok", "已开始下一次全体会议，请代表重新签到。") in flashes(r)
    page = r.get_data(as_text=True)
    assert '<span id="meeting-name">第二次全体会议</span>' in page
    assert re.search(r"<td>第一次全体会议</td><td>6</td><td>5</td><td>0</td>", page)
    assert attendance(api, s)["present"] == 0
    state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])[1]
    assert state["member"] is None and state["session"]["meeting"] == "第二次全体会议"  # check in again
    (ev,) = events(app, "meeting_started")
    assert json.loads(ev.data)["ended"] == {"number": 1, "members": 6, "present": 5, "leave": 0}

    # The quorum is this meeting's: 3 of 6 is short of two thirds.
    for no in ("M0001", "M0002", "M0003"):
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=s.creds[no])
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409 and data["errors"][0]["errorType"] == "QuorumNotMet"
    api.call("POST", "/api/terminal/checkin", {"member": "M0004"}, credential=s.creds["M0004"])
    api.call("POST", f"/api/admin/items/{s.item_id}/open")

    r = post(console, f"/console/sessions/{s.sitting_id}/meetings/next", follow_redirects=True)
    assert flashes(r)[-1][0] == "error" and "正在表决" in flashes(r)[-1][1]
    assert attendance(api, s)["present"] == 4


def test_the_bundle_verifies_across_meetings(app, console, settings_env, tmp_path):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    post(console, f"/console/sessions/{s.sitting_id}/meetings/next")
    for no in s.members:
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=s.creds[no])
    item = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{item}/open")
    api.call("POST", f"/api/admin/items/{item}/close")
    export_and_verify(settings_env, tmp_path / "b")


def test_the_presiding_screen_names_the_meeting_under_way(app, console, settings_env):
    api = Api.flask(app.test_client())
    create_operator_in_db(settings_env["BALLOT_DATABASE_URL"], DISPLAY_OPERATOR, "display")
    screen = login_client(app, DISPLAY_OPERATOR)
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    assert screen.get(f"/display/{s.sitting_id}/state").get_json()["sitting"]["meeting"] == "第一次全体会议"
    post(console, f"/console/sessions/{s.sitting_id}/meetings/next")
    st = screen.get(f"/display/{s.sitting_id}/state").get_json()
    assert st["sitting"]["meeting"] == "第二次全体会议" and st["attendance"]["present"] == 0
    assert 'data-f="sitting.meeting">第二次全体会议<' in screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
