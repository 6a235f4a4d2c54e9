"""A whole paper vote at the counting-station page in real headless Chromium, against a real
server: the desk activates the handed-out ballots by scanning their QR codes (keyboard-wedge
input), a teller uploads the scanned batch (a TIFF made by omr_synth from the very ballots the
service printed), the clear ballots are counted, the unclear ones are decided by the 计票人 and
the 监票人 each on their own laptop (one disagreement goes to the 总监票人), the reconciliation
shows 发出 / 收回 / 待裁定 / 有效 / 重复扫描, the secretariat closes, tallies and signs the
record, and the tellers make the 计票结果报告单. Screenshots: build/screenshots/station-*.png."""
from __future__ import annotations

import numpy as np
import pytest
from browser_support import login, screenshot
from helpers_live import COUNTER_NAME, OPERATOR, setup_sitting
from station_support import (
    blank_pages,
    mark,
    scan_write_in,
    write_in_election,
    write_in_pages,
    write_tiff,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

KEYS = ("motion",)


def teller(new_page, base, credential):
    page = new_page((1366, 900))
    page.goto(base + "/station")
    page.fill("#credential", credential)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")
    return page


def cell(page, key):
    return page.inner_text(f"#board-table tbody tr td.{key}")


def decide(page, mark_value):
    card = page.locator("#queue-list form.page-card").first
    card.locator(f"input[value={mark_value}]").check()
    card.locator("button[type=submit]").click()


def test_a_paper_vote_at_the_station_page(new_page, live_site, tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=8, channel="paper")
    _, chief = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals", {"terminals": [
        {"name": "总监票人", "kind": "counting_station", "holder": "赵总监", "teller_role": "chief"}]})
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 7})
    texts = printed["ballots"]

    # --- the hand-out desk: a stack's QR codes scanned, then the stack handed out at once ------
    desk = teller(new_page, base, s.station)
    for n, text in enumerate(texts[:6], 1):
        desk.fill("#desk-qr", text)
        desk.press("#desk-qr", "Enter")
        desk.wait_for_function(f"document.getElementById('desk-stack').textContent === '{n}'")
    desk.click("#desk-send")
    desk.wait_for_function("document.getElementById('desk-status').textContent.endsWith('6')")
    desk.wait_for_function("document.querySelector('#board-table td.issued').textContent === '6'")
    screenshot(desk, "station-desk")

    # --- the scanned batch -------------------------------------------------------------------
    rng = np.random.default_rng(5)
    blank = blank_pages(texts[:6], KEYS)
    scans = [mark(blank[0], KEYS, {"motion": "for"}, rng), mark(blank[1], KEYS, {"motion": "for"}, rng),
             mark(blank[2], KEYS, {"motion": "against"}, rng), mark(blank[3], KEYS, {"motion": "for"}, rng),
             mark(blank[4], KEYS, {"motion": "for"}, rng, stray=True),
             mark(blank[5], KEYS, {"motion": "abstain"}, rng, faint=("motion", "for"))]
    batch = write_tiff(scans, tmp_path / "batch.tif")
    again = write_tiff(scans[:1], tmp_path / "again.tif")        # one ballot fed through twice
    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(batch), str(again)])
    counter.click("#scan-form button[type=submit]")
    counter.wait_for_function("document.getElementById('scan-status').textContent.indexOf('完成') === 0",
                              timeout=120_000)
    counter.wait_for_selector("#queue-list form.page-card >> nth=1")
    assert cell(counter, "returned") == "4" and cell(counter, "pending") == "2"
    assert cell(counter, "rescanned") == "1" and cell(counter, "refused") == "0"
    counter.wait_for_selector("#queue-list img.whole-page[src^='data:image/png']")   # the stray line: whole page
    assert counter.locator("#queue-list .crops img").count() >= 1                     # the faint dot: its box
    screenshot(counter, "station-queue-counter")

    # --- adjudication: the counter and the scrutineer each decide; one disagreement ------------
    # a mark the teller has made survives the page's 5-s refresh (a rebuilt card would send 弃权)
    first = counter.locator("#queue-list form.page-card").first
    first.locator("input[value=against]").first.check()
    counter.evaluate("document.activeElement.blur()")             # the refresh skips a focused form
    with counter.expect_response(lambda r: r.url.endswith("/api/station/queue"), timeout=10_000):
        pass
    counter.wait_for_timeout(300)                                    # the answer drawn
    assert first.locator("input[value=against]").first.is_checked()

    scrutineer = teller(new_page, base, s.scrutineer)
    decide(counter, "for")
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    decide(scrutineer, "for")                                      # agreed: counted
    one_left = "document.querySelectorAll('#queue-list form.page-card').length === 1"
    scrutineer.wait_for_function(one_left)
    counter.wait_for_function(one_left)                            # its page refreshes by itself
    # the scrutineer marks 无效 while the counter decides: the refresh redraws the card (the page
    # changed) keeping the scrutineer's mark, with a notice, instead of resetting it to 弃权
    scrutineer.locator("#queue-list form.page-card").first.locator("input[value=void]").first.check()
    decide(counter, "abstain")
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    scrutineer.evaluate("document.activeElement.blur()")
    scrutineer.wait_for_selector("#queue-list form.page-card >> text=此页已有变化", timeout=10_000)
    card = scrutineer.locator("#queue-list form.page-card").first
    assert card.locator("input[value=void]").first.is_checked()
    assert "计票人" in card.inner_text()                              # the counter's decision shown
    card.locator("button[type=submit]").click()                    # they disagree
    scrutineer.wait_for_selector("#queue-list form.page-card >> text=待总监票人裁定")
    status, err = api.call("POST", f"/api/admin/items/{s.item_id}/close", expect=None)
    assert status == 409                                            # nothing closes while a ballot waits
    screenshot(scrutineer, "station-waiting-for-chief")
    head = teller(new_page, base, chief["terminals"][0]["credential"])
    decide(head, "abstain")
    head.wait_for_selector("#queue-list >> text=没有待裁定的选票")
    head.wait_for_function("document.querySelector('#board-table td.returned').textContent === '6'")
    assert cell(head, "pending") == "0" and cell(head, "valid") == "6" and cell(head, "issued") == "6"
    screenshot(head, "station-reconciliation")

    # --- the secretariat closes, tallies and signs on the console; the tellers' count report -----
    console = new_page((1366, 900))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{s.item_id}")
    console.once("dialog", lambda d: d.accept())
    for action in ("close", "tally", "record"):
        console.click(f"#action-{action}")
        console.wait_for_load_state()
    _, results = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/results")
    result = results["items"][0]
    assert result["returned"] == 6 and result["rescanned"] == 1 and result["refused"] == 0
    assert result["candidates"][0]["for"] == 4 and result["candidates"][0]["abstain"] == 1, result
    assert "已签发表决结果记录" in console.inner_text(".flash")        # the signed record
    assert "发出表决票6张，收回6张" in console.inner_text("#announcement")
    screenshot(console, "station-console-record")
    counter.click("#report-button")
    counter.wait_for_selector("#report-link:not([hidden])")
    assert counter.get_attribute("#report-link", "href").startswith("data:application/pdf")
    counter.click(f"#recount-items button[data-item='{s.item_id}']")          # 重新计票 from the kept scans
    counter.wait_for_function("document.getElementById('recount-result').textContent.indexOf('相同 4') > 0")
    screenshot(counter, "station-report-recount")
    counter.goto(base + "/station?lang=en")
    counter.wait_for_selector("#board-table tbody tr")
    assert counter.inner_text("#board-table thead").split("\t")[:3] == ["Item", "Issued", "Returned"]
    screenshot(counter, "station-english")


