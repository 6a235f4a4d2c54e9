"""Tablets before a vote (issue #17 items 2 and 4): opening a terminal vote needs a set-up,
online tablet for every present member, or a typed reason kept in the chain and on the record;
the sitting page lists set up / last seen / checked-in deputy; last seen is coarse and never
written during a vote; a tablet reset needs the secretariat's code and never happens mid-vote."""
from __future__ import annotations

import datetime as dt
import json

from console_support import flashes, post
from helpers_live import Api, create_item, publish, setup_sitting, vote
from sqlalchemy import select
from terminal_support import assert_error_shape, events, query

from ballot_service.domain import tablet_setup
from ballot_service.models import Item, Record, Round, Sitting, Terminal


def state(api, cred):
    return api.call("GET", "/api/terminal/state", credential=cred)[1]


def seen(app, terminal_id):
    return query(app, select(Terminal.set_up_at, Terminal.last_seen_at).where(Terminal.id == terminal_id))[0]


def age(app, terminal_ids, seconds):
    """Move the tablets' last poll `seconds` into the past (as if they had gone quiet)."""
    with app.extensions["ballot_sessionmaker"]() as db:
        for term in db.scalars(select(Terminal).where(Terminal.id.in_(terminal_ids))):
            term.last_seen_at -= dt.timedelta(seconds=seconds)
        db.commit()


