"""The pages under their Content-Security-Policy in real Chromium: the console, the seat
terminal, the presiding screen and the verification page load, style and script themselves
with no CSP violation, and a console form that asks before it acts still asks (confirm.js)."""
from __future__ import annotations

import pytest
from browser_support import login
from helpers_live import DISPLAY_OPERATOR, OPERATOR, setup_sitting

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_pages_run_under_the_csp(new_page, live_site):
    base = live_site.base_url
    s = setup_sitting(live_site.api, members=3, open_vote=False)
    page = new_page((1366, 900), enforce_csp=True)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, base, OPERATOR)
    for url in ("/console", f"/console/sessions/{s.sitting_id}", f"/console/items/{s.item_id}",
                f"/console/bodies/{s.body_id}/roster", "/verify/nothing"):
        page.goto(base + url)
        page.wait_for_load_state("load")
    # confirm.js asks before closing the session; dismissing it keeps the session open
    page.goto(base + f"/console/sessions/{s.sitting_id}")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("form[data-confirm] button[type=submit] >> nth=-1")
    page.wait_for_timeout(300)
    assert asked and page.url.endswith(f"/console/sessions/{s.sitting_id}")
    seat = new_page(enforce_csp=True)
    seat.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    seat.goto(base + f"/seat#credential={s.creds[s.members[0]]}")
    seat.wait_for_timeout(1000)
    screen = new_page((1920, 1080), enforce_csp=True)
    screen.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    login(screen, base, DISPLAY_OPERATOR)
    screen.goto(base + f"/display/{s.sitting_id}")
    screen.wait_for_timeout(1000)
    assert not violations, violations
