"""A half-empty hall in real headless Chromium: most present deputies' tablets never take a
ballot. The presiding screen and the console read the same numbers during the vote (已表决 R of
实到 P, P − R not voted yet), and name apart the present deputies who took no ballot (P − I);
after the vote 未按 stays I − R (RULES.md §1) and the screen, the 宣布稿 and the console carry
a line of its own "未领取选票 P−I 名", so nobody present disappears."""
from __future__ import annotations

import pytest
from browser_support import login, screenshot
from helpers_live import DISPLAY_OPERATOR, OPERATOR, blind_ballot, setup_sitting

from ballot_service.crypto import tablet

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def text(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def test_screen_and_console_agree_when_tablets_take_no_ballot(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    # 12 deputies, 9 present (quorum met); only 3 tablets take their ballot, 2 of them vote.
    s = setup_sitting(api, members=12, present=9, open_vote=True)
    item_id = s.item_id
    taken = {no: blind_ballot(api, s.creds[no]) for no in s.present[:3]}
    for no in s.present[:2]:
        api.call("POST", "/api/terminal/cast", {**taken[no], "marks": {"motion": "for"},
                                                "retry_id": tablet.new_retry_id()})

    screen = new_page(viewport=(1920, 1080))
    login(screen, base, DISPLAY_OPERATOR)
    screen.goto(f"{base}/display/{s.sitting_id}")
    screen.wait_for_function("document.querySelector('[data-f=\"vote.voted\"]').textContent === '2'")
    # 已表决 2 / 实到 9 (not "2/3", which would hide the six who never took a ballot)
    assert text(screen, "#v-count .num") == "2/9"
    assert text(screen, "#v-issued-label") == "尚未表决 7 名"
    assert text(screen, "#v-not-issued") == "未领取选票 6 名"
    screenshot(screen, "display-voting-half-empty")

    console = new_page(viewport=(1280, 900))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{item_id}")
    assert text(console, "#returned") == "2"
    assert text(console, "#not-voted") == "7"  # the same 7 as the screen's 尚未表决
    assert text(console, "#not-issued") == "6"
    assert console.locator("#not-issued-line").is_visible()
    screenshot(console, "console-voting-half-empty")

    api.call("POST", f"/api/admin/items/{item_id}/close")
    _, tallied = api.call("POST", f"/api/admin/items/{item_id}/tally")
    assert (tallied["issued"], tallied["returned"], tallied["not_voted"]) == (3, 2, 1)  # 未按 = I − R
    _, rec = api.call("POST", f"/api/admin/items/{item_id}/record")
    api.call("POST", f"/api/admin/items/{item_id}/publish")
    screen.wait_for_function("document.getElementById('display').dataset.mode === 'result'")
    assert text(screen, '[data-f="result.not_voted"]') == "1"
    assert text(screen, "#r-not-issued") == "未领取选票 6 名"
    screenshot(screen, "display-result-half-empty")

    console.goto(f"{base}/console/items/{item_id}")
    # The signed record carries P − I for the round (audit verify checks it against P and I).
    signed = console.evaluate(f"() => fetch('/console/records/{rec['id']}.json').then(r => r.json())"
                              ".then(d => JSON.parse(d.signed))")
    assert signed["rounds"][0]["not_issued"] == 6
    assert "未领取选票 6 名" in text(console, ".round-result .not-issued")
    assert "实到代表中未领取选票6名。" in text(console, "#announcement")
    console.goto(f"{base}/console/items/{item_id}/announcement")
    assert "实到代表中未领取选票6名。" in console.locator("body").inner_text()
    screenshot(console, "announcement-half-empty")
    assert not screen.locator("#v-not-issued").is_visible()
