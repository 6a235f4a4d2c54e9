"""An election (issue 20) in real headless Chromium against a real server: a deputy writes in
another person on the tablet by searching the roster (the listed candidates not offered; a
person over the seats refused on the tablet with the reason), a tie at the last seat re-voted
among the tied, a 另行选举 started from the console in one step, a paper election whose
over-selected ballot the station takes and the tally counts invalid, then the presiding
screen, the record PDF and the 宣布稿 looked at. Screenshots: build/screenshots/election-*.png."""
from __future__ import annotations

import subprocess

import pytest
from browser_support import SCREENSHOTS, login, screenshot
from helpers_live import DISPLAY_OPERATOR, OPERATOR, setup_sitting, tablets_poll, vote
from test_seat_tablets import check_in, mark, open_tablet, result_of, screen

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAMES = ["丁一", "马力", "王芳", "王磊"]


def _election(api, sid, key, places, cands, office="committee_member"):
    spec = {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": places,
            "candidates": [{"key": k, "title": t} for k, t in cands]}
    return api.call("POST", f"/api/admin/sessions/{sid}/items", spec)[1]["id"]


def _record_pdf(console, base: str, name: str) -> None:
    """The console's 打印记录（PDF） link serves the record as a PDF: kept, and drawn as PNG pages,
    in build/screenshots/ under `name`."""
    link = console.locator("a", has_text="打印记录（PDF）").get_attribute("href")
    pdf = console.request.get(base + link)
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.pdf").write_bytes(pdf.body())
    subprocess.run(["pdftoppm", "-r", "70", "-png", str(SCREENSHOTS / f"{name}.pdf"), str(SCREENSHOTS / name)],
                   check=True)


