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
from browser_support import screenshot
from helpers_live import setup_sitting
from station_support import blank_pages, mark, write_tiff

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
    scrutineer = teller(new_page, base, s.scrutineer)
    decide(counter, "for")
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    decide(scrutineer, "for")                                      # agreed: counted
    one_left = "document.querySelectorAll('#queue-list form.page-card').length === 1"
    scrutineer.wait_for_function(one_left)
    counter.wait_for_function(one_left)                            # its page refreshes by itself
    decide(counter, "abstain")
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    decide(scrutineer, "void")                                     # they disagree
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

    # --- the secretariat closes, tallies and signs; the tellers make the count report ----------
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["returned"] == 6 and result["rescanned"] == 1 and result["refused"] == 0
    assert result["candidates"][0]["for"] == 4 and result["candidates"][0]["abstain"] == 1, result
    _, record = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    assert record
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
    enter(counter)
    counter.wait_for_function("document.getElementById('sheet-status').textContent.indexOf('待另一名') >= 0")
    scrutineer = teller(new_page, base, s.scrutineer)
    scrutineer.wait_for_selector(f"#sheet-items form[data-item='{s.item_id}'] >> text=已录入，待确认")
    enter(scrutineer)
    scrutineer.wait_for_selector(f"#sheet-items form[data-item='{s.item_id}'] >> text=已确认")
    screenshot(scrutineer, "station-tally-sheet")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["candidates"][0]["for"] == 3 and result["status"] == "decided"
