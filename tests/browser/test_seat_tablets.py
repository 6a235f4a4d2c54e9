"""The seat terminal page (/seat) on tablets: real headless Chromium (Debian's, through Playwright)
against a real server: check-in, waiting, the ballot (livelihood projects with places; a
single-question resolution), confirmation, receipt, already voted, vote closed, a network failure
retried with the very same submission, set-up by pasting a credential, the reset control, a
runoff round and a time limit. Screenshots go to build/screenshots/seat-*.png."""
from __future__ import annotations

import json
import re

import pytest
from browser_support import SCREENSHOTS, screenshot
from helpers_live import Api, setup_sitting, tablets_poll, vote
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from terminal_support import opened_casts

from ballot_service.config import Settings
from ballot_service.domain.tablet_setup import reset_code
from ballot_service.formats.ballot_set import receipt_code

pytestmark = [pytest.mark.slow, pytest.mark.browser]

RE_RECEIPT = re.compile(r"^[0-9A-F]{16}$")
PROJECTS = [{"key": f"p{i}", "title": title, "description": desc} for i, (title, desc) in enumerate([
    ("城区老旧小区加装电梯", "为 60 个老旧小区加装电梯 320 部"),
    ("中小学食堂提质改造", "改造 45 所学校食堂，惠及学生 5.2 万人"),
    ("社区居家养老服务中心", "新建 30 个街道居家养老服务中心"),
    ("背街小巷道路整治", "整治背街小巷 120 条"),
    ("公共充电桩建设", "新建公共充电桩 5000 个"),
    ("城乡供水一体化", "新增农村集中供水覆盖 8 万人"),
])]


def screen(page, name: str, timeout: float = 15_000):
    loc = page.locator(f'section[data-screen="{name}"]')
    loc.wait_for(state="visible", timeout=timeout)
    return loc


def open_tablet(new_page, base_url: str, credential: str, query: str = ""):
    page = new_page(viewport=(1280, 800))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(f"{base_url}/seat{query}#credential={credential}")
    return page


def storage(page) -> dict:
    return page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")


def check_in(page, member_no: str, card: bool = False):
    screen(page, "checkin")
    if card:  # a card reader types the code into the focused field and presses Enter
        page.click("#checkin-card")
        page.keyboard.type(member_no)
        page.keyboard.press("Enter")
    else:
        page.fill("#checkin-member", member_no)
        page.click("#checkin-form button[type=submit]")
    screen(page, "waiting")


def mark(page, key: str, choice: str):
    page.click(f'button.mark[data-key="{key}"][data-mark="{choice}"]')


def pressed(page, key: str) -> str | None:
    got = page.locator(f'button.mark[data-key="{key}"][aria-pressed="true"]')
    return got.get_attribute("data-mark") if got.count() else None


