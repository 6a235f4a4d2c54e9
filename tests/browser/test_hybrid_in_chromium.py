"""One hybrid vote (issue #18 item 5) in real headless Chromium against a real server: three
deputies vote on their tablets; the third tablet fails after taking its ballot; the secretariat
allows a paper replacement on the item's console page (补发选票, with its reason), which prints
that one ballot at once (a PDF downloaded once, signed with the round's key: no stack, no desk);
the deputy's marked ballot (that very PDF, rasterised) is scanned and uploaded at the station
page; the secretariat closes, tallies and signs on the console, and the record's 宣布稿 says how
many ballots came by tablet and by paper. Screenshots: build/screenshots/hybrid-*.png."""
from __future__ import annotations

import json

import numpy as np
import pytest
from browser_support import login, screenshot
from helpers_live import OPERATOR, setup_sitting
from sqlalchemy import create_engine, select
from station_support import mark, write_tiff
from test_seat_tablets import check_in, open_tablet, screen
from test_seat_tablets import mark as press
from test_station_in_chromium import teller

from ballot_service.models import Record
from ballot_service.scan.pages import iter_pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _action(console, name: str) -> None:
    console.click(f"#action-{name}")
    console.wait_for_load_state()


def _record(db_url) -> dict:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return json.loads(conn.execute(select(Record.body_json)).scalar_one())
    finally:
        engine.dispose()


def test_a_tablet_fails_mid_vote_and_the_deputy_votes_on_paper(new_page, live_site, db_url, tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=3, present=0, open_vote=False, channel="hybrid")
    tablets = {no: open_tablet(new_page, base, s.creds[no]) for no in s.members}
    for no, page in tablets.items():
        check_in(page, no)
    console = new_page((1366, 900))
    login(console, base, OPERATOR)
    console.goto(f"{base}/console/items/{s.item_id}")
    _action(console, "open")

    # two deputies vote on their tablets; the third tablet takes its ballot and then fails
    for no, choice in ((s.members[0], "for"), (s.members[1], "against")):
        page = tablets[no]
        screen(page, "ballot", timeout=20_000)
        press(page, "motion", choice)
        page.click("#ballot-submit")
        screen(page, "confirm")
        page.click("#confirm-send")
        screen(page, "receipt", timeout=20_000)
    failed = tablets[s.members[2]]
    screen(failed, "ballot", timeout=20_000)
    failed.close()

    # 补发: the secretariat allows one paper ballot for that deputy, with the reason
    console.goto(f"{base}/console/items/{s.item_id}")
    form = console.locator("#replacement-form")
    form.locator("input[name=member]").fill(s.members[2])
    form.locator("select[name=channel]").select_option("paper")
    form.locator("input[name=reason]").fill("表决器故障，改投纸质票")
    with console.expect_download() as download:
        form.locator("button[type=submit]").click()
    printed = tmp_path / "paper-ballot.pdf"
    download.value.save_as(printed)
    assert printed.read_bytes().startswith(b"%PDF")
    # the download is the answer (the page stays and says what was printed:
    # test_console_paper_ballot_in_chromium.py); reloaded, the page counts the allowance
    console.goto(f"{base}/console/items/{s.item_id}")
    assert console.inner_text("#paper-allowed") == "1"
    assert console.locator("#print-form").count() == 0  # no stack is printed for a hybrid vote
    screenshot(console, "hybrid-replacement")

    # the deputy marks 赞成 on the printed ballot; the station scans it
    ((_, _, page),) = list(iter_pages(printed, dpi=200))
    scan = write_tiff([mark(page, ("motion",), {"motion": "for"}, np.random.default_rng(3))],
                      tmp_path / "hybrid.tif")
    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(scan)])
    counter.click("#scan-form button[type=submit]")
    counter.wait_for_function("document.getElementById('scan-status').textContent.indexOf('完成') === 0",
                              timeout=120_000)
    counter.wait_for_function("document.querySelector('#board-table td.returned').textContent === '1'")
    assert "表决器另收回 2 张" in counter.inner_text("#board-table tbody tr")
    screenshot(counter, "hybrid-station")

    # the secretariat closes, tallies and signs on the console
    console.goto(f"{base}/console/items/{s.item_id}")
    console.once("dialog", lambda d: d.accept())
    _action(console, "close")
    _action(console, "tally")
    _action(console, "record")
    text = console.inner_text("#announcement")
    assert "发出表决票4张，收回3张" in text, text
    assert "电子表决器发出3张、收回2张" in text and "纸质票发出1张、收回1张" in text, text
    screenshot(console, "hybrid-record")
    content = _record(db_url)
    assert content["rounds"][0]["by_channel"] == {"issued": {"terminal": 3, "paper": 1},
                                                  "returned": {"terminal": 2, "paper": 1}}
    c = content["result"]["candidates"][0]
    assert (c["for"], c["against"], content["result"]["status"]) == (2, 1, "decided")
