"""The presiding officer's screen (display.py) before and during a vote, through the Flask
test client: check-in figures and quorum, Chinese and English labels, and a vote in progress
showing how many voted (also in the page and the event stream) and never how; the time left."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from display_support import CHOICE_KEYS, embedded_state, get_state, keys_in, strip_volatile
from helpers_live import blind_ballot, setup_sitting
from terminal_support import cast


def test_checkin_state_and_quorum(api, screen):
    s = setup_sitting(api, members=6, present=3, open_vote=False)
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "checkin"
    assert st["attendance"] == {"members": 6, "present": 3, "leave": 0, "absent": 3, "quorum_met": False,
                                "quorum_rule": "3*P >= 2*N", "quorum_needed": 4,
                                "quorum_words": ["应到 6 人，三分之二为 4 人，实到 3 人，不足法定人数",
                                                 "6 members, two thirds is 4, 3 present: no quorum"]}
    assert st["sitting"]["name"] == "第一次会议" and st["sitting"]["body"] == "测试市人民代表大会"
    assert "vote" not in st and "result" not in st

    api.call("POST", "/api/terminal/checkin", {"member": "M0004"}, credential=s.creds["M0004"])
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0005"], "status": "leave"})
    st = get_state(screen, s.sitting_id)
    assert (st["attendance"]["present"], st["attendance"]["leave"], st["attendance"]["absent"]) == (4, 1, 1)
    assert st["attendance"]["quorum_met"] is True  # 3*4 >= 2*6

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    assert strip_volatile(embedded_state(html)) == strip_volatile(st)
    for label in ("应到", "实到", "请假", "符合法定人数", "不足法定人数"):
        assert label in html
    assert 'class="bar"' not in html.split("<body", 1)[1].split('id="display"', 1)[0]  # no console bar


def test_english_labels(api, screen):
    s = setup_sitting(api, members=3, open_vote=False)
    html = screen.get(f"/display/{s.sitting_id}?lang=en").get_data(as_text=True)
    assert "Present" in html and "Quorum met" in html and "Connection lost" in html
    assert "实到" not in html
    html = screen.get(f"/display/{s.sitting_id}?lang=zh").get_data(as_text=True)
    assert "实到" in html and "连接中断，正在重连…" in html


@pytest.mark.parametrize("secret", [True, False], ids=["secret", "named"])
def test_voting_shows_how_many_never_how(api, screen, secret):
    s = setup_sitting(api, members=5, secret=secret)
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "voting"
    v = st["vote"]
    # Issued = blind signatures taken: none yet at the opening, one per tablet as each takes its ballot.
    assert (v["voted"], v["issued"], v["round"], v["members"], v["present"]) == (0, 0, 1, 5, 5)
    assert v["title"] == "表决事项 item1" and v["secret"] is secret and v["closes_at"] is None
    ballots = [blind_ballot(api, s.creds[no]) for no in s.members]
    assert get_state(screen, s.sitting_id)["vote"]["issued"] == 5

    marks = [{"motion": "for"}, {"motion": "against"}, {"motion": "for"}]
    for i, m in enumerate(marks):
        cast(api, s.creds[s.members[i]], ballots[i], m, expect=(201,))
        st = get_state(screen, s.sitting_id)
        assert st["vote"]["voted"] == i + 1 and st["vote"]["issued"] == 5
        leaked = keys_in(st) & CHOICE_KEYS
        assert not leaked, f"per-choice data on the screen during the vote: {leaked}"

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    page_state = embedded_state(html)
    assert not keys_in(page_state) & CHOICE_KEYS
    assert page_state["vote"]["voted"] == 3
    # The page itself carries labels for the result view, but no figure of any choice: the
    # only numbers it holds are in the embedded state (3 voted of 5), which has none.
    body = html.split('id="display-labels"', 1)[0]
    assert not re.search(r'data-f="[^"]*"[^>]*>\s*\d', body), "figures rendered into the page outside the state"

    # And the event stream carries the same (no choices) while the vote is open.
    screen.application.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=0.5)
    raw = screen.get(f"/display/{s.sitting_id}/events").get_data(as_text=True)
    states = [json.loads(d) for d in re.findall(r"^event: state\ndata: (.*)$", raw, re.M)]
    assert states and all(not keys_in(x) & CHOICE_KEYS for x in states)


def test_voting_time_left_and_runoff_round(api, screen):
    s = setup_sitting(api, members=5, open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "timed", "kind": "resolution", "title": "限时表决", "time_limit_s": 120})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    v = get_state(screen, s.sitting_id)["vote"]
    assert v["title"] == "限时表决" and v["closes_at"]

    left = dt.datetime.fromisoformat(v["closes_at"]) - dt.datetime.now(dt.timezone.utc)
    assert 100 < left.total_seconds() <= 120
