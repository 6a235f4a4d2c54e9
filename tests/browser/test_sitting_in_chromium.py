"""A whole sitting through the three screens in real headless Chromium, against a real
server: the secretariat's console, four seat tablets and the presiding officer's screen.
Only the operators are created outside a browser (as `ballot-service operator add` would).

The operator logs in, creates the body and its key, imports the roster, creates the sitting
and registers the seat terminals; deputies set up their tablets from the console's links and
check in; the screen shows 应到/实到; the operator adds a resolution and opens the vote; the
tablets vote; the screen counts how many have voted; the operator closes, tallies, issues and
publishes the record; the screen shows 赞成/反对/弃权/未按, 通过, and the record's fingerprint.
Screenshots: build/screenshots/session-*.png."""
from __future__ import annotations

import json

import pytest
from browser_support import login, screenshot
from helpers_live import DISPLAY_OPERATOR, OPERATOR

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MEMBERS = 5
VOTES = {"1001": "for", "1002": "for", "1003": "against", "1004": "for"}  # 1005 stays away


def field(f: str, value) -> str:
    return f"document.querySelector('[data-f=\"{f}\"]').textContent === {json.dumps(str(value))}"


def test_a_whole_sitting_in_chromium(new_page, live_site, tmp_path):
    base = live_site.base_url
    roster = tmp_path / "名册.csv"
    roster.write_text("代表证号,姓名,代表团,座位号\n" + "\n".join(
        f"{1000 + i},代表{i},第一代表团,{i}" for i in range(1, MEMBERS + 1)), encoding="utf-8")

    # --- the secretariat prepares the sitting ------------------------------------------------
    op = new_page((1366, 900))
    login(op, base, OPERATOR)
    op.fill("#new-body input[name=name]", "示范市第十七届人民代表大会")
    op.click("#new-body button[type=submit]")
    op.click("text=生成签名密钥")
    fingerprint = op.inner_text(".fingerprint")
    op.click("text=名册")
    op.set_input_files("#roster-upload input[type=file]", str(roster))
    op.click("#roster-upload button[type=submit]")
    op.click("#roster-confirm")
    op.goto(base + "/console")
    op.fill(".new-sitting input[name=name]", "第四次会议")
    op.click(".new-sitting button[type=submit]")
    sitting_url = op.url
    sitting_id = int(sitting_url.rstrip("/").rsplit("/", 1)[1])
    op.check("#terminals-form input[name=all_seats]")
    op.click("#terminals-form button[type=submit]")
    links = {row.get_attribute("data-seat"): row.locator("a.setup-link").get_attribute("href")
             for row in op.locator("#credentials tr[data-kind=seat]").all()}
    assert len(links) == MEMBERS
    screenshot(op, "session-console-credentials")

    # --- the presiding officer's screen ---------------------------------------------------------
    screen = new_page((1920, 1080))
    login(screen, base, DISPLAY_OPERATOR)
    screen.goto(f"{base}/display/{sitting_id}")
    screen.wait_for_function(field("attendance.members", MEMBERS))
    assert screen.locator('[data-f="attendance.present"]').inner_text() == "0"

    # --- deputies set up their tablets and check in ----------------------------------------------
    tablets = {}
    for no in VOTES:
        seat = str(int(no) - 1000)
        tab = new_page((1280, 800))
        tab.goto(links[seat])
        tab.locator('section[data-screen="checkin"]').wait_for(state="visible")
        tab.fill("#checkin-member", no)
        tab.click("#checkin-form button[type=submit]")
        tab.locator('section[data-screen="waiting"]').wait_for(state="visible")
        tablets[no] = tab
    screenshot(tablets["1001"], "session-seat-waiting")
    screen.wait_for_function(field("attendance.present", len(VOTES)), timeout=5_000)
    screenshot(screen, "session-screen-checkin")

    # --- a resolution, opened from the console -----------------------------------------------------
    op.goto(sitting_url)
    assert op.inner_text('[data-k="present"]') == str(len(VOTES))
    op.click("#new-item summary")
    op.select_option("#new-item select[name=kind]", "resolution")
    op.fill("#new-item input[name=key]", "plan-2027")
    op.fill("#new-item input[name=title]", "关于2027年国民经济和社会发展计划的决议")
    op.click("#new-item button[type=submit]")
    op.click("#action-open")
    assert "表决已开始" in op.inner_text(".flash.ok")
    # Issued = blind signatures taken. Taking one writes no audit event (nothing timed per
    # deputy), so the screen, which follows the audit head, shows it with the next cast.
    screen.wait_for_function(field("vote.voted", 0), timeout=10_000)  # the screen follows the opening

    receipts = {}
    for i, (no, choice) in enumerate(VOTES.items(), start=1):
        tab = tablets[no]
        tab.locator('section[data-screen="ballot"]').wait_for(state="visible", timeout=15_000)
        tab.click(f'button.mark[data-key="motion"][data-mark="{choice}"]')
        if i == 1:
            screenshot(tab, "session-seat-ballot")
        tab.click("#ballot-submit")
        tab.locator('section[data-screen="confirm"]').wait_for(state="visible")
        tab.click("#confirm-send")
        tab.locator('section[data-screen="receipt"]').wait_for(state="visible")
        receipts[no] = tab.inner_text("#receipt-code")
        screen.wait_for_function(field("vote.voted", i), timeout=5_000)
        if i == 2:
            screenshot(screen, "session-screen-voting")
            # Mid-vote the screen shows how many have voted, never how.
            assert "赞成" not in screen.locator("#view-voting").inner_text()
    # 已表决 R of 实到 P; every present tablet took its ballot, so no 未领取选票 line
    screen.wait_for_function(field("vote.present", len(VOTES)), timeout=5_000)
    screen.wait_for_function("document.getElementById('v-not-issued').hidden", timeout=5_000)
    screenshot(tablets["1004"], "session-seat-receipt")
    assert len(set(receipts.values())) == len(VOTES)
    op.reload()
    assert op.inner_text("#returned") == str(len(VOTES))

    # --- close, tally, record, publish ---------------------------------------------------------------
    op.once("dialog", lambda d: d.accept())
    op.click("#action-close")
    op.click("#action-tally")
    assert "通过" in op.inner_text(".round-result")
    op.click("#action-record")
    op.click("#action-publish")
    assert "已公布" in op.inner_text("#record")
    assert op.inner_text("#record .fingerprint") == fingerprint
    assert "赞成3票，反对1票，弃权0票，通过" in op.inner_text("#announcement")
    screenshot(op, "session-console-published")

    screen.wait_for_function(field("result.motion.for", 3), timeout=5_000)
    for f, v in {"result.members": MEMBERS, "result.present": 4, "result.motion.against": 1,
                 "result.motion.abstain": 0, "result.not_voted": 0}.items():
        assert screen.locator(f'[data-f="{f}"]').inner_text() == str(v), f
    assert screen.inner_text("#r-outcome") == "通过"
    screen.wait_for_function(f"document.getElementById('r-fp').textContent === {json.dumps(fingerprint)}",
                             timeout=5_000)
    screenshot(screen, "session-screen-result")
