"""The read-by-eye form at the counting station (real headless Chromium): an election ballot's
另选他人 lines, one field a printed line, typed as written; the form counts 赞成 + 另选 against
the seats and says when the ballot counts invalid; the other teller confirms; the tally counts
the written-in person. In Chinese by default, English with ?lang=en.
Screenshots: build/screenshots/station-by-eye-write-in.png, station-by-eye-write-in-en.png."""
from __future__ import annotations

import pytest
from browser_support import screenshot
from helpers_live import setup_sitting
from test_station_in_chromium import teller

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _scan_by_eye(page, text):
    page.fill("#byeye-qr", text)
    page.press("#byeye-qr", "Enter")
    page.wait_for_selector("#byeye-form:not([hidden])")


def test_a_written_in_name_is_read_by_eye(new_page, live_site):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=5, open_vote=False, channel="paper")
    spec = {"key": "zr", "kind": "election", "title": "选举主任", "office": "principal", "places": 1,
            "channel": "paper", "candidates": [{"key": "A", "title": "甲一"}, {"key": "B", "title": "乙二"}]}
    item_id = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"]
    _, printed = api.call("POST", f"/api/admin/items/{item_id}/paper-ballots", {"count": 2})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    api.call("POST", f"/api/admin/items/{item_id}/open")

    counter = teller(new_page, base, s.counter)
    _scan_by_eye(counter, printed["ballots"][0])
    line = counter.locator("#byeye-write-ins input[name=byeye_write_in]")
    assert line.count() == 1 and "另选他人第 1 行" in counter.inner_text("#byeye-write-ins")
    line.fill("张三")
    counter.wait_for_selector("#byeye-chosen >> text=已选 1 人，应选 1 名")
    counter.locator("#byeye-marks input[name='eye|A'][value=for]").check()  # and 甲一 too: 2 for 1 seat
    counter.wait_for_selector("#byeye-chosen.warn >> text=此票计为无效票")
    screenshot(counter, "station-by-eye-write-in")
    counter.locator("#byeye-marks input[name='eye|A'][value=abstain]").check()
    counter.wait_for_function("!document.getElementById('byeye-chosen').classList.contains('warn')")
    counter.click("#byeye-form button[type=submit]")
    counter.wait_for_selector("#byeye-status >> text=待另一名计票人员确认")

    # the other teller confirms it on the queue card, typing the 另选 line as they read it
    scrutineer = teller(new_page, base, s.scrutineer)
    card = scrutineer.wait_for_selector("#queue-list form.page-card")
    assert "人工读票" in card.inner_text()
    scrutineer.fill("#queue-list form.page-card textarea.write-ins", "张三")
    scrutineer.click("#queue-list form.page-card button[type=submit]")
    scrutineer.wait_for_selector("#queue-list >> text=没有待裁定的选票")

    english = new_page((1366, 900))
    english.goto(base + "/station?lang=en")
    english.fill("#credential", s.counter)
    english.click("#login-form button[type=submit]")
    english.wait_for_selector("#app:not([hidden])")
    _scan_by_eye(english, printed["ballots"][1])
    assert "Write-in line 1" in english.inner_text("#byeye-write-ins")
    english.locator("#byeye-write-ins input").fill("李四")
    english.locator("#byeye-marks input[name='eye|B'][value=for]").check()
    english.wait_for_selector("#byeye-chosen.warn >> text=counts invalid")
    screenshot(english, "station-by-eye-write-in-en")

    api.call("POST", f"/api/admin/items/{item_id}/close")
    result = api.call("POST", f"/api/admin/items/{item_id}/tally")[1]
    assert result["write_ins"] == [{"name": "张三", "for": 1, "elected": False}], result
