"""Issue #19 in real headless Chromium against a real server: a year-end 满意度测评 made from last
year's selected projects. Last year's projects vote is run over the API (its projects came
from the register, imported from the secretariat's Excel list in the console); this year the
operator creates the evaluation from that vote in one step, tablets rate each project (one
option per subject, confirm step), the presiding screen shows the table with a stacked bar per
project, the record and the 公告 (page and A4 PDF) are issued, and the register shows each
project rated. Screenshots: build/screenshots/evaluation-*.png."""
from __future__ import annotations

import re

import pytest
from browser_support import login, screenshot
from helpers_live import DISPLAY_OPERATOR, OPERATOR, publish, setup_sitting, vote
from openpyxl import Workbook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PROJECTS = [("2026-01", "城区老旧小区改造", "住建局", 2026, 12000), ("2026-02", "农村饮水安全巩固提升", "水利局", 2026, 3000),
            ("2026-03", "菜市场提升改造", "商务局", 2026, 800)]
# This year's ratings, by tablet: 2026-01 is rated 满意 by all; 2026-02 is mixed.
RATINGS = {"M0001": {"2026-01": "satisfied", "2026-02": "basically_satisfied"},
           "M0002": {"2026-01": "satisfied", "2026-02": "dissatisfied"},
           "M0003": {"2026-01": "satisfied", "2026-02": "basically_satisfied"},
           "M0004": {"2026-01": "satisfied"}}


def _projects_xlsx(path):
    wb = Workbook()
    ws = wb.active
    ws.append(["编号", "项目名称", "承办单位", "年度", "投资额（万元）"])
    for p in PROJECTS:
        ws.append(list(p))
    wb.save(path)


def _states(page) -> dict[str, str]:
    return {r.get_attribute("data-code"): r.get_attribute("data-state") for r in page.locator("#projects tr[data-code]").all()}