def no_overflow(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def casts_in_db(site) -> dict[str, dict]:
    """{receipt code: marks} of every stored cast; an open secret vote's are sealed
    (domain/cast_staging.py) and opened with the server's keys."""
    settings = Settings.from_env(site.env)
    engine = create_engine(settings.database_url)
    try:
        with Session(engine) as db:
            return {receipt_code(c.receipt): dict(c.marks) for c in opened_casts(db, settings)}
    finally:
        engine.dispose()


def result_of(api: Api, sitting_id: int, key: str = "item1") -> dict:
    _, results = api.call("GET", f"/api/admin/sessions/{sitting_id}/results")
    return next(i for i in results["items"] if i["key"] == key)


def test_livelihood_ballot_on_three_tablets(new_page, live_site, db_url):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=3, present=0, open_vote=False, kind="livelihood_projects",
                      candidates=PROJECTS, places=3)
    a, b, c = (open_tablet(new_page, base, s.creds[no]) for no in ("M0001", "M0002", "M0003"))

    # Set-up link: the credential moves to localStorage and leaves the address bar.
    screen(a, "checkin")
    assert "#" not in a.url and "credential" not in a.url
    assert storage(a)["ballotSeat.credential"] == s.creds["M0001"]
    assert a.locator("#seat-name").inner_text() == "席位M0001"
    assert "第一次会议" in a.locator("#session-name").inner_text()
    a.fill("#checkin-member", "M0001")
    screenshot(a, "seat-checkin")

    # 1. check in → 2. waiting, with the attendance
    a.click("#checkin-form button[type=submit]")
    waiting = screen(a, "waiting")
    assert "当前没有进行中的表决" in waiting.inner_text()
    assert "代表M0001，签到成功" in a.locator("#checkin-done").inner_text()
    assert waiting.locator(".att-members").inner_text() == "3"
    assert waiting.locator(".att-present").inner_text() == "1"
    assert "代表M0001" in a.locator("#member-name").inner_text()
    screenshot(a, "seat-waiting")
    # A wrong number is refused on the check-in screen.
    check_in(b, "M0002", card=True)
    c.fill("#checkin-member", "X9999")
    c.click("#checkin-form button[type=submit]")
    c.locator("#checkin-error").wait_for(state="visible")
    assert "未找到" in c.locator("#checkin-error").inner_text()
    check_in(c, "M0003")

    # The operator opens the vote: each tablet shows its ballot within a few seconds.
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    ballot = screen(a, "ballot", timeout=10_000)
    assert a.locator("#ballot-title").inner_text() == "表决事项 item1"
    assert a.locator("#ballot-mode").inner_text() == "无记名投票"
    assert a.locator("#ballot-round").is_hidden()  # round 1: no 第N轮
    assert a.locator("li.cand").count() == len(PROJECTS)
    assert "为 60 个老旧小区加装电梯" in ballot.inner_text()
    assert a.locator('button.mark[data-mark="against"]').first.inner_text() == "不赞成"
    assert a.locator("#ballot-count").inner_text() == "已赞成 0 项，最多可赞成 3 项"
    for btn in a.locator("button.mark").all()[:3] + [a.locator("#ballot-submit")]:
        box = btn.bounding_box()
        assert box["height"] >= 64 and box["width"] >= 100, box

    # Marks: toggling, and a 4th 赞成 on a 3-place ballot is prevented (it would void the ballot).
    mark(a, "p0", "for")
    mark(a, "p0", "for")
    assert pressed(a, "p0") is None  # tapping again clears
    for key in ("p0", "p1", "p3"):
        mark(a, key, "for")
    mark(a, "p2", "against")
    assert a.locator("#ballot-count").inner_text() == "已赞成 3 项，已达上限 3 项"
    mark(a, "p5", "abstain")
    mark(a, "p4", "for")
    assert pressed(a, "p4") is None
    assert "最多只能赞成 3 项" in a.locator("#ballot-error").inner_text()
    assert no_overflow(a)
    screenshot(a, "seat-ballot")
    # What the deputy sees on the 1280×800 screen: the submit bar stays in view while scrolling,
    # and at the end it no longer hides the last line.
    a.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    a.screenshot(path=str(SCREENSHOTS / "seat-ballot-bottom.png"))  # the viewport, not the full page
    last, foot = a.locator("li.cand").last.bounding_box(), a.locator(".ballot-foot").first.bounding_box()
    assert last["y"] + last["height"] <= foot["y"] + 1 and foot["y"] + foot["height"] <= 800 + 1
    mark(a, "p5", "abstain")
    mark(a, "p5", "abstain")  # any accepted tap clears the message
    assert a.locator("#ballot-error").is_hidden()

    # 4. confirmation, back to change, confirmation again
    a.click("#ballot-submit")
    confirm = screen(a, "confirm")
    rows = [r.inner_text().split("\t") for r in confirm.locator("tbody tr").all()]
    assert [r[-1].strip() for r in rows] == ["赞成", "赞成", "不赞成", "赞成", "弃权（未选择）", "弃权"]
    screenshot(a, "seat-confirm")
    a.click("#confirm-back")
    screen(a, "ballot")
    assert pressed(a, "p1") == "for" and pressed(a, "p2") == "against"
    mark(a, "p1", "for")  # clear p1: 2 for now
    mark(a, "p1", "abstain")
    a.click("#ballot-submit")
    screen(a, "confirm")
    sent = []
    a.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/api/terminal/cast") else None)
    a.click("#confirm-send")

    # 5. receipt; nothing of the marks stays on the tablet
    receipt = screen(a, "receipt", timeout=10_000)
    # The receipt is the tablet's H(r), not a function of serial and marks (issue #15, finding 2).
    assert re.fullmatch(r"[0-9a-f]{64}", sent[0]["receipt_hash"])
    assert a.locator("#receipt-code").get_attribute("data-code") == sent[0]["receipt_hash"][:16].upper()
    assert "投票成功" in receipt.inner_text()
    code_a = a.locator("#receipt-code").get_attribute("data-code")
    assert RE_RECEIPT.match(code_a)
    assert a.locator("#receipt-code").inner_text() == " ".join(code_a[i:i + 4] for i in range(0, len(code_a), 4))
    screenshot(a, "seat-receipt")
    kept = storage(a)
    assert set(kept) <= {"ballotSeat.credential", "ballotSeat.receipt", "ballotSeat.lastVote"}
    assert json.loads(kept["ballotSeat.receipt"]) == {"key": f"{s.sitting_id}:{s.item_id}:1", "receipt": code_a}
    assert not any(re.search(r"\b(for|against|abstain)\b|BS1\.", v) for v in kept.values()), kept
    assert a.locator("#ballot-list li").count() == 0 and a.locator("#confirm-list tr").count() == 0

    # Second tablet votes, reloads: 已投票 with its receipt.
    screen(b, "ballot", timeout=10_000)
    mark(b, "p0", "for")
    mark(b, "p2", "for")
    mark(b, "p5", "against")
    b.click("#ballot-submit")
    screen(b, "confirm")
    b.click("#confirm-send")
    screen(b, "receipt", timeout=10_000)
    code_b = b.locator("#receipt-code").get_attribute("data-code")
    b.reload()
    voted = screen(b, "voted", timeout=10_000)
    assert "已投票" in voted.inner_text() and b.locator("#voted-receipt").get_attribute("data-code") == code_b
    screenshot(b, "seat-voted")
    # Storage lost (another browser on the tablet): no second ballot is issued for this seat (the
    # server signs once per member per round), and the page says so, not "no vote is open".
    b.evaluate("() => ['receipt', 'lastVote', 'ballot', 'pending'].forEach(k => localStorage.removeItem('ballotSeat.' + k))")
    b.reload()
    waiting = screen(b, "waiting", timeout=10_000)
    assert b.locator("#issued-note").is_visible() and b.locator("#waiting-text").is_hidden()
    assert "不能再次领取" in waiting.inner_text() and "当前没有进行中的表决" not in waiting.inner_text()
    screenshot(b, "seat-ballot-already-issued")

    # Third tablet has its ballot on screen when the operator closes the vote.
    screen(c, "ballot", timeout=10_000)
    mark(c, "p0", "for")
    c.click("#ballot-submit")
    screen(c, "confirm")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    c.click("#confirm-send")
    closed = screen(c, "closed", timeout=10_000)
    assert "表决已结束" in closed.inner_text() and "表决事项 item1" in closed.inner_text()
    assert c.locator("#closed-late").is_visible()
    screenshot(c, "seat-closed")
    # The first tablet, on its receipt screen, notices the close by itself; the receipt is dropped.
    screen(a, "closed", timeout=10_000)
    assert "ballotSeat.receipt" not in storage(a)
    c.reload()
    screen(c, "closed", timeout=10_000)

    # The receipts match the casts the server counted.
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    res = result_of(api, s.sitting_id)
    # refused: tablet c's late cast (tablet b got no second ballot to send)
    assert res["returned"] == 2 and res["refused"] == 1 and res["not_voted"] == 1 and res["invalid"] == 0
    counts = {cand["key"]: (cand["for"], cand["against"], cand["abstain"]) for cand in res["candidates"]}
    assert counts == {"p0": (2, 0, 0), "p1": (0, 0, 2), "p2": (1, 1, 0), "p3": (1, 0, 1),
                      "p4": (0, 0, 2), "p5": (0, 1, 1)}
    stored = casts_in_db(live_site)
    assert set(stored) == {code_a, code_b}
    assert stored[code_a] == {"p0": "for", "p1": "abstain", "p2": "against", "p3": "for", "p4": "abstain",
                              "p5": "abstain"}
    for page in (a, b, c):
        assert page.js_errors == []


