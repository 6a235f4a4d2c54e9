"""A ballot set (选举票组: 主任, 副主任, 委员 on one ballot) on tablets, in real headless Chromium
against a real server: the seat page shows the three elections on one ballot screen, refuses
an over-selection in one election with its reason, takes a write-in in another, sends the
three casts at once and shows a receipt for each; the presiding screen shows every election
of the set while it is voted and after (one column each, in the ballot's order).
Screenshots: build/screenshots/ballot-set-*.png."""
from __future__ import annotations

import pytest
from browser_support import login, screenshot
from helpers_live import DISPLAY_OPERATOR, publish, setup_sitting
from test_seat_tablets import check_in, mark, open_tablet, result_of, screen

from ballot_service.crypto import tablet as tablet_client

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SET = "换届选举"
OFFICES = [("zr", "选举主任", "principal", 1, [("A", "丁一"), ("B", "马力")]),
           ("fzr", "选举副主任", "vice", 2, [("C", "王芳"), ("D", "王磊"), ("E", "石静")]),
           ("wy", "选举委员", "committee_member", 3, [("F", "张华"), ("G", "李明"), ("H", "赵强"), ("I", "孙丽")])]
API_MARKS = [{"A": "for"}, {"C": "for", "D": "for"}, {"F": "for", "G": "for", "H": "for"}]


def test_a_ballot_set_on_tablets_and_the_screen(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=5, present=4, open_vote=False)
    ids = []
    for key, title, office, places, cands in OFFICES:
        spec = {"key": key, "kind": "election", "title": title, "office": office, "places": places,
                "channel": "terminal", "ballot_set": SET, "candidates": [{"key": k, "title": t} for k, t in cands]}
        ids.append(api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"])
    seat = open_tablet(new_page, base, s.creds["M0005"])
    check_in(seat, "M0005")
    display = new_page(viewport=(1920, 1080))
    login(display, base, DISPLAY_OPERATOR)
    display.goto(f"{base}/display/{s.sitting_id}")
    api.call("POST", f"/api/admin/items/{ids[0]}/open")

    # Four deputies vote by API (the seat page's protocol), the fifth on the tablet.
    for no in s.present:
        ballots = tablet_client.take_set_ballots(api.call, s.creds[no])
        api.call("POST", "/api/terminal/cast-set", {"casts": [
            {**b, "marks": m, "retry_id": tablet_client.new_retry_id()} for b, m in zip(ballots, API_MARKS)]})
    rows = display.locator("#v-set li")
    rows.nth(2).wait_for()
    # Each row's own title cell: innerText depends on layout, and a row read as the screen
    # re-renders (each state rebuilds the list) gave its whole text on one line (CI, once).
    assert rows.locator(".s-title").all_text_contents() == ["选举主任", "选举副主任", "选举委员"]
    display.locator('#v-set li[data-key="wy"] .s-num', has_text="4/5").wait_for()
    screenshot(display, "ballot-set-screen-voting")

    screen(seat, "ballot")
    heads = seat.locator("li.set-head h2").all_inner_texts()
    assert heads == ["选举主任", "选举副主任", "选举委员"]
    assert "合印选票 · 3项选举" in seat.locator("#ballot-kind").inner_text()
    mark(seat, "A", "for")
    mark(seat, "B", "for")  # a second person for one seat: refused on the tablet, with the reason
    err = seat.locator("#ballot-error")
    err.wait_for(state="visible")
    assert "选举主任：赞成与另选他人合计不得多于应选 1 名" in err.inner_text()
    assert seat.locator('button.mark[data-key="B"][aria-pressed="true"]').count() == 0
    mark(seat, "C", "for")
    mark(seat, "E", "against")
    mark(seat, "F", "for")
    mark(seat, "G", "for")
    seat.click('button.write-in-open[data-part="2"]')  # 委员: 另选他人, a deputy from the roster
    assert "常委会组成人员须从代表中选举" in seat.locator("#write-in-note").inner_text()
    seat.fill("#write-in-q", "代表M0002")
    seat.locator("button.write-in-pick").first.wait_for()
    seat.locator("button.write-in-pick", has_text="代表M0002").click()
    assert "另选他人：代表M0002" in seat.locator('ul.write-in-chosen[data-part="2"]').inner_text()
    mark(seat, "H", "for")  # 2 for + 1 written in = 3 seats: a fourth is refused
    err.wait_for(state="visible")
    assert "选举委员：赞成与另选他人合计不得多于应选 3 名" in err.inner_text()
    counts = seat.locator(".set-count").all_inner_texts()
    assert counts == ["已赞成及另选 1 名，应选 1 名", "已赞成及另选 1 名，应选 2 名", "已赞成及另选 3 名，应选 3 名"]
    screenshot(seat, "ballot-set-tablet")
    seat.click("#ballot-submit")
    confirm = screen(seat, "confirm")
    assert confirm.locator("tr.set-head").count() == 3
    assert "另选他人：代表M0002" in confirm.inner_text()
    screenshot(seat, "ballot-set-tablet-confirm")
    seat.click("#confirm-send")
    receipt = screen(seat, "receipt")
    lines = receipt.locator(".receipt-line").all_inner_texts()
    assert [x.split("　")[0] for x in lines] == ["选举主任", "选举副主任", "选举委员"]
    assert len({x.split("　")[1] for x in lines}) == 3  # three ballots, three receipts
    screenshot(seat, "ballot-set-tablet-receipt")
    display.locator('#v-set li[data-key="wy"] .s-num', has_text="5/5").wait_for()

    api.call("POST", f"/api/admin/items/{ids[0]}/close")
    display.locator("#v-set li .sub", has_text="收回 5 张").first.wait_for()
    screenshot(display, "ballot-set-screen-closed")
    api.call("POST", f"/api/admin/items/{ids[0]}/tally")
    assert result_of(api, s.sitting_id, "zr")["elected"] == ["A"]
    assert result_of(api, s.sitting_id, "fzr")["elected"] == ["C", "D"]
    wy = result_of(api, s.sitting_id, "wy")
    assert wy["elected"] == ["F", "G", "H"] and wy["write_ins"] == [{"name": "M0002", "for": 1, "elected": False}]
    for item_id in ids:
        publish(api, item_id)
    cols = display.locator("#r-tables.set section.s-col")
    # the columns appear with the first publish; wait for the last one's result to reach the screen
    cols.filter(has_text="应选3名，当选3名").wait_for()
    for col in cols.all():
        col.locator(".s-record").wait_for()
    assert [c.get_attribute("data-key") for c in cols.all()] == ["zr", "fzr", "wy"]
    assert "应选3名，当选3名" in cols.nth(2).inner_text() and "M0002（另选他人）" in cols.nth(2).inner_text()
    assert "★ 当选" in cols.nth(0).locator('tr[data-key="A"]').inner_text()
    assert "未当选" in cols.nth(1).locator('tr[data-key="E"]').inner_text()
    # each election's own signed record under its column, not one record box for the set
    recs = [cols.nth(i).locator(".s-record").get_attribute("data-record-id") for i in range(3)]
    assert all(recs) and len(set(recs)) == 3 and display.locator("#r-record").is_hidden()
    assert all(cols.nth(i).locator(".s-qr svg").count() == 1 for i in range(3))
    assert display.evaluate("() => document.documentElement.scrollHeight <= window.innerHeight")
    screenshot(display, "ballot-set-screen-result")
    assert not seat.js_errors
