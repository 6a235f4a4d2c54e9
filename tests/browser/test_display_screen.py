"""The presiding officer's screen in real headless Chromium against `ballot-service serve`: a
sitting driven through the API, the screen following within a second (check-in, a timed vote,
counting, result, the signed record and its QR code, 会标), including after the server was killed
and restarted under it and after the browser lost its network; and the project and nominee
tables, up to the largest table the screen is meant for, at 1080p and 720p."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from browser_support import SCREENSHOTS, login, screenshot
from display_support import CHOICE_KEYS, keys_in
from helpers_live import (
    DISPLAY_OPERATOR,
    OPERATOR,
    Api,
    LiveServer,
    blind_ballot,
    create_item,
    publish,
    setup_sitting,
    tablets_poll,
    vote,
)

from ballot_service.crypto import tablet
from ballot_service.render import qr

pytestmark = [pytest.mark.slow, pytest.mark.browser]


FIELD = 'document.querySelector(\'[data-f="{f}"]\')'


def open_screen(new_page, base: str, viewport=(1920, 1080)):
    page = new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    login(page, base, DISPLAY_OPERATOR)
    assert page.url.rstrip("/").endswith("/display"), page.url  # a display operator lands on the chooser
    return page


def within(page, js: str, limit: float = 1.0, what: str = "") -> float:
    """Wait until `js` is true on the page; assert it took at most `limit` seconds."""
    t0 = time.monotonic()
    page.wait_for_function(js, polling=50, timeout=max(5_000, limit * 4_000))
    took = time.monotonic() - t0
    print(f"screen showed {what or js[:40]} after {took:.3f}s")
    assert took <= limit, f"the screen took {took:.2f}s to show {what or js}"
    return took


def field_is(page, f: str, value) -> str:
    return f"{FIELD.format(f=f)}.textContent === {json.dumps(str(value))}"


def shows(page, section: str) -> bool:
    return page.locator(f"#{section}").is_visible()


def fits(page) -> None:
    """Nothing is cut off the 16:9 stage: no scrollbars, every figure and title inside it."""
    over = page.evaluate("""() => {
        const stage = document.getElementById('display').getBoundingClientRect();
        const bad = [];
        for (const el of document.querySelectorAll('#display .view:not([hidden]) *')) {
          if (!el.offsetParent || el.closest('[hidden]')) continue;
          const r = el.getBoundingClientRect();
          if (r.width === 0 || r.height === 0) continue;
          if (r.right > stage.right + 1 || r.bottom > stage.bottom + 1 || r.left < stage.left - 1)
            bad.push((el.id || el.className || el.tagName) + ' ' + Math.round(r.right) + 'x' + Math.round(r.bottom));
        }
        return bad;
    }""")
    assert not over, f"outside the stage: {over[:8]}"
    covered = page.evaluate("""() => {
        const card = document.getElementById('r-record');
        if (!card.offsetParent) return [];
        const c = card.getBoundingClientRect();
        return [...document.querySelectorAll('#view-result .tile, #view-result .item-title, #view-result .d-tags, #r-tables, #r-notes, #r-outcome')]
          .filter(e => e.offsetParent)
          .filter(e => { const r = e.getBoundingClientRect();
                         return r.left < c.right && r.right > c.left && r.top < c.bottom && r.bottom > c.top; })
          .map(e => e.id || e.className);
    }""")
    assert not covered, f"the record card covers {covered}"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def snap(page, name: str) -> None:
    """Save the screenshot (build/screenshots/NAME.png), then check nothing spills off the stage."""
    screenshot(page, name)
    fits(page)


def min_font_px(page, selector: str) -> float:
    return page.evaluate(f"""() => Math.min(...[...document.querySelectorAll({json.dumps(selector)})]
        .filter(e => e.offsetParent).map(e => parseFloat(getComputedStyle(e).fontSize)))""")


def test_screen_follows_a_sitting_live_and_recovers(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_sitting(api, members=12, present=7, open_vote=False)
    sid = s.sitting_id
    page = open_screen(new_page, base)
    screenshot(page, "display-index")
    page.click(f'tr[data-sitting-id="{sid}"] a')
    page.wait_for_url(f"**/display/{sid}")

    # (a) check-in: 7 of 12 is short of two thirds; two more check in and the quorum is met.
    assert shows(page, "view-checkin") and not shows(page, "view-voting")
    assert page.locator('[data-f="attendance.members"]').inner_text() == "12"
    assert page.locator('[data-f="attendance.present"]').inner_text() == "7"
    assert page.locator("#quorum").inner_text().splitlines()[0] == "不足法定人数"
    assert page.locator("#conn-banner").is_hidden()
    assert min_font_px(page, "#view-checkin .num") >= 150  # from the back of the hall
    snap(page, "display-checkin-short")
    api.call("POST", "/api/terminal/checkin", {"member": "M0008"}, credential=s.creds["M0008"])
    within(page, field_is(page, "attendance.present", 8), what="实到 8")
    api.call("POST", "/api/terminal/checkin", {"member": "M0009"}, credential=s.creds["M0009"])
    within(page, field_is(page, "attendance.present", 9) + " && document.querySelector('#quorum').dataset.ok === 'yes'",
           what="实到 9, quorum met")
    assert page.locator("#quorum").inner_text().splitlines()[0] == "符合法定人数"
    screenshot(page, "display-checkin")

    # (b) a timed vote: how many of how many, counting down; never how.
    _, item = api.call("POST", f"/api/admin/sessions/{sid}/items", {
        "key": "budget", "kind": "resolution", "time_limit_s": 300,
        "title": "关于批准2025年市级预算执行情况和2026年市级预算的决议"})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    within(page, "document.getElementById('display').dataset.mode === 'voting'", what="the vote")
    assert page.locator('[data-f="vote.title"]').inner_text().startswith("关于批准2025年")
    assert page.locator('[data-f="vote.voted"]').inner_text() == "0"
    # 已表决 R of 实到 P, as the console reads it; the present whose tablets took no ballot yet
    # (P − I; I = blind signatures taken) are named apart.
    assert page.locator("#v-count .num").inner_text() == "0/9"
    assert page.locator("#v-not-issued").inner_text() == "未领取选票 9 名"
    page.wait_for_function("/^0[45]:\\d\\d$/.test(document.getElementById('v-remaining').textContent)", timeout=3_000)
    voters = s.members[:9]
    taken = {no: blind_ballot(api, s.creds[no]) for no in voters}
    # Taking a ballot writes no audit event (nothing is timed per deputy): the screen, which
    # follows the audit head, shows the 9 issued with the first cast.

    def cast_taken(api, no, m):
        api.call("POST", "/api/terminal/cast", {**taken[no], "marks": {"motion": m}, "retry_id": tablet.new_retry_id()})

    marks = ["for"] * 5 + ["against", "abstain", "for"]  # the 9th does not vote
    for i, (no, m) in enumerate(zip(voters, marks), start=1):
        cast_taken(api, no, m)
        within(page, field_is(page, "vote.voted", i), what=f"{i} voted")
        assert page.locator("#v-count .num").inner_text() == f"{i}/9"
        assert page.locator("#v-not-issued").is_hidden()  # every present tablet took its ballot
        if i == 3:
            snap(page, "display-voting")
        # Nothing of how anyone voted is anywhere on the page while the vote is open.
        assert page.locator("#view-result").is_hidden()
        assert page.locator("#r-tables tbody tr").count() == 0
        st = page.evaluate("() => fetch(document.getElementById('display').dataset.stateUrl).then(r => r.json())")
        assert not keys_in(st) & CHOICE_KEYS
        if i == 5:
            # (recovery) The server dies under the screen: a small banner, then it comes back by
            # itself when the server does, catches up with what happened meanwhile, and is live again.
            port, env = live_site.port, live_site.env
            live_site.kill()
            page.locator("#conn-banner").wait_for(state="visible", timeout=5_000)
            assert page.locator("#conn-banner").inner_text() == "连接中断，正在重连…"
            assert page.locator('[data-f="vote.voted"]').inner_text() == "5"  # the last figure stays up
            screenshot(page, "display-reconnecting")
            time.sleep(2)  # a while down: EventSource has failed and is retrying
            restarted = LiveServer.start(env, workers=2, threads=16, port=port)
            live_site.proc = restarted.proc  # the fixture's teardown stops the new server
            api = Api.httpx(base)
            api.call("POST", "/api/admin/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
            cast_taken(api, voters[5], marks[5])  # cast before the screen is back
            page.wait_for_function(field_is(page, "vote.voted", 6), polling=100, timeout=15_000)
            page.locator("#conn-banner").wait_for(state="hidden", timeout=5_000)
            assert page.evaluate("() => document.getElementById('display').dataset.connection") == "ok"
            break
    # The browser loses its network (an already open EventSource may not notice: the page also
    # listens for offline/online), then gets it back: banner, then live again.
    page.context.set_offline(True)
    page.locator("#conn-banner").wait_for(state="visible", timeout=5_000)
    page.context.set_offline(False)
    page.locator("#conn-banner").wait_for(state="hidden", timeout=5_000)
    for i, (no, m) in enumerate(zip(voters[6:8], marks[6:8]), start=7):
        cast_taken(api, no, m)
        within(page, field_is(page, "vote.voted", i), what=f"{i} voted after the restart")

    # (c) closed, tallied: 赞成 6, 反对 1, 弃权 1, 未按 1 -> 2*6 > 12 is false: 未通过.
    api.call("POST", f"/api/admin/items/{item['id']}/close")
    within(page, "document.getElementById('display').dataset.mode === 'counting'", what="counting")
    assert page.locator('[data-f="vote.voted"]').inner_text() == "8"
    snap(page, "display-counting")
    _, tallied = api.call("POST", f"/api/admin/items/{item['id']}/tally")
    # Counted, and signed: the hall still sees no figure until the secretariat publishes (公布).
    within(page, "document.getElementById('display').dataset.mode === 'awaiting'", what="待公布")
    assert "待公布" in page.locator("#view-voting .d-tags").inner_text()
    assert not shows(page, "view-result")
    snap(page, "display-awaiting-publication")
    _, rec = api.call("POST", f"/api/admin/items/{item['id']}/record")
    page.wait_for_timeout(1500)
    assert page.locator("#display").get_attribute("data-mode") == "awaiting" and not shows(page, "view-result")
    api.call("POST", f"/api/admin/items/{item['id']}/publish")
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result")
    motion = tallied["candidates"][0]
    for f, v in (("result.members", 12), ("result.present", 9), ("result.motion.for", motion["for"]),
                 ("result.motion.against", motion["against"]), ("result.motion.abstain", motion["abstain"]),
                 ("result.not_voted", tallied["not_voted"])):
        assert page.locator(f'[data-f="{f}"]').inner_text() == str(v), f
    assert (motion["for"], motion["against"], motion["abstain"], tallied["not_voted"]) == (6, 1, 1, 1)
    assert page.locator("#r-outcome").inner_text() == "未通过"
    snap(page, "display-result-resolution")

    # (d) the signed record: fingerprint, audit head and a QR code of /verify/<id>.
    within(page, f"document.getElementById('r-fp').textContent === {json.dumps(rec['fingerprint'])}",
           what="the record's fingerprint")
    assert rec["audit_head"] in page.locator("#r-head").inner_text()
    assert page.locator("#r-url").inner_text() == f"{base}/verify/{rec['id']}"
    assert page.locator("#r-qr svg path").count() == 1
    qr = page.locator("#r-qr svg").bounding_box()
    assert qr["width"] >= 250 and abs(qr["width"] - qr["height"]) < 2
    if shutil.which("zbarimg"):  # (installed by .ci/run) scan the QR as a phone would
        png = SCREENSHOTS / "display-record-qr.png"
        page.locator("#r-qr").screenshot(path=str(png))
        scanned = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30)
        assert scanned.stdout.strip() == f"{base}/verify/{rec['id']}", scanned
        verify = new_page(viewport=(1280, 800))  # no login: the verification page is public
        verify.goto(scanned.stdout.strip())
        assert verify.locator("#verdict").get_attribute("data-genuine") == "true"
    snap(page, "display-result-record")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-result-record-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    # (e) a break: the secretariat puts up 会标 (the body and session only), then the votes again.
    api.call("POST", f"/api/admin/sessions/{sid}/screen", {"show": "title"})
    within(page, "document.getElementById('display').dataset.mode === 'title'", what="会标")
    assert page.locator("#view-title .t-body").inner_text() == "测试市人民代表大会"
    assert page.locator("#view-title .t-sitting").inner_text() == "第一次会议"
    assert not shows(page, "view-result") and not shows(page, "view-checkin")
    assert min_font_px(page, "#view-title .t-body") >= 80
    snap(page, "display-title")
    api.call("POST", f"/api/admin/sessions/{sid}/screen", {"show": "auto"})
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result again")
    assert not page.js_errors
    live_site.kill()  # not stop(): a graceful stop would wait out the server's grace for the open stream


def spread(nos: list[str], counts: dict[str, int]) -> dict[str, dict]:
    """Ballots giving each candidate its `for` count, marks dealt round-robin over the voters."""
    ballots = {no: {} for no in nos}
    i = 0
    for key, n in counts.items():
        for _ in range(n):
            ballots[nos[i % len(nos)]][key] = "for"
            i += 1
    return ballots


def test_screen_shows_project_and_nominee_tables(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    titles = ["城区老旧小区改造", "农村饮水安全巩固提升", "中小学校食堂提质改造", "社区嵌入式养老服务中心建设",
              "城乡公交一体化提升", "背街小巷环境整治", "新能源汽车公共充电桩建设", "普惠托育机构建设",
              "农贸市场升级改造", "城市口袋公园建设", "基层医疗卫生机构能力提升", "残疾人康复服务扩面提质"]
    cands = [{"key": f"p{i + 1}", "title": t} for i, t in enumerate(titles)]
    s = setup_sitting(api, members=12, present=9, kind="livelihood_projects", candidates=cands, places=10)
    page = open_screen(new_page, base)
    page.goto(f"{base}/display/{s.sitting_id}")
    within(page, "document.getElementById('display').dataset.mode === 'voting'", limit=3, what="the vote")
    # 9 voters, up to 10 marks each: p1-p9 get 8, p10 and p11 tie at 7 (both pass 2*7 > 12) for
    # the tenth place, p12 gets 2 and fails.
    counts = {f"p{i}": 8 for i in range(1, 10)} | {"p10": 7, "p11": 7, "p12": 2}
    for no, m in spread(s.present, counts).items():
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result")
    rows = page.locator("#r-tables tbody tr")
    assert rows.count() == 12
    assert page.locator("#r-tables tr.selected").count() == 9
    assert "待再次投票" in page.locator('#r-tables tr[data-key="p10"]').inner_text()
    assert "需再次投票" in page.locator("#r-outcome").inner_text() or "runoff" in page.locator("#r-outcome").inner_text()
    snap(page, "display-result-projects-runoff-pending")

    tablets_poll(api, [s.creds[no] for no in s.present])  # voted by API: still online (helpers_live)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")  # the runoff for the tenth place
    within(page, "document.getElementById('display').dataset.mode === 'voting'", what="the runoff")
    assert page.locator("#v-round").inner_text() == "第2轮 · 再次投票"
    assert "基层医疗卫生机构能力提升" in page.locator("#v-runoff").inner_text()
    snap(page, "display-voting-runoff")
    for j, no in enumerate(s.present):
        vote(api, s.creds[no], {"p10": "for"} if j < 7 else {"p11": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    rec = publish(api, s.item_id)
    within(page, f"document.getElementById('r-fp').textContent === {json.dumps(rec['fingerprint'])}",
           limit=2, what="result and record")
    assert page.locator("#r-tables tr.selected").count() == 10
    first = page.locator("#r-tables tbody tr").first.inner_text()
    assert first.startswith("1") and "入选" in first
    p10 = page.locator('#r-tables tr[data-key="p10"]').inner_text()
    assert "10" in p10 and "入选" in p10 and "7" in p10
    assert min_font_px(page, "#r-tables td") >= 20
    snap(page, "display-result-projects")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-result-projects-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    # 任职票决: a table of nominees with 通过 / 未通过.
    nominees = [{"key": "n1", "title": "任命刘振华为示范市人民政府副市长"}, {"key": "n2", "title": "任命陈雅琴为示范市教育局局长"},
                {"key": "n3", "title": "任命王建国为示范市财政局局长"}]
    item = create_item(api, s.sitting_id, kind="appointment", candidates=nominees, key="appoint")
    tablets_poll(api, [s.creds[no] for no in s.present])
    api.call("POST", f"/api/admin/items/{item}/open")
    for j, no in enumerate(s.present):
        vote(api, s.creds[no], {"n1": "for", "n2": "for" if j < 7 else "against", "n3": "for" if j < 3 else "abstain"})
    api.call("POST", f"/api/admin/items/{item}/close")
    api.call("POST", f"/api/admin/items/{item}/tally")
    publish(api, item)
    within(page, "document.querySelectorAll('#r-tables tr[data-key=\"n3\"]').length === 1", what="nominees")
    assert "未通过" in page.locator('#r-tables tr[data-key="n3"]').inner_text()
    assert page.locator('#r-tables tr[data-key="n1"] td.o').inner_text() == "通过"
    snap(page, "display-result-appointment")

    # Layout only: the largest table the screen is meant for (20 projects, 15 places, long titles,
    # with a record card) rendered from a made-up state through the page's own renderer.
    st = page.evaluate("() => fetch(document.getElementById('display').dataset.stateUrl).then(r => r.json())")
    long_titles = titles + ["城市老旧小区改造提升和既有住宅加装电梯工程", "全民健身设施补短板", "“一老一小”服务场所建设",
                            "城市内涝治理", "公共法律服务体系建设", "农村生活污水治理", "数字乡村建设", "食品安全快检室建设"]
    projects = [{"key": f"q{i}", "title": t, "for": 60 - i, "against": i, "abstain": 0, "void": 0,
                 "passed": i < 18, "selected": i < 15, "rank": i + 1 if i < 15 else None, "tied": False,
                 "runoff_for": None} for i, t in enumerate(long_titles)]
    url = f"{base}/verify/{rec['id']}"
    st["result"] = {**st["result"], "kind": "livelihood_projects", "places": 15, "projects": projects,
                    "selected_count": 15, "tied_count": 0, "runoff_places": 0, "shortfall": 0,
                    "title": "关于2026年市级民生实事项目人大代表票决的决定"}
    st["record"] = {"id": rec["id"], "key_fingerprint": rec["fingerprint"], "audit_head": rec["audit_head"],
                    "audit_seq": 99, "published": False, "verify_url": url, "qr_svg": qr.qr_svg(url)}
    page.evaluate("s => window.BallotDisplay.render(s)", st)
    assert page.locator("#r-tables table").count() == 2 and page.locator("#r-tables tbody tr").count() == 20
    assert min_font_px(page, "#r-tables td.n") >= 28 and min_font_px(page, "#r-tables td.title") >= 20
    snap(page, "display-layout-20-projects")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-layout-20-projects-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    page.goto(f"{base}/display/{s.sitting_id}?lang=en")
    page.locator("#r-tables").wait_for()
    assert page.locator("#view-result .tag.done").inner_text() == "Result"
    screenshot(page, "display-result-appointment-en")
    assert not page.js_errors
    live_site.kill()