def test_resolution_named_vote_and_a_retry_after_a_lost_answer(new_page, live_site, db_url):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=3, present=0, open_vote=False, kind="resolution", secret=False)
    a = open_tablet(new_page, base, s.creds["M0001"])
    b = open_tablet(new_page, base, s.creds["M0002"], query="?lang=en")
    check_in(a, "M0001")
    check_in(b, "M0002")
    assert "No vote is open" in b.locator('section[data-screen="waiting"]').inner_text()
    api.call("POST", f"/api/admin/items/{s.item_id}/open")

    ballot = screen(a, "ballot", timeout=10_000)
    assert a.locator("#ballot-mode").inner_text() == "记名投票"
    assert "记名投票：您的选择将与您的姓名一同记录" in ballot.inner_text()
    assert a.locator("li.cand").count() == 1 and "本议案" in a.locator("li.cand").inner_text()
    assert a.locator("#ballot-count").is_hidden()  # no places on a resolution
    assert [x.inner_text() for x in a.locator("button.mark").all()] == ["赞成", "反对", "弃权"]
    screenshot(a, "seat-ballot-resolution")
    mark(a, "motion", "for")
    a.click("#ballot-submit")
    screen(a, "confirm")

    # The server stores the cast but the answer is lost on the way back: the page offers a
    # retry, which sends the very same body and gets the same receipt (200, repeated).
    sent: list[str] = []
    answers: list = []

    def lose_first_answer(route):
        sent.append(route.request.post_data)
        if len(sent) == 1:
            route.fetch()  # reaches the server…
            route.abort("connectionreset")  # …but the tablet never hears back
        else:
            route.continue_()

    a.route("**/api/terminal/cast", lose_first_answer)
    a.on("response", lambda r: answers.append(r) if r.url.endswith("/api/terminal/cast") else None)
    a.click("#confirm-send")
    err = screen(a, "neterror", timeout=10_000)
    assert "网络故障" in err.inner_text()
    screenshot(a, "seat-neterror")
    a.click("#neterror-retry")
    screen(a, "receipt", timeout=10_000)
    code_a = a.locator("#receipt-code").get_attribute("data-code")
    assert len(sent) == 2 and sent[0] == sent[1]
    assert json.loads(sent[0])["marks"] == {"motion": "for"}
    assert len(answers) == 1 and answers[0].status == 200
    assert answers[0].json() == {"serial": answers[0].json()["serial"], "receipt": code_a, "repeated": True}
    a.unroute("**/api/terminal/cast")

    # The English tablet votes Against.
    screen(b, "ballot", timeout=10_000)
    assert b.locator("#ballot-mode").inner_text() == "Named vote"
    mark(b, "motion", "against")
    b.click("#ballot-submit")
    assert "Against" in screen(b, "confirm").inner_text()
    b.click("#confirm-send")
    assert "Your vote was cast" in screen(b, "receipt", timeout=10_000).inner_text()
    screenshot(b, "seat-receipt-en")

    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    screen(b, "closed", timeout=10_000)
    assert "The vote is closed" in b.locator('section[data-screen="closed"]').inner_text()
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    res = result_of(api, s.sitting_id)
    motion = res["candidates"][0]
    assert (motion["for"], motion["against"], motion["abstain"]) == (1, 1, 0)
    assert res["returned"] == 2 and res["not_voted"] == 0 and res["passed"] is False
    stored = casts_in_db(live_site)
    assert len(stored) == 2 and stored[code_a] == {"motion": "for"}
    assert a.js_errors == [] and b.js_errors == []