def test_election_with_write_in_tie_revote_and_another(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=7, present=6, open_vote=False)
    tablet = open_tablet(new_page, base, s.creds["M0007"])
    check_in(tablet, "M0007")

    # 1. 委员 2 seats, 3 candidates. Six ballots by API, the seventh on the tablet with a write-in.
    item = _election(api, s.sitting_id, "wy", 2, [("A", NAMES[0]), ("B", NAMES[1]), ("C", NAMES[2])])
    api.call("POST", f"/api/admin/items/{item}/open")
    for no, marks in zip(s.members, [{"A": "for", "B": "for"}] * 2 + [{"A": "for", "C": "for"}] * 2
                         + [{"B": "for", "C": "for"}] * 2):
        vote(api, s.creds[no], marks)
    screen(tablet, "ballot")
    assert tablet.locator("#write-in").is_visible()
    assert "常委会组成人员须从代表中选举" in tablet.locator("#write-in-note").inner_text()
    assert tablet.locator("#write-in-typed").is_hidden()  # deputies only: no typed name
    mark(tablet, "A", "for")
    tablet.fill("#write-in-q", "代表M000")
    tablet.locator("button.write-in-pick").first.wait_for()
    picks = tablet.locator("button.write-in-pick").all_inner_texts()
    assert any("代表M0003" in p for p in picks)
    tablet.locator("button.write-in-pick", has_text="代表M0003").click()
    assert "另选他人：代表M0003" in tablet.locator("#write-in-chosen").inner_text()
    # A third person (2 seats) is refused on the tablet, with the reason.
    mark(tablet, "B", "for")
    err = tablet.locator("#ballot-error")
    err.wait_for(state="visible")
    assert "赞成与另选他人合计不得多于应选 2 名" in err.inner_text()
    screenshot(tablet, "election-tablet-write-in")
    tablet.click("#ballot-submit")
    confirm = screen(tablet, "confirm")
    assert "另选他人：代表M0003" in confirm.inner_text()
    screenshot(tablet, "election-tablet-confirm")
    tablet.click("#confirm-send")
    screen(tablet, "receipt")
    api.call("POST", f"/api/admin/items/{item}/close")
    first = api.call("POST", f"/api/admin/items/{item}/tally")[1]
    # A 5 (4 + the tablet), B 4, C 4: 2*for > 7 for all three; B and C tie at the last seat.
    assert first["write_ins"] == [{"name": "M0003", "for": 1, "elected": False}]
    assert first["elected"] == ["A"] and first["tied"] == ["B", "C"]

    # 2. The re-vote among the tied, on the tablet too (no write-ins offered in a re-vote).
    api.call("POST", f"/api/admin/items/{item}/open")
    for no, marks in zip(s.members, [{"B": "for"}] * 4 + [{"C": "for"}] * 2):
        vote(api, s.creds[no], marks)
    screen(tablet, "ballot")
    assert tablet.locator("#write-in").is_hidden()
    assert tablet.locator("li.cand").count() == 2
    mark(tablet, "C", "for")
    tablet.click("#ballot-submit")
    screen(tablet, "confirm")
    tablet.click("#confirm-send")
    screen(tablet, "receipt")
    api.call("POST", f"/api/admin/items/{item}/close")
    assert api.call("POST", f"/api/admin/items/{item}/tally")[1]["elected"] == ["B"]
    assert result_of(api, s.sitting_id, "wy")["elected"] == ["A", "B"]

    # 3. 主任 1 seat: nobody has more than half; the console starts the 另行选举 in one step.
    # The draft is edited in the console first (差额 checked on save): nominees added, one taken off.
    head = _election(api, s.sitting_id, "zr", 1, [("X", NAMES[3])], office="principal")
    console = new_page(viewport=(1280, 1000))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{head}")
    console.click("#edit-item summary")
    assert console.locator("#edit-item select[name=office]").input_value() == "principal"
    console.fill("#edit-item textarea[name=candidates]", f"X | {NAMES[3]} |\nY | 石静 |\nZ | 张华 |")
    console.click("#edit-save")
    console.wait_for_load_state()
    # 正职 takes exactly one more candidate than seats: three nominees make round 1 a 预选
    assert "已修改表决事项" in console.content() and "第1轮 预选" in console.content()
    console.click("#edit-item summary")
    console.fill("#edit-item textarea[name=candidates]", f"X | {NAMES[3]} |\nY | 石静 |")
    screenshot(console, "election-console-edit")
    console.click("#edit-save")
    console.wait_for_load_state()
    assert "第1轮 第一次投票" in console.content()
    tablets_poll(api, [s.creds[no] for no in s.members])  # the API's "tablets" are still there
    api.call("POST", f"/api/admin/items/{head}/open")
    for no, marks in zip(s.members, [{"X": "for"}] * 3 + [{"Y": "for"}] * 3):
        vote(api, s.creds[no], marks)
    api.call("POST", f"/api/admin/items/{head}/close")
    assert api.call("POST", f"/api/admin/items/{head}/tally")[1]["unfilled"] == 1
    later = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": "第二次会议"})[1]["id"]
    console.goto(f"{base}/console/items/{head}")
    assert "尚缺1名" in console.locator("#another-form").inner_text()
    # held now (the default) or saved for the body's later sitting, chosen in the same step
    assert console.locator("#another-sitting option").all_inner_texts() == ["本次会议", "下次会议：第二次会议"]
    assert console.locator(f'#another-sitting option[value="{later}"]').count() == 1
    screenshot(console, "election-console-another")
    console.click("#action-another")
    console.wait_for_load_state()
    assert "已发起另行选举" in console.content()
    tablets_poll(api, [s.creds[no] for no in s.members])
    console.click("#action-open")
    console.wait_for_load_state()
    for no, marks in zip(s.members, [{"X": "for"}] * 4 + [{"Y": "for"}] * 2):
        vote(api, s.creds[no], marks)
    # the tablet may still show round 1 (not voted there) until it polls: wait for the 另行选举
    tablet.locator("#ballot-round", has_text="另行选举").wait_for()
    screen(tablet, "ballot")
    assert "另选" in tablet.locator("#write-in h2").inner_text()
    mark(tablet, "X", "for")
    tablet.click("#ballot-submit")
    screen(tablet, "confirm")
    tablet.click("#confirm-send")
    screen(tablet, "receipt")
    api.call("POST", f"/api/admin/items/{head}/close")
    console.goto(f"{base}/console/items/{head}")
    console.click("#action-tally")
    console.wait_for_load_state()
    console.click("#action-record")
    console.wait_for_load_state()
    final = result_of(api, s.sitting_id, "zr")
    assert final["elected"] == ["X"] and final["another"]["elected"] == ["X"] and final["unfilled"] == 0
    announce = console.content()
    assert "本次选举应到代表7人" in announce and "另行选举：" in announce and "王磊当选为zr" in announce
    screenshot(console, "election-console-announcement")

    # 4. The presiding screen, once published; the record PDF as pages.
    console.click("#action-publish")
    console.wait_for_load_state()
    screen_page = new_page(viewport=(1920, 1080))
    login(screen_page, base, DISPLAY_OPERATOR)
    screen_page.goto(f"{base}/display/{s.sitting_id}")
    row = screen_page.locator('#r-tables tr[data-key="X"]')
    row.wait_for()
    assert "另行选举" in screen_page.locator("#r-round").inner_text()
    assert "当选" in row.inner_text()
    assert "应选1名，当选1名" in screen_page.locator("#r-notes").inner_text()
    # an election is 选举结果 and its threshold is what elects, not what "passes"
    assert screen_page.locator("#r-tag").inner_text() == "选举结果"
    assert "当选需得票 ≥ 4" in screen_page.locator("#r-notes").inner_text()
    assert "通过" not in screen_page.locator("#view-result").inner_text()
    assert screen_page.locator("#r-rec-title").inner_text().startswith("选举结果已签署")
    screenshot(screen_page, "election-screen")
    _record_pdf(console, base, "election-record")
    assert not tablet.js_errors


