"""What the secretariat and a deputy see about the tablets themselves (issue #17 items 2, 4, 5),
in real headless Chromium: opening a vote while a present deputy's tablet is not set up is
refused on the item page, which names who is not ready and asks for a reason; the sitting page
lists each tablet (set up, last seen, checked-in deputy) and the reset code; after 闭会 a tablet
says the sitting is closed. Screenshots: build/screenshots/console-open-*.png,
console-terminal-list.png, seat-sitting-closed.png."""
from __future__ import annotations

import pypdfium2 as pdfium
import pytest
from browser_support import SCREENSHOTS, login, screenshot
from helpers_live import OPERATOR, blind_ballot, create_item, publish, setup_sitting, vote

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def checked_in_tablet(new_page, base: str, credential: str, member_no: str):
    """A tablet set up from its link, with `member_no` checked in at it (waiting screen)."""
    tab = new_page((1280, 800))
    tab.goto(f"{base}/seat#credential={credential}")
    tab.locator('section[data-screen="checkin"]').wait_for(state="visible")
    tab.fill("#checkin-member", member_no)
    tab.click("#checkin-form button[type=submit]")
    tab.locator('section[data-screen="waiting"]').wait_for(state="visible")
    return tab


def test_opening_without_ready_tablets_needs_a_reason_and_the_tablets_follow_the_close(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=4, present=0, open_vote=False)
    tab = checked_in_tablet(new_page, base, s.creds["M0001"], "M0001")
    for no in ("M0002", "M0003"):
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=s.creds[no])
    # M0004 is checked in by hand: the seat tablet was never set up.
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0004"], "status": "present"})

    op = new_page((1366, 900))
    login(op, base, OPERATOR)
    op.goto(f"{base}/console/sessions/{s.sitting_id}#terminals")
    row = op.locator(f'tr[data-terminal="{s.terminal_ids["M0001"]}"]')
    assert "已设置" in row.inner_text() and "秒前" in row.inner_text() and "代表M0001" in row.inner_text()
    assert "未设置" in op.locator(f'tr[data-terminal="{s.terminal_ids["M0004"]}"]').inner_text()
    code = op.inner_text("#reset-code .code")
    assert len(code) == 6 and code.isdigit()
    op.locator("#terminals").screenshot(path=str(screenshot(op, "console-terminal-list")))

    op.goto(f"{base}/console/items/{s.item_id}")
    warn = op.locator("#tablets-not-ready")
    assert "实到 4 人中只有 3 人的表决器已设置并在线" in warn.inner_text()
    assert "代表M0004（表决器 席位M0004 未设置）" in warn.inner_text()
    screenshot(op, "console-open-tablets-not-ready")
    op.fill("#open-anyway-form input[name=override_reason]", "代表M0004 平板故障，改用纸质票")
    op.click("#action-open")
    assert "表决已开始" in op.inner_text(".flash.ok")
    tab.locator('section[data-screen="ballot"]').wait_for(state="visible", timeout=15_000)
    assert tab.locator("#reset-open").is_hidden()  # never during a vote
    tab.click('button.mark[data-key="motion"][data-mark="for"]')
    tab.click("#ballot-submit")
    tab.click("#confirm-send")
    tab.locator('section[data-screen="receipt"]').wait_for(state="visible", timeout=15_000)
    assert tab.locator("#reset-open").is_hidden()

    op.once("dialog", lambda d: d.accept())
    op.click("#action-close")
    tab.locator('section[data-screen="closed"]').wait_for(state="visible", timeout=15_000)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    ended = tab.locator('section[data-screen="ended"]')
    ended.wait_for(state="visible", timeout=15_000)
    assert "本次会议已闭会" in ended.inner_text() and "第一次会议" in ended.inner_text()
    assert "下一项表决" not in ended.inner_text()
    screenshot(tab, "seat-sitting-closed")