def test_setup_by_paste_late_check_in_and_reset(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=3, present=0, open_vote=False)
    page = new_page(viewport=(1280, 800))
    page.goto(base + "/seat")
    setup = screen(page, "setup")
    assert page.locator("#reset-open").is_hidden()
    page.fill("#setup-credential", "wrong-credential")
    page.click("#setup-form button[type=submit]")
    page.locator("#setup-error").wait_for(state="visible")
    assert "凭据无效" in setup.inner_text()
    assert "ballotSeat.credential" not in storage(page)
    page.fill("#setup-credential", s.creds["M0001"])
    screenshot(page, "seat-setup")
    page.click("#setup-form button[type=submit]")
    screen(page, "checkin")

    # Checked in after the vote opened: no ballot for this round, and the page says so.
    for no in ("M0002", "M0003"):
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=s.creds[no])
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    check_in(page, "M0001")
    page.locator("#noballot-note").wait_for(state="visible", timeout=10_000)
    # 实到 of the vote, fixed at its opening, as the presiding screen shows it (#17 item 5).
    assert page.locator('section[data-screen="waiting"] .att-present').inner_text() == "2"
    assert "当前没有进行中的表决" not in page.locator('section[data-screen="waiting"]').inner_text()
    # No reset while a vote is open (#17 item 4).
    assert page.locator("#reset-open").is_hidden()
    api.call("POST", f"/api/admin/items/{s.item_id}/close")

    # Reset needs a confirmation and the secretariat's code.
    page.locator("#reset-open").wait_for(state="visible", timeout=10_000)
    page.click("#reset-open")
    page.locator("#reset-dialog").wait_for(state="visible")
    screenshot(page, "seat-reset")
    page.click("#reset-cancel")
    assert page.locator("#reset-dialog").is_hidden()
    assert storage(page)["ballotSeat.credential"] == s.creds["M0001"]
    page.click("#reset-open")
    page.fill("#reset-code", "not-the-code")
    page.click("#reset-confirm")
    page.locator("#reset-error").wait_for(state="visible")
    assert "重置码不正确" in page.locator("#reset-error").inner_text()
    assert storage(page)["ballotSeat.credential"] == s.creds["M0001"]
    page.fill("#reset-code", reset_code(live_site.env["BALLOT_SECRET_KEY"], s.sitting_id))
    page.click("#reset-confirm")
    screen(page, "setup")
    assert not any(k.startswith("ballotSeat.") for k in storage(page))
    page.reload()
    screen(page, "setup")