def test_the_two_tellers_enter_a_tally_sheet_at_the_station_page(new_page, live_site):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=5, channel="tally_sheet")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    figures = {"issued": 5, "returned": 5, "invalid": 0, "motion|for": 3, "motion|against": 1, "motion|abstain": 1}

    def enter(page):
        form = page.locator(f"#sheet-items form[data-item='{s.item_id}']")
        for name, value in figures.items():
            form.locator(f"input[name='{name}']").fill(str(value))
        form.locator("button[type=submit]").click()

    counter = teller(new_page, base, s.counter)
    counter.wait_for_selector(f"#sheet-items form[data-item='{s.item_id}'] >> text=未录入")
    # the header names the teller once; a section with nothing in it says 暂无
    who = counter.inner_text("#who")
    assert who == f"第一次会议 · 计票人 {COUNTER_NAME}", who
    assert counter.locator("#board-none").is_visible() and "暂无" in counter.inner_text("#board-none")
    assert counter.locator("#recount-none").is_visible() and counter.locator("#sheet-none").is_hidden()
    screenshot(counter, "station-empty-sections")
    enter(counter)
    counter.wait_for_function("document.getElementById('sheet-status').textContent.indexOf('待另一名') >= 0")
    scrutineer = teller(new_page, base, s.scrutineer)
    scrutineer.wait_for_selector(f"#sheet-items form[data-item='{s.item_id}'] >> text=已录入，待确认")
    enter(scrutineer)
    scrutineer.wait_for_selector(f"#sheet-items form[data-item='{s.item_id}'] >> text=已确认")
    screenshot(scrutineer, "station-tally-sheet")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["candidates"][0]["for"] == 3 and result["status"] == "decided"


def test_the_two_tellers_transcribe_a_written_in_name_at_the_station_page(new_page, live_site, tmp_path):
    """An election ballot with a name on its 另选 line: queued with the reason, the whole page
    shown; each teller types the name as written; counted for that person."""
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=3, channel="paper", open_vote=False)
    item = write_in_election(api, s.sitting_id)
    texts = api.call("POST", f"/api/admin/items/{item}/paper-ballots", {"count": 1})[1]["ballots"]
    api.call("POST", "/api/station/hand-out", {"ballots": texts}, credential=s.station)
    api.call("POST", f"/api/admin/items/{item}/open")
    batch = write_tiff([scan_write_in(write_in_pages(texts)[0], np.random.default_rng(2), name_on_line=True)], tmp_path / "w.tif")
    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(batch)])
    counter.click("#scan-form button[type=submit]")
    counter.wait_for_selector("#queue-list form.page-card textarea.write-ins", timeout=120_000)
    assert "另选栏写有姓名" in counter.inner_text("#queue-list form.page-card h3")
    counter.wait_for_selector("#queue-list img.whole-page[src^='data:image/png']")
    counter.fill("#queue-list textarea.write-ins", "张三")
    screenshot(counter, "station-write-in")
    counter.locator("#queue-list form.page-card button[type=submit]").click()
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    scrutineer = teller(new_page, base, s.scrutineer)
    scrutineer.fill("#queue-list textarea.write-ins", " 张三")
    scrutineer.locator("#queue-list form.page-card button[type=submit]").click()
    scrutineer.wait_for_selector("#queue-list >> text=没有待裁定的选票")
    api.call("POST", f"/api/admin/items/{item}/close")
    result = api.call("POST", f"/api/admin/items/{item}/tally")[1]
    assert result["write_ins"] == [{"name": "张三", "for": 1, "elected": False}]