def test_the_announcement_page_in_large_type(new_page, live_site):
    """The 宣布稿 page the presiding officer reads from, and its PDF (#17 item 8)."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=40, present=35, open_vote=True)
    for i, no in enumerate(s.present):
        if i < 33:
            vote(api, s.creds[no], {"motion": "against" if i < 2 else "abstain" if i == 2 else "for"})
        else:
            blind_ballot(api, s.creds[no])
    for action in ("close", "tally"):
        api.call("POST", f"/api/admin/items/{s.item_id}/{action}")
    publish(api, s.item_id)
    op = new_page((1366, 900))
    login(op, base, OPERATOR)
    op.goto(f"{base}/console/items/{s.item_id}")
    with op.expect_popup() as popup:
        op.click("#announcement-link")
    page = popup.value
    page.wait_for_load_state()
    lines = [ln.inner_text() for ln in page.locator(".read-line").all()]
    assert lines[-1] == "赞成30票，反对2票，弃权1票，通过。"
    assert "未按表决器2名" in lines[1]
    assert float(page.evaluate("getComputedStyle(document.querySelector('.read-line')).fontSize")[:-2]) >= 28
    screenshot(page, "announcement-page")
    pdf = op.request.get(f"{base}/console/items/{s.item_id}/announcement.pdf").body()
    pdfium.PdfDocument(pdf)[0].render(scale=1.5).to_pil().save(SCREENSHOTS / "announcement-pdf.png")


def test_an_item_is_changed_and_previewed_before_it_opens(new_page, live_site):
    """Edit, preview, reorder and delete an item in the console (#17 item 17)."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=3, present=3, open_vote=False, kind="appointment",
                      candidates=[{"key": "n1", "title": "王建国", "office": "副县长"}])
    op = new_page((1366, 900))
    login(op, base, OPERATOR)
    op.goto(f"{base}/console/items/{s.item_id}")
    op.click("#edit-item summary")
    op.fill("#edit-item input[name=title]", "任命县人民政府副县长")
    op.fill("#edit-item textarea[name=candidates]", "王建国 | 副县长\n李秀英")
    op.click("#edit-save")
    assert "第 2 行" in op.inner_text(".flash.error")
    assert op.input_value("#edit-item textarea[name=candidates]") == "王建国 | 副县长\n李秀英"  # kept
    screenshot(op, "console-item-edit-refused")
    op.fill("#edit-item textarea[name=candidates]", "王建国 | 副县长\n李秀英 | 县人民政府办公室主任")
    op.click("#edit-save")
    assert "已修改表决事项" in op.inner_text(".flash.ok")
    assert "任命县人民政府副县长" in op.inner_text("h1")
    op.click("#preview-link")
    preview = op.locator("#ballot-preview")
    assert "李秀英（拟任县人民政府办公室主任）" in preview.inner_text()
    screenshot(op, "console-item-preview")
    op.goto(f"{base}/console/sessions/{s.sitting_id}#items")
    op.once("dialog", lambda d: d.accept())
    op.goto(f"{base}/console/items/{s.item_id}")
    op.click("#edit-item summary")
    op.click("#action-delete")
    assert "已删除表决事项" in op.inner_text(".flash.ok")
    assert "还没有表决事项" in op.inner_text("#items")


def test_a_ballot_left_on_screen_notices_the_close(new_page, live_site):
    """A deputy who never votes leaves the ballot on screen: after the close the tablet says
    表决已结束 by itself and stays online, so the next vote opens without a reason."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=1, present=0, open_vote=False)
    tab = checked_in_tablet(new_page, base, s.creds["M0001"], "M0001")
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    tab.locator('section[data-screen="ballot"]').wait_for(state="visible", timeout=15_000)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    tab.locator('section[data-screen="closed"]').wait_for(state="visible", timeout=25_000)
    assert "ballotSeat.ballot" not in tab.evaluate("() => Object.keys(localStorage).join(' ')")
    tab.wait_for_timeout(4_000)  # one poll after the close: seen again
    nxt = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{nxt}/open")  # no reason needed