def test_runoff_round_is_marked_and_limited_to_its_places(new_page, live_site, db_url):
    """Round 1 over the API ends in a three-way tie at the cut-off (RULES §5.1); the tablet shows
    round 2 as 第2轮 with the remaining places and the tied projects only."""
    api, base = live_site.api, live_site.base_url
    cands = PROJECTS[:3]
    s = setup_sitting(api, members=5, present=5, open_vote=True, kind="livelihood_projects",
                      candidates=cands, places=2)
    round1 = {"M0001": ("p0", "p1"), "M0002": ("p0", "p2"), "M0003": ("p0", "p1"), "M0004": ("p1", "p2"),
              "M0005": ("p2",)}
    for no, fors in round1.items():
        vote(api, s.creds[no], {k: "for" for k in fors})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, r1 = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert r1["status"] == "runoff_pending" and r1["runoff_places"] == 2 and len(r1["tied"]) == 3

    page = open_tablet(new_page, base, s.creds["M0001"])
    screen(page, "waiting")  # checked in over the API already; round 1 is over
    tablets_poll(api, [s.creds[no] for no in s.present])  # voted by API: still online (helpers_live)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    screen(page, "ballot", timeout=10_000)
    assert page.locator("#ballot-round").inner_text() == "第2轮（再次投票）"
    assert page.locator("li.cand").count() == 3
    assert page.locator("#ballot-count").inner_text() == "已赞成 0 项，最多可赞成 2 项"
    for key in ("p0", "p1", "p2"):
        mark(page, key, "for")
    assert pressed(page, "p2") is None and page.locator("#ballot-error").is_visible()
    screenshot(page, "seat-ballot-runoff")
    page.click("#ballot-submit")
    assert "第2轮" in screen(page, "confirm").inner_text()
    page.click("#confirm-send")
    screen(page, "receipt", timeout=10_000)
    code = page.locator("#receipt-code").get_attribute("data-code")
    assert json.loads(storage(page)["ballotSeat.receipt"])["key"] == f"{s.sitting_id}:{s.item_id}:2"
    assert casts_in_db(live_site)[code] == {k: "for" if k in ("p0", "p1") else "abstain" for k in r1["tied"]}
    assert page.js_errors == []