def test_a_paper_election_counts_an_over_selected_ballot_invalid(new_page, live_site):
    """选举法 art. 44: a paper ballot choosing more persons than seats is invalid; the station
    takes it (it is a returned ballot), the tally counts it 无效, the console and the record say so."""
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=5, open_vote=False)
    spec = {"key": "fzr", "kind": "election", "title": "选举副主任", "office": "vice", "places": 1,
            "channel": "paper", "candidates": [{"key": "A", "title": NAMES[0]}, {"key": "B", "title": NAMES[1]}]}
    item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"]
    texts = api.call("POST", f"/api/admin/items/{item}/paper-ballots", {"count": 5})[1]["ballots"]
    api.call("POST", "/api/station/hand-out", {"ballots": texts}, credential=s.station)
    api.call("POST", f"/api/admin/items/{item}/open")
    papers = [{"A": "for"}] * 3 + [{"B": "for"}, {"A": "for", "B": "for"}]  # the last: 2 chosen for 1 seat
    for text, marks in zip(texts, papers):
        assert api.call("POST", "/api/station/paper", {"ballot": text, "marks": marks},
                        credential=s.scrutineer)[0] == 201
    api.call("POST", f"/api/admin/items/{item}/close")
    console = new_page(viewport=(1280, 1000))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{item}")
    console.click("#action-tally")
    console.wait_for_load_state()
    page = console.content()
    assert "收回 5" in page and "有效 4" in page and "无效 1" in page
    result = result_of(api, s.sitting_id, "fzr")
    assert (result["returned"], result["valid"], result["invalid"]) == (5, 4, 1)
    assert result["elected"] == ["A"]  # 3 of 5 deputies: more than half
    screenshot(console, "election-paper-over-selected")
    console.click("#action-record")
    console.wait_for_load_state()
    announce = console.content()
    assert "收回5张" in announce.replace(" ", "") and "无效票1张" in announce.replace(" ", "")
    screenshot(console, "election-paper-announcement")
    _record_pdf(console, base, "election-paper-record")
