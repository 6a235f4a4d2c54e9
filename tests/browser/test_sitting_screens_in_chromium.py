"""One sitting, every kind of vote, seen by the hall (issue #17 "done when"): the presiding
screen at check-in, during a vote, counting, 待公布 and after publishing (resolution,
appointment with 拟任职务, livelihood projects), and the tablet's ballot, confirm step, receipt,
late check-in (the same 实到 as the screen) and after 闭会. Screenshots: build/screenshots/hall-*.png."""
from __future__ import annotations

import pytest
from browser_support import login, screenshot
from helpers_live import DISPLAY_OPERATOR, create_item, publish, setup_sitting, tablets_poll

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOMINEES = [{"key": "n1", "title": "王建国", "office": "副县长"},
            {"key": "n2", "title": "李秀英", "office": "县人民政府办公室主任"}]
PROJECTS = [{"key": f"p{i}", "title": t} for i, t in enumerate(["老旧小区改造", "社区食堂", "公交线路优化"], 1)]


def mode(page, name: str) -> None:
    page.wait_for_function(f"document.getElementById('display').dataset.mode === '{name}'", timeout=15_000)


def on(page, name: str, timeout: float = 15_000):
    loc = page.locator(f'section[data-screen="{name}"]')
    loc.wait_for(state="visible", timeout=timeout)
    return loc


def cast(tab, marks: dict, shot: str | None = None) -> None:
    on(tab, "ballot")
    for key, choice in marks.items():
        tab.click(f'button.mark[data-key="{key}"][data-mark="{choice}"]')
    if shot:
        screenshot(tab, f"hall-seat-ballot-{shot}")
    tab.click("#ballot-submit")
    on(tab, "confirm")
    if shot:
        screenshot(tab, f"hall-seat-confirm-{shot}")
    tab.click("#confirm-send")
    on(tab, "receipt")


def test_the_hall_sees_each_kind_of_vote(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=6, present=4, open_vote=False, kind="appointment", candidates=NOMINEES)
    hall = new_page((1920, 1080))
    login(hall, base, DISPLAY_OPERATOR)
    hall.goto(f"{base}/display/{s.sitting_id}")
    mode(hall, "checkin")
    screenshot(hall, "hall-screen-checkin")
    tabs = {}
    for no in ("M0001", "M0002", "M0003", "M0004", "M0005"):
        tabs[no] = new_page((1280, 800))
        tabs[no].goto(f"{base}/seat#credential={s.creds[no]}")
    on(tabs["M0001"], "waiting")
    on(tabs["M0005"], "checkin")
    voters = ["M0001", "M0002", "M0003", "M0004"]

    # 1. appointment, with the proposed offices
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    mode(hall, "voting")
    ballot = on(tabs["M0001"], "ballot")
    assert "王建国（拟任副县长）" in ballot.inner_text()
    cast(tabs["M0001"], {"n1": "for", "n2": "against"}, shot="appointment")
    screenshot(tabs["M0001"], "hall-seat-receipt")
    confirm_rows = tabs["M0002"]
    cast(confirm_rows, {"n1": "for", "n2": "for"})
    # A late check-in: one message, and the 实到 the screen shows for this vote.
    late = tabs["M0005"]
    late.fill("#checkin-member", "M0005")
    late.click("#checkin-form button[type=submit]")
    late.locator("#noballot-note").wait_for(state="visible", timeout=15_000)
    waiting = late.locator('section[data-screen="waiting"]')
    assert "当前没有进行中的表决" not in waiting.inner_text()
    assert waiting.locator(".att-present").inner_text() == hall.locator('#v-count [data-f="vote.present"]').inner_text() == "4"
    screenshot(late, "hall-seat-late-checkin")
    screenshot(hall, "hall-screen-voting")
    for no in voters[2:]:
        cast(tabs[no], {"n1": "for", "n2": "abstain"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    mode(hall, "counting")
    screenshot(hall, "hall-screen-counting")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    mode(hall, "awaiting")
    screenshot(hall, "hall-screen-awaiting")
    assert "王建国" not in hall.locator("#display").inner_text()  # nothing of the result before 公布
    publish(api, s.item_id)
    mode(hall, "result")
    assert "王建国（拟任副县长）" in hall.locator("#display").inner_text()
    screenshot(hall, "hall-screen-result-appointment")

    # 2. a resolution, 3. livelihood projects (5 present now: the late deputy votes too)
    voters.append("M0005")
    for key, kind, extra, marks in (
            ("res", "resolution", {}, {"motion": "for"}),
            ("ms", "livelihood_projects", {"candidates": PROJECTS, "places": 2}, {"p1": "for", "p2": "for"})):
        item = create_item(api, s.sitting_id, key=key, kind=kind, **extra)
        tablets_poll(api, [s.creds[no] for no in voters])  # voted by API: still online (helpers_live)
        api.call("POST", f"/api/admin/items/{item}/open")
        mode(hall, "voting")
        for no in voters:
            cast(tabs[no], marks, shot=kind if no == "M0001" else None)
        api.call("POST", f"/api/admin/items/{item}/close")
        api.call("POST", f"/api/admin/items/{item}/tally")
        mode(hall, "awaiting")
        publish(api, item)
        mode(hall, "result")
        screenshot(hall, f"hall-screen-result-{kind}")

    # 闭会: the tablets say so, and no longer promise a next vote.
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    ended = on(tabs["M0003"], "ended", timeout=20_000)
    assert "本次会议已闭会" in ended.inner_text()
    screenshot(tabs["M0003"], "hall-seat-after-close")