def test_time_limit_counts_down_and_closes_the_ballot(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "timed", "kind": "resolution", "title": "限时表决", "time_limit_s": 6})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    page = open_tablet(new_page, base, s.creds["M0001"])
    screen(page, "ballot", timeout=10_000)
    assert re.fullmatch(r"剩余 0:0[0-6]", page.locator("#ballot-timer").inner_text())
    mark(page, "motion", "for")
    closed = screen(page, "closed", timeout=12_000)
    assert "限时表决" in closed.inner_text()
    assert page.locator("li.cand").count() == 0  # the unsent choice is gone
    assert page.js_errors == []


def test_another_seats_deputy_is_refused_with_the_reason_and_the_tablet_keeps_its_credential(new_page, live_site):
    """A mistyped number that belongs to another seat's deputy is refused (403) with the reason;
    the tablet is not sent back to 设置本终端 (its credential is still good)."""
    s = setup_sitting(live_site.api, members=3, present=0, open_vote=False)
    page = open_tablet(new_page, live_site.base_url, s.creds["M0001"])
    screen(page, "checkin")
    page.fill("#checkin-member", "M0002")
    page.click("#checkin-form button[type=submit]")
    page.locator("#checkin-error").wait_for(state="visible", timeout=10_000)
    said = page.inner_text("#checkin-error")
    # Only that the number is not this seat's: a tablet must not map numbers to names.
    assert "M0002" in said and "不属于本座位" in said and "M0001" in said, said
    assert "代表M0002" not in said and "代表M0001" not in said, said  # the roster names (helpers_live)
    assert page.locator('section[data-screen="checkin"]').is_visible()
    assert storage(page).get("ballotSeat.credential")
    screenshot(page, "seat-checkin-other-seats-deputy")
    # A 5,000-character number: a short error that does not echo it, and no request echo either.
    page.evaluate("() => { const f = document.getElementById('checkin-member'); f.removeAttribute('maxlength'); }")
    page.fill("#checkin-member", "9" * 5000)
    page.click("#checkin-form button[type=submit]")
    page.wait_for_function("document.getElementById('checkin-error').textContent.includes('格式')", timeout=10_000)
    said = page.inner_text("#checkin-error")
    assert "9" * 20 not in said and len(said) < 120, said
    screenshot(page, "seat-checkin-overlong-number")
    check_in(page, "M0001")  # the right number still checks in
