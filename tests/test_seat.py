"""The seat terminal page (/seat) through the Flask test client: an empty public shell (no
session data in it) that talks to the terminal API with the tablet's credential, its strings in
Chinese and English, and the API behind it still asking for the credential. The page on real
tablets (headless Chromium) is tested in tests/browser/test_seat_tablets.py."""
from __future__ import annotations

import json
import re

from helpers_live import Api, setup_sitting


def strings_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="seat-strings">(.*?)</script>', html, re.S)
    assert m, "the page carries its screen strings"
    return json.loads(m.group(1))


def test_seat_page_is_public_and_holds_no_session_data(app, api):
    s = setup_sitting(api, members=3, present=2, open_vote=True)
    anonymous = app.test_client()
    r = anonymous.get("/seat")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "seat.js" in html and 'data-screen="checkin"' in html and "签到" in html
    for secret_or_data in ["测试市人民代表大会", "第一次会议", "表决事项", "代表M0001", "M0001", "席位M0001",
                           *s.creds.values(), s.station]:
        assert secret_or_data not in html, secret_or_data
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # The same shell for a logged-in operator: still no data in it.
    assert "第一次会议" not in api.client.get("/seat").get_data(as_text=True)


def test_seat_page_in_english_and_chinese_has_the_same_strings(client):
    zh = client.get("/seat").get_data(as_text=True)
    en = client.get("/seat?lang=en").get_data(as_text=True)
    assert "当前没有进行中的表决" in zh and "No vote is open" in en
    assert "投票成功" in zh and "Your vote was cast" in en
    s_zh, s_en = strings_of(zh), strings_of(en)
    assert set(s_zh) == set(s_en)
    assert (s_zh["mark_for"], s_zh["mark_against"], s_zh["mark_abstain"]) == ("赞成", "反对", "弃权")
    assert s_zh["mark_against_project"] == "不赞成"  # RULES.md §3: 不赞成 for projects
    assert (s_en["mark_for"], s_en["mark_against"], s_en["mark_abstain"]) == ("For", "Against", "Abstain")
    assert "{k}" in s_zh["over_limit"] and "{k}" in s_en["over_limit"]


def test_the_api_behind_the_page_still_needs_the_credential(app, api):
    s = setup_sitting(api, members=3, present=3, open_vote=True)
    anon = Api.flask(app.test_client())
    cred = s.creds["M0001"]
    # (A secret vote's cast carries no credential at all; the ballot it casts was signed only
    # for a credential: test_terminal_auth.py.)
    for method, url, body in [("GET", "/api/terminal/state", None), ("GET", "/api/terminal/round-key", None),
                              ("POST", "/api/terminal/blind-sign", {"round_ref": "r1", "blinded_msg": "AAAA"}),
                              ("POST", "/api/terminal/checkin", {"member": "M0001"})]:
        status, data = anon.call(method, url, body, expect=None)
        assert status == 401 and data["errors"][0]["errorType"] == "Unauthorized", (url, data)
        status, _ = anon.call(method, url, body, credential="not-a-credential", expect=None)
        assert status == 401, url
    # Neither the page's URL nor a query parameter carries a credential the server accepts.
    assert app.test_client().get(f"/api/terminal/state?credential={cred}").status_code == 401
    status, state = anon.call("GET", "/api/terminal/state", credential=cred)
    assert status == 200 and state["member"]["member_no"] == "M0001" and state["vote"]["round"] == 1
