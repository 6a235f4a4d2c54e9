"""The console in real headless Chromium against a real server: login, a roster upload with
an error then a good one, check-in, terminals, an item, a vote refused without quorum.
Screenshots go to build/screenshots/console-*.png."""
from __future__ import annotations

import re

import pytest
from browser_support import login, screenshot
from helpers_live import OPERATOR

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def roster_file(tmp_path, n: int, name="名册.csv", duplicate=False):
    rows = ["代表证号,姓名,代表团,座位号"] + [f"{1000 + i},代表{i:02d},第{1 + i % 3}代表团,{i}" for i in range(1, n + 1)]
    if duplicate:
        rows.append(rows[-1])
    path = tmp_path / name
    path.write_text("\n".join(rows), encoding="utf-8")
    return path


def test_console_in_chromium(new_page, live_site, tmp_path):
    page = new_page((1366, 900))
    base = live_site.base_url
    page.goto(base + "/console")
    assert page.url.startswith(base + "/login")
    screenshot(page, "console-login")
    page.fill("input[name=username]", OPERATOR[0])
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.inner_text(".flash.error")
    login(page, base, OPERATOR)
    assert page.url == base + "/console"

    page.fill("#new-body input[name=name]", "示范市第十七届人民代表大会")
    page.click("#new-body button[type=submit]")
    page.click("text=生成签名密钥")
    fingerprint = page.inner_text(".fingerprint")
    assert re.fullmatch(r"([0-9a-f]{4} ){3}[0-9a-f]{4}", fingerprint)

    page.click("text=名册")
    page.set_input_files("#roster-upload input[type=file]", str(roster_file(tmp_path, 12, "bad.csv", duplicate=True)))
    page.click("#roster-upload button[type=submit]")
    assert "未导入任何内容" in page.inner_text("#roster-error")
    screenshot(page, "console-roster-error")
    page.go_back()
    page.set_input_files("#roster-upload input[type=file]", str(roster_file(tmp_path, 12)))
    page.click("#roster-upload button[type=submit]")
    assert page.inner_text("#preview-total") == "12"
    screenshot(page, "console-roster-preview")
    page.click("#roster-confirm")
    assert "新增 12" in page.inner_text(".flash.ok")

    page.goto(base + "/console")
    page.fill(".new-sitting input[name=name]", "第四次会议")
    page.click(".new-sitting button[type=submit]")
    assert "第四次会议" in page.inner_text("h1")
    sitting_url = page.url

    page.fill("#attendance-form input[name=member_no]", "1001 1002 1003 1004 1005 1006 1007")
    page.click("#attendance-form button[value=present]")
    assert page.inner_text('[data-k="present"]') == "7"
    assert "不足法定人数" in page.inner_text('[data-k="quorum"]')  # congress: 2/3 of 12 = 8
    page.click("#attendance-form summary")
    page.check("#m-1008")
    page.click("#attendance-form button[value=leave]")
    assert page.inner_text('[data-k="leave"]') == "1"

    page.check("#terminals-form input[name=all_seats]")
    page.fill("#terminals-form input[name=stations]", "1")
    page.click("#terminals-form button[type=submit]")
    assert page.locator("#credentials tr[data-kind=seat]").count() == 12
    screenshot(page, "console-credentials")

    page.goto(sitting_url)
    page.click("#new-item summary")
    page.select_option("#new-item select[name=kind]", "livelihood_projects")
    page.fill("#new-item input[name=key]", "ms-2027")
    page.fill("#new-item input[name=places]", "2")
    page.fill("#new-item input[name=title]", "2027年度民生实事项目票决")
    page.fill("#new-item textarea[name=candidates]", "老旧小区改造\n社区食堂\n公交线路优化")
    page.click("#new-item button[type=submit]")
    assert "2027年度民生实事项目票决" in page.inner_text("h1")
    page.click("#action-open")
    assert "不符合法定人数" in page.inner_text(".flash.error")
    screenshot(page, "console-item-refused")

    page.goto(sitting_url)
    page.fill("#attendance-form input[name=member_no]", "1009")
    page.click("#attendance-form button[value=present]")
    assert "符合法定人数" == page.inner_text('[data-k="quorum"]')
    screenshot(page, "console-sitting")

    page.goto(base + "/console?lang=en")
    assert "Bodies and sittings" in page.inner_text("h1")
    screenshot(page, "console-home-en")
