"""A scanned ballot with a mark over its table's header row (over 反对) at the counting-station
page in real headless Chromium: the upload lists it as queued with the reason in Chinese, its
card shows the whole page (the problem is in no box), and the two tellers decide it.
Screenshot: build/screenshots/station-header-mark.png."""
from __future__ import annotations

import numpy as np
import pytest
from browser_support import screenshot
from helpers_live import setup_sitting
from station_support import blank_pages, mark, write_tiff
from test_station_in_chromium import decide, teller

pytestmark = [pytest.mark.slow, pytest.mark.browser]

KEYS = ("motion",)


def test_a_mark_over_the_header_row_is_shown_to_the_tellers(new_page, live_site, tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=3, channel="paper")
    texts = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 1})[1]["ballots"]
    api.call("POST", "/api/station/hand-out", {"ballots": texts}, credential=s.station)
    page = mark(blank_pages(texts, KEYS)[0], KEYS, {"motion": "for"}, np.random.default_rng(4), style="circle",
                header="against")
    batch = write_tiff([page], tmp_path / "h.tif")
    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(batch)])
    counter.click("#scan-form button[type=submit]")
    counter.wait_for_selector("#queue-list form.page-card", timeout=120_000)
    assert "表头栏" in counter.inner_text("#scan-results") and "待裁定" in counter.inner_text("#scan-results")
    assert "表头栏" in counter.inner_text("#queue-list form.page-card h3")
    counter.wait_for_selector("#queue-list img.whole-page[src^='data:image/png']")
    screenshot(counter, "station-header-mark")
    decide(counter, "for")
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    scrutineer = teller(new_page, base, s.scrutineer)
    decide(scrutineer, "for")
    scrutineer.wait_for_selector("#queue-list >> text=没有待裁定的选票")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert api.call("POST", f"/api/admin/items/{s.item_id}/tally")[1]["candidates"][0]["for"] == 1
