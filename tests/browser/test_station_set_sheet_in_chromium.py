"""Issue 20 at the counting-station page in real headless Chromium: a ballot set's sheet (主任,
副主任, 委员 on one page) is scanned; its clear sections are counted, the 委员 section with two
marks for one candidate waits for the tellers, shown as that election's band of the page with
its title, and they decide it; a sheet read by eye (USB QR scanner) is entered election by
election. Screenshots: build/screenshots/station-set-sheet-queue.png, station-set-sheet-by-eye.png."""
from __future__ import annotations

import numpy as np
import pytest
from browser_support import screenshot
from helpers_live import setup_sitting
from omr_synth import distort, draw_mark, print_and_rasterise
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from station_support import write_tiff
from test_station_in_chromium import teller

from ballot_service.domain import set_sheets
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats import set_sheet
from ballot_service.models import Item

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ELECTIONS = (("zr", "principal", 1, "AB"), ("fzr", "vice", 1, "CD"), ("wy", "committee_member", 2, "EFG"))
DPI = 200


def _choose(page, marks):
    card = page.locator("#queue-list form.page-card").first
    for key, mark in marks.items():
        card.locator(f"input[name$='|{key}'][value={mark}]").check()
    card.locator("button[type=submit]").click()


def test_a_set_sheet_is_counted_by_section_and_its_unclear_section_decided_by_the_tellers(new_page, live_site, db_url,
                                                                                         tmp_path):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, open_vote=False, members=5, channel="paper")
    ids = []
    for key, office, places, cands in ELECTIONS:
        ids.append(api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
            "key": key, "kind": "election", "title": f"选举常委会{key}", "office": office, "places": places,
            "channel": "paper", "ballot_set": "常委会组成人员",
            "candidates": [{"key": c, "title": f"候选人{c}"} for c in cands]})[1]["id"])
    _, printed = api.call("POST", f"/api/admin/items/{ids[0]}/paper-ballots", {"count": 3})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    api.call("POST", f"/api/admin/items/{ids[0]}/open")
    engine = create_engine(db_url)
    with Session(engine) as db:
        layout = set_sheets.plan(set_sheets.sheet_rounds(db, db.get(Item, ids[0])))
    engine.dispose()
    blank = print_and_rasterise(layout, [(t, "0") for t in printed["ballots"][:2]], DPI)
    geoms = set_sheet.sheet_geometry([(tuple(c), bl.MARKS, lay.write_in_lines)
                                      for (_, _, _, c), lay in zip(ELECTIONS, layout.pages[0])])
    rng, ppm = np.random.default_rng(7), DPI / 25.4
    scans = []
    for page, extra in zip(blank, (False, True)):
        img = page.copy()
        for g, (k, m) in zip(geoms, (("A", "for"), ("C", "for"), ("E", "for"))):
            draw_mark(img, g.boxes[(k, m)], "tick", ppm, rng)
        if extra:   # 委员: E marked 赞成 and 反对
            draw_mark(img, geoms[2].boxes[("E", "against")], "circle", ppm, rng)
        scans.append(distort(img, rng, dpi=DPI))
    batch = write_tiff(scans, tmp_path / "sheets.tif")

    counter = teller(new_page, base, s.counter)
    counter.set_input_files("#scan-files", [str(batch)])
    counter.click("#scan-form button[type=submit]")
    card = counter.wait_for_selector("#queue-list form.page-card")
    assert "选举常委会wy" in card.inner_text()
    counter.wait_for_function("document.querySelector('#queue-list img.section') && "
                              "document.querySelector('#queue-list img.section').naturalWidth > 0")
    screenshot(counter, "station-set-sheet-queue")
    _choose(counter, {"E": "for"})
    counter.wait_for_selector("#queue-list form.page-card >> text=已裁定")
    scrutineer = teller(new_page, base, s.scrutineer)
    _choose(scrutineer, {"E": "for"})
    scrutineer.wait_for_selector("#queue-list >> text=没有待裁定的选票")

    # the third sheet read by eye: its three elections one after the other
    scrutineer.fill("#byeye-qr", printed["ballots"][2])
    scrutineer.press("#byeye-qr", "Enter")
    scrutineer.wait_for_selector("#byeye-title >> text=合印选票 1/3")
    for n, (key, mark) in enumerate((("B", "for"), ("D", "for"), ("F", "for"))):
        scrutineer.wait_for_selector(f"#byeye-title >> text={n + 1}/3")
        scrutineer.locator(f"#byeye-marks input[name$='|{key}'][value={mark}]").check()
        if n == 2:
            screenshot(scrutineer, "station-set-sheet-by-eye")
        scrutineer.click("#byeye-form button[type=submit]")
    scrutineer.wait_for_selector("#byeye-status >> text=(3/3)")
    counter.reload()
    for left in (3, 2, 1):   # the other teller confirms each election's ballot
        counter.wait_for_function(f"document.querySelectorAll('#queue-list form.page-card').length === {left}")
        card = counter.locator("#queue-list form.page-card").first
        key = next(k for k in "BDF" if card.locator(f"input[name$='|{k}']").count())
        _choose(counter, {key: "for"})
    counter.wait_for_selector("#queue-list >> text=没有待裁定的选票")

    api.call("POST", f"/api/admin/items/{ids[0]}/close")
    result = api.call("POST", f"/api/admin/items/{ids[0]}/tally")[1]
    assert {c["key"]: c["for"] for c in result["candidates"]} == {"A": 2, "B": 1}
    vice, committee = result["ballot_set"]["fzr"], result["ballot_set"]["wy"]
    assert {c["key"]: c["for"] for c in vice["candidates"]} == {"C": 2, "D": 1}
    assert {c["key"]: c["for"] for c in committee["candidates"]} == {"E": 2, "F": 1, "G": 0}
    assert committee["valid"] == 3 and committee["invalid"] == 0