def test_a_vote_with_present_members_without_a_tablet_is_refused_unless_a_reason_is_typed(app, api):
    s = setup_sitting(api, members=5, present=3, open_vote=False)
    # Two more checked in by the secretariat: one seat tablet never set up, one revoked.
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids['M0005']}/revoke")
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance",
             {"members": ["M0004", "M0005"], "status": "present"})
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    err = assert_error_shape(data, "Conflict")
    assert status == 409 and err["where"] == "override_reason"
    assert "实到 5 人中只有 3 人" in err["message_zh"] and "代表M0004（表决器 席位M0004 未设置）" in err["message_zh"]
    assert "代表M0005（无表决器）" in err["message_zh"]
    assert query(app, select(Item.status).where(Item.id == s.item_id))[0][0] == "draft"
    assert not events(app, "vote_opened")

    api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "两位代表改用纸质票补投"})
    (opened,) = events(app, "vote_opened")
    assert json.loads(opened.data)["tablets_override"] == {"present": 5, "ready": 3, "reason": "两位代表改用纸质票补投"}
    for no in s.present:
        vote(api, s.creds[no], {"motion": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    (body_json,) = query(app, select(Record.body_json).where(Record.item_id == s.item_id))[0]
    assert json.loads(body_json)["rounds"][0]["tablets_override"]["reason"] == "两位代表改用纸质票补投"


def test_a_tablet_gone_quiet_is_not_ready(app, api):
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    age(app, [s.terminal_ids["M0003"]], tablet_setup.ONLINE_S + 1)
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409 and "表决器 席位M0003 离线" in data["errors"][0]["message_zh"]
    state(api, s.creds["M0003"])  # it polls again: online
    api.call("POST", f"/api/admin/items/{s.item_id}/open")


def test_last_seen_is_coarse_and_not_written_during_a_vote(app, api):
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    tid = s.terminal_ids["M0001"]
    first = seen(app, tid)
    assert first[0] is not None and first[1] is not None  # the check-in set it up
    state(api, s.creds["M0001"])
    assert seen(app, tid) == first  # within 30 s: nothing written
    age(app, [tid], tablet_setup.SEEN_EVERY_S + 1)
    aged = seen(app, tid)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    state(api, s.creds["M0001"])
    assert seen(app, tid) == aged  # a vote is open: nothing written per tablet
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    state(api, s.creds["M0001"])
    assert seen(app, tid)[1] > aged[1]


def test_the_sitting_page_lists_set_up_last_seen_and_the_checked_in_deputy(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, present=1, open_vote=False)
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)
    row = page[page.index(f'data-terminal="{s.terminal_ids["M0001"]}"'):]
    row = row[:row.index("</tr>")]
    assert "已设置" in row and "秒前" in row and "代表M0001" in row
    row2 = page[page.index(f'data-terminal="{s.terminal_ids["M0002"]}"'):]
    assert "未设置" in row2[:row2.index("</tr>")]


def test_the_console_refuses_to_open_without_ready_tablets_and_keeps_the_reason(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, present=2, open_vote=False)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0003"], "status": "present"})
    page = console.get(f"/console/items/{s.item_id}").get_data(as_text=True)
    assert "实到 3 人中只有 2 人的表决器已设置并在线" in page and 'name="override_reason"' in page
    r = post(console, f"/console/items/{s.item_id}/open", follow_redirects=True)
    assert flashes(r)[-1][0] == "error" and "请填写原因" in flashes(r)[-1][1]
    r = post(console, f"/console/items/{s.item_id}/open", {"override_reason": "代表M0003 平板故障，改用纸质票"},
             follow_redirects=True)
    assert ("ok", "表决已开始。") in flashes(r)


def test_a_tablet_reset_needs_the_secretariats_code_and_never_happens_during_a_vote(app, api, settings_env):
    s = setup_sitting(api, members=3, present=3, open_vote=True)
    cred, tid = s.creds["M0001"], s.terminal_ids["M0001"]
    code = tablet_setup.reset_code(app.config["SETTINGS"].secret_key, s.sitting_id)
    status, data = api.call("POST", "/api/terminal/reset", {"code": "000000" if code != "000000" else "111111"},
                            credential=cred, expect=None)
    assert status == 403 and assert_error_shape(data, "Forbidden")["where"] == "code"
    status, data = api.call("POST", "/api/terminal/reset", {"code": code}, credential=cred, expect=None)
    assert status == 409 and "表决期间不能重置" in data["errors"][0]["message_zh"]
    assert seen(app, tid)[0] is not None
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", "/api/terminal/reset", {"code": code}, credential=cred)
    assert seen(app, tid) == (None, None)
    assert [json.loads(e.data)["terminal_id"] for e in events(app, "terminal_reset")] == [tid]


def test_a_tablet_shows_the_votes_attendance_and_knows_the_sitting_is_closed(app, api):
    s = setup_sitting(api, members=3, present=2, open_vote=True)
    late = api.call("POST", "/api/terminal/checkin", {"member": "M0003"}, credential=s.creds["M0003"])[1]
    assert late["vote_open"] is True and late["attendance"]["present"] == 2  # the vote's 实到, as on the screen
    st = state(api, s.creds["M0003"])
    assert st["attendance"]["present"] == 2 and st["session"]["closed"] is False
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert state(api, s.creds["M0003"])["attendance"]["present"] == 3  # no vote open: the live count
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    assert state(api, s.creds["M0001"])["session"]["closed"] is True


def test_a_reset_code_with_any_characters_is_just_wrong(app, api):
    s = setup_sitting(api, members=2, present=2, open_vote=False)
    status, data = api.call("POST", "/api/terminal/reset", {"code": "\u0080重置"}, credential=s.creds["M0001"],
                            expect=None)
    assert status == 403 and data["errors"][0]["where"] == "code"


def test_guessing_the_reset_code_is_stopped_after_five_wrong_codes(app, api):
    """Six digits are guessable: after 5 wrong codes from one tablet it gets 429 (even with the
    right code) for 5 minutes; another tablet is not locked; the right code resets it."""
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    code = tablet_setup.reset_code(app.config["SETTINGS"].secret_key, s.sitting_id)
    wrong = "000000" if code != "000000" else "111111"
    guesser, other = s.creds["M0001"], s.creds["M0002"]
    for _ in range(5):
        assert api.call("POST", "/api/terminal/reset", {"code": wrong}, credential=guesser, expect=None)[0] == 403
    status, data = api.call("POST", "/api/terminal/reset", {"code": code}, credential=guesser, expect=None)
    assert status == 429 and data["errors"][0]["where"] == "code"
    assert seen(app, s.terminal_ids["M0001"])[0] is not None  # not reset
    api.call("POST", "/api/terminal/reset", {"code": code}, credential=other)
    assert seen(app, s.terminal_ids["M0002"]) == (None, None)


def test_grouped_last_seen_writes_nothing_once_a_vote_has_opened(app, api):
    """A poll checks for an open vote, then its last seen joins a group commit: a vote opened in
    between must still find the row untouched (the write re-checks in its own transaction)."""
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    tids = [s.terminal_ids[no] for no in s.present]
    age(app, tids, tablet_setup.SEEN_EVERY_S + 1)
    aged = [seen(app, t) for t in tids]
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    engine = app.extensions["ballot_engine"]
    for t in tids:
        tablet_setup.note_seen_grouped(engine, t)
    assert [seen(app, t) for t in tids] == aged
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    for t in tids:
        tablet_setup.note_seen_grouped(engine, t)
    assert all(seen(app, t)[1] > a[1] for t, a in zip(tids, aged))


def test_the_next_vote_opened_just_after_a_long_one_closes_finds_its_tablets_online(app, api):
    """No last seen is written during a vote, and after its close the tablets are told over a
    few seconds: a 任职票决 opened right after a two-minute vote finds the tablets that were
    online at that vote's opening online still; AFTER_CLOSE_S later, a silent one is offline."""
    s = setup_sitting(api, members=3, present=3)
    for no in s.present:
        vote(api, s.creds[no], {"motion": "for"})
    age(app, list(s.terminal_ids.values()), 120)                      # seen just before it opened ...
    with app.extensions["ballot_sessionmaker"]() as db:                 # ... two minutes ago
        for rnd in db.scalars(select(Round).join(Item).where(Item.id == s.item_id)):
            rnd.opened_at -= dt.timedelta(seconds=120)
        db.commit()
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    second = create_item(api, s.sitting_id, key="item2")
    with app.extensions["ballot_sessionmaker"]() as db:
        sitting = db.get(Sitting, s.sitting_id)
        assert tablet_setup.readiness(db, sitting).ready == 3
        later = tablet_setup.utcnow() + dt.timedelta(seconds=tablet_setup.AFTER_CLOSE_S + 1)
        assert tablet_setup.readiness(db, sitting, now=later).ready == 0   # none has polled since
    api.call("POST", f"/api/admin/items/{second}/open")                 # no 离线, no reason needed
