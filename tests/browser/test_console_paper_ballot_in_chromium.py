"""The secretariat console allows a hybrid vote's paper ballot (补发选票, 纸质票) in real headless
Chromium: the PDF is downloaded once, and the operator then sees on the page what was printed
(how many ballots, for which member) and the allowance counted — the page's own polling used to
lose the flash of that answer. Chinese by default, English with ?lang=en.
Screenshots: build/screenshots/console-paper-ballot-printed.png, console-paper-ballot-printed-en.png."""
from __future__ import annotations

import pytest
from browser_support import login, screenshot
from helpers_live import OPERATOR, setup_sitting

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _allow_paper(console, member: str, reason: str, tmp_path, name: str):
    form = console.locator("#replacement-form")
    form.locator("input[name=member]").fill(member)
    form.locator("select[name=channel]").select_option("paper")
    form.locator("input[name=reason]").fill(reason)
    with console.expect_download() as download:
        form.locator("button[type=submit]").click()
    printed = tmp_path / name
    download.value.save_as(printed)
    assert printed.read_bytes().startswith(b"%PDF")
    assert download.value.suggested_filename.endswith(".pdf")


def test_the_operator_sees_what_was_printed_after_the_download(new_page, live_site, tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=3, channel="hybrid")   # the vote is open: the page polls its progress
    console = new_page((1366, 900))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{s.item_id}")
    console.wait_for_timeout(2500)   # let a poll of the progress go by first, as an operator's page does
    _allow_paper(console, s.members[0], "表决器故障", tmp_path, "a.pdf")
    flash = console.wait_for_selector(".flash.ok >> text=已印制纸质选票 1 张")
    assert s.members[0] in flash.inner_text()
    console.wait_for_function("document.getElementById('paper-allowed').textContent === '1'")
    screenshot(console, "console-paper-ballot-printed")
    # the message stays after the next polls (nothing reloads it away)
    console.wait_for_timeout(4500)
    assert console.locator(".flash.ok >> text=已印制纸质选票 1 张").count() == 1

    console.goto(f"{base}/console/items/{s.item_id}?lang=en")
    _allow_paper(console, s.members[1], "tablet failed", tmp_path, "b.pdf")
    console.wait_for_selector(".flash.ok >> text=1 paper ballot printed")
    console.wait_for_function("document.getElementById('paper-allowed').textContent === '2'")
    screenshot(console, "console-paper-ballot-printed-en")

    # a refusal (a member not present) still shows its reason, and nothing is downloaded
    form = console.locator("#replacement-form")
    form.locator("input[name=member]").fill("M9999")
    form.locator("select[name=channel]").select_option("paper")
    form.locator("input[name=reason]").fill("tablet failed")
    form.locator("button[type=submit]").click()
    console.wait_for_selector(".flash.error")
    assert console.inner_text("#paper-allowed") == "2"