def test_year_end_evaluation_from_last_years_selection(new_page, live_site, tmp_path):
    base, api = live_site.base_url, live_site.api
    # --- last year: the register, and its projects vote (run over the API) -----------------
    s = setup_sitting(api, members=5, kind="livelihood_projects", places=2, key="ms2026", open_vote=False,
                      candidates=[{"key": c, "title": t} for c, t, *_ in PROJECTS])
    op = new_page((1366, 900))
    login(op, base, OPERATOR)
    op.goto(f"{base}/console/bodies/{s.body_id}/projects")
    _projects_xlsx(tmp_path / "项目清单.xlsx")
    op.set_input_files("#projects-upload input[type=file]", str(tmp_path / "项目清单.xlsx"))
    op.click("#projects-upload button[type=submit]")
    assert "已导入 3 个项目" in op.inner_text(".flash.ok")
    assert set(_states(op).values()) == {"candidate"}
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    for no in s.present:
        vote(api, s.creds[no], {"2026-01": "for", "2026-02": "for", "2026-03": "against"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    op.reload()
    assert _states(op) == {"2026-01": "in_delivery", "2026-02": "in_delivery", "2026-03": "not_selected"}
    screenshot(op, "evaluation-register-before")

    # --- this year: a new session, its seat terminals --------------------------------------
    _, sitting = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": "第二次会议"})
    sid = sitting["id"]
    _, terms = api.call("POST", f"/api/admin/sessions/{sid}/terminals", {"terminals": [
        {"name": f"席位{no}", "kind": "seat", "seat": no} for no in s.members]})
    creds = {t["seat"]: t["credential"] for t in terms["terminals"]}

    # The add-item form has the evaluation's fields (options, grading by rate).
    op.goto(f"{base}/console/sessions/{sid}")
    op.click("#new-item summary")
    op.select_option("#new-item select[name=kind]", "evaluation")
    assert op.locator("#new-item textarea[name=options]").is_visible()
    screenshot(op, "evaluation-console-item-form")

    # The evaluation, from last year's vote, in one step.
    op.goto(f"{base}/console/items/{s.item_id}")
    op.select_option("#evaluation-next select[name=sitting_id]", str(sid))
    op.click("#evaluation-next button[type=submit]")
    assert "已根据入选项目新建满意度测评" in op.inner_text(".flash.ok")
    assert "2026年度民生实事项目实施情况满意度测评" in op.inner_text("h1")
    item_url = op.url

    screen = new_page((1920, 1080))
    login(screen, base, DISPLAY_OPERATOR)
    screen.goto(f"{base}/display/{sid}")
    tablets = {}
    for no in RATINGS:
        tab = new_page((1280, 800))
        tab.goto(f"{base}/seat#credential={creds[no]}")
        tab.locator('section[data-screen="checkin"]').wait_for(state="visible")
        tab.fill("#checkin-member", no)
        tab.click("#checkin-form button[type=submit]")
        tab.locator('section[data-screen="waiting"]').wait_for(state="visible")
        tablets[no] = tab
    api.call("POST", f"/api/admin/sessions/{sid}/attendance", {"members": ["M0005"], "status": "present"})

    op.goto(item_url)
    # an evaluation grades, it does not pass: the subtitle says how the grade is found (§5.5)
    assert "过半数通过" not in op.inner_text("h1 + p.muted")
    assert "累计得票超过基数半数" in op.inner_text("#grade-rule")
    # M0005 was checked in at the desk without a tablet: the vote opens with the reason typed
    op.fill("#open-anyway-form input[name=override_reason]", "代表M0005 未领取表决器，不参加电子测评")
    op.click("#action-open")
    assert "表决已开始" in op.inner_text(".flash.ok")
    for i, (no, marks) in enumerate(RATINGS.items()):
        tab = tablets[no]
        tab.locator('section[data-screen="ballot"]').wait_for(state="visible", timeout=15_000)
        assert tab.locator('button.mark[data-key="2026-01"]').all_inner_texts() == ["满意", "基本满意", "不满意"]
        for key, option in marks.items():
            tab.click(f'button.mark[data-key="{key}"][data-mark="{option}"]')
        if i == 0:
            screenshot(tab, "evaluation-seat-ballot")
        tab.click("#ballot-submit")
        tab.locator('section[data-screen="confirm"]').wait_for(state="visible")
        if i == 3:
            assert "弃权" in tab.inner_text("#confirm-list")  # 2026-02 left blank
            screenshot(tab, "evaluation-seat-confirm")
        tab.click("#confirm-send")
        tab.locator('section[data-screen="receipt"]').wait_for(state="visible")

    op.reload()
    op.once("dialog", lambda d: d.accept())
    op.click("#action-close")
    op.click("#action-tally")
    table = op.inner_text(".evaluation-result")
    assert re.search(r"城区老旧小区改造\s+4\s+0\s+0\s+0\s+0\s+100.00%\s+满意", table), table
    op.click("#action-record")
    op.click("#action-publish")
    assert "城区老旧小区改造，满意4票，基本满意0票，不满意0票，满意率100.00%，测评等次为满意" \
        in op.inner_text("#announcement")
    screenshot(op, "evaluation-console-published")

    # The presiding screen: the table, a stacked bar per project, rates and grades.
    screen.locator("#r-tables table.evaluation").wait_for(state="visible", timeout=10_000)
    rows = screen.locator("#r-tables table.evaluation tbody tr")
    assert rows.count() == 2
    first = rows.nth(0).inner_text()
    assert "城区老旧小区改造" in first and "100.00%" in first and "满意" in first
    # 2 基本满意, 1 不满意, 1 弃权 of 4 returned (M0005 present, not voting): 满意率 50.00 %, and
    # 不满意, as 2 is not more than half of the 5 members
    second = rows.nth(1).inner_text()
    assert "50.00%" in second and "不满意" in second
    assert rows.nth(1).locator(".e-bar .seg").count() == 3  # 基本满意, 不满意, 弃权 (no 满意 segment)
    assert screen.locator("#r-rec-title").inner_text().startswith("测评结果已签署")
    # M0005, present without a tablet, took no ballot: named apart from 未按 (I − R = 0)
    assert screen.locator("#r-not-issued").inner_text() == "未领取选票 1 名"
    screenshot(screen, "evaluation-screen-result")

    # The 公告: page and A4 PDF, with the record's fingerprint and QR.
    notice_url = op.get_attribute("#notice-link", "href")
    pub = new_page((1000, 1200))
    pub.goto(base + notice_url)
    text = pub.inner_text("body")
    assert "城区老旧小区改造：满意4票" in text and "测评等次为满意" in text
    assert op.inner_text("#record .fingerprint") in text
    assert pub.locator(".notice-seal svg").count() == 1
    screenshot(pub, "evaluation-notice")
    pdf = pub.request.get(base + op.get_attribute("#notice-pdf-link", "href"))
    assert pdf.ok and pdf.body()[:5] == b"%PDF-" and pdf.headers["content-type"] == "application/pdf"

    # The register: each selected project rated, with its grade and rate.
    op.goto(f"{base}/console/bodies/{s.body_id}/projects")
    assert _states(op) == {"2026-01": "rated", "2026-02": "rated", "2026-03": "not_selected"}
    assert "满意 100.00%" in op.inner_text('#projects tr[data-code="2026-01"]')
    screenshot(op, "evaluation-register-after")
