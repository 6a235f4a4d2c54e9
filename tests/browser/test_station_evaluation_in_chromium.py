"""Issue #18 at the counting-station page in real headless Chromium: an unclear 述职评议
(evaluation) page is decided by the 计票人 and the 监票人 each choosing the ballot's own options
(优秀/称职/基本称职/不称职, then 弃权/无效), not 赞成/反对, and the tally counts their decision.
Screenshot: build/screenshots/station-evaluation-queue.png."""
from __future__ import annotations

import numpy as np
import pytest
from browser_support import screenshot
from helpers_live import setup_sitting
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from station_support import mark, printed_pages, write_tiff
from test_station_in_chromium import teller

from ballot_service.models import Item
from ballot_service.render.paper import BallotLayout

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SUBJECTS = [{"key": "S1", "title": "公安局局长"}, {"key": "S2", "title": "民政局局长"},
            {"key": "S3", "title": "教育局局长"}]
COMPETENCE = [{"key": "excellent", "title": "优秀"}, {"key": "competent", "title": "称职"},
              {"key": "basically_competent", "title": "基本称职"}, {"key": "incompetent", "title": "不称职"}]
COLUMNS = tuple(o["key"] for o in COMPETENCE)


def _choose(page, marks):
    card = page.locator("#queue-list form.page-card").first
    for subject, option in marks.items():
        card.locator(f"input[name$='|{subject}'][value={option}]").check()
    card.locator("button[type=submit]").click()


def test_two_tellers_decide_an_unclear_evaluation_page_by_its_options(new_page, live_site, db_url, tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, open_vote=False, members=5)
    _, created = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "shuzhi", "kind": "evaluation", "title": "2026年度述职评议", "channel": "paper",
        "candidates": SUBJECTS, "options": COMPETENCE})
    iid = created["id"]
    _, printed = api.call("POST", f"/api/admin/items/{iid}/paper-ballots", {"count": 1})
    api.call("POST", f"/api/admin/items/{iid}/open")
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    engine = create_engine(db_url)
    with Session(engine) as db:
        item = db.get(Item, iid)
        layout, keys = BallotLayout.from_item(item, item.rounds[-1]), tuple(item.rounds[-1].candidate_keys)
    engine.dispose()
    (blank,) = printed_pages(layout, printed["ballots"])
    # S1 marked in two columns: the reader cannot tell which, the tellers decide
    page = mark(blank, keys, {"S1": "competent", "S2": "competent"}, np.random.default_rng(20), style="circle",
                columns=COLUMNS, scan=False)
    page = mark(page, keys, {"S1": "incompetent"}, np.random.default_rng(21), style="cross", columns=COLUMNS)
    batch = write_tiff([page], tmp_path / "batch.tif")

    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(batch)])
    counter.click("#scan-form button[type=submit]")
    counter.wait_for_selector("#queue-list form.page-card")
    row = counter.locator("#queue-list form.page-card .mark-row").first
    assert row.inner_text().split() == ["公安局局长", "优秀", "称职", "基本称职", "不称职", "弃权", "无效"]
    screenshot(counter, "station-evaluation-queue")

    decision = {"S1": "basically_competent", "S2": "competent"}       # S3 left at 弃权
    _choose(counter, decision)
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    scrutineer = teller(new_page, base, s.scrutineer)
    _choose(scrutineer, decision)
    scrutineer.wait_for_selector("#queue-list >> text=没有待裁定的选票")
    screenshot(scrutineer, "station-evaluation-counted")

    api.call("POST", f"/api/admin/items/{iid}/close")
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    got = {c["key"]: {k: c[k] for k in (*COLUMNS, "abstain", "void") if c[k]} for c in result["candidates"]}
    assert got == {"S1": {"basically_competent": 1}, "S2": {"competent": 1}, "S3": {"abstain": 1}}, result
