"""The hand-count tally sheet (计票单) at the counting-station page in real headless Chromium, for
the items the station API takes a sheet for besides a motion: a 述职评议 (evaluation) counted
in its own options (优秀/称职/基本称职/不称职, then 弃权/无效, not 赞成/反对), and an election
(per candidate 赞成/反对/弃权/无效, and rows of written-in persons 另选他人 with their 赞成). The 计票人 enters, the 监票人 confirms with the same
figures, and the tally counts the sheet. Screenshots: build/screenshots/station-sheet-*.png."""
from __future__ import annotations

import pytest
from browser_support import screenshot
from helpers_live import setup_sitting
from test_station_in_chromium import teller

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SUBJECTS = [{"key": "S1", "title": "公安局局长"}, {"key": "S2", "title": "民政局局长"},
            {"key": "S3", "title": "教育局局长"}]
COMPETENCE = [{"key": "excellent", "title": "优秀"}, {"key": "competent", "title": "称职"},
              {"key": "basically_competent", "title": "基本称职"}, {"key": "incompetent", "title": "不称职"}]
CANDIDATES = [{"key": "A", "title": "甲一"}, {"key": "B", "title": "乙二"}, {"key": "C", "title": "丙三"}]
SHEET = {"issued": 5, "returned": 5, "invalid": 1}    # 4 valid ballots
EVALUATION = {"S1": {"excellent": 2, "competent": 1, "abstain": 1},
              "S2": {"competent": 3, "incompetent": 1},
              "S3": {"basically_competent": 1, "abstain": 1, "void": 2}}
ELECTION = {"A": {"for": 3, "against": 1}, "B": {"for": 1, "abstain": 3}, "C": {"for": 1, "against": 2, "void": 1}}
# 另选他人: a 常委会委员 must be a deputy (art. 47), written in by 代表证号; 3 of 5 deputies elect
WRITTEN = {"M0003": 3}


def _enter(page, item_id, counts, written=None):
    form = page.locator(f"#sheet-items form[data-item='{item_id}']")
    for name, value in SHEET.items():
        form.locator(f"input[name='{name}']").fill(str(value))
    for key, row in counts.items():
        for column, value in row.items():
            form.locator(f"input[name='{key}|{column}']").fill(str(value))
    while written is not None and form.locator("tr.write-in").count():
        form.locator("tr.write-in button.remove-write-in").first.click()
    for n, (name, votes) in enumerate((written or {}).items()):
        form.locator("button.add-write-in").click()
        row = form.locator("tr.write-in").nth(n)
        row.locator("input[name='write_in_name']").fill(name)
        row.locator("input[name='write_in_for']").fill(str(votes))
    form.locator("button[type=submit]").click()


def test_two_tellers_enter_an_evaluation_and_an_election_sheet(new_page, live_site):
    base, api = live_site.base_url, live_site.api
    s = setup_sitting(api, members=5, open_vote=False)
    items = {}
    for key, spec in (("eval", {"kind": "evaluation", "title": "2026年度述职评议", "candidates": SUBJECTS,
                                "options": COMPETENCE}),
                      ("elect", {"kind": "election", "title": "选举常务委员会委员", "office": "committee_member",
                                 "places": 2, "candidates": CANDIDATES})):
        _, created = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                              {"key": key, "channel": "tally_sheet", **spec})
        items[key] = created["id"]
        api.call("POST", f"/api/admin/items/{created['id']}/open")
        api.call("POST", f"/api/admin/items/{created['id']}/close")

    counter = teller(new_page, base, s.counter)
    form = f"#sheet-items form[data-item='{items['eval']}']"
    counter.wait_for_selector(f"{form} >> text=未录入")
    # the evaluation's sheet has the ballot's own columns, its subjects as rows
    heads = counter.locator(f"{form} table.figures tr").first.inner_text().split()
    assert heads == ["优秀", "称职", "基本称职", "不称职", "弃权", "无效"], heads
    assert counter.locator(f"{form} table.figures tr").nth(1).inner_text().split()[0] == "公安局局长"
    elect = f"#sheet-items form[data-item='{items['elect']}']"
    heads = counter.locator(f"{elect} table.figures tr").first.inner_text().split()
    assert heads == ["赞成", "反对", "弃权", "无效"], heads
    assert [counter.locator(f"{elect} table.figures tr").nth(n).inner_text().split()[0] for n in (1, 2, 3)] \
        == ["甲一", "乙二", "丙三"]
    # the election's sheet has 另选他人 rows (name + 赞成), added and removed; the evaluation's has none
    assert counter.locator(f"{form} button.add-write-in").count() == 0
    counter.locator(f"{elect} button.add-write-in").click()
    counter.locator(f"{elect} button.add-write-in").click()
    assert counter.locator(f"{elect} tr.write-in").count() == 2
    counter.locator(f"{elect} tr.write-in button.remove-write-in").first.click()
    assert counter.locator(f"{elect} tr.write-in").count() == 1
    counter.locator(f"{elect} tr.write-in input[name='write_in_name']").fill("M0003")
    counter.locator(f"{elect} tr.write-in input[name='write_in_for']").fill("3")
    counter.locator(f"{elect} input[name='issued']").fill("5")
    # once focus leaves the forms the page redraws its board every 5 s: the untouched evaluation
    # sheet is drawn again, the half-typed election sheet is kept as the teller left it
    counter.evaluate("() => { document.querySelectorAll('#sheet-items form').forEach("
                     "f => { f.dataset.drawn = 'before'; }); document.activeElement.blur(); }")
    counter.wait_for_function(f"!document.querySelector(\"{form}\").dataset.drawn", timeout=12_000)
    assert counter.locator(f"{elect} tr.write-in input[name='write_in_name']").input_value() == "M0003"
    assert counter.locator(f"{elect} input[name='issued']").input_value() == "5"
    screenshot(counter, "station-sheet-evaluation-election")
    _enter(counter, items["eval"], EVALUATION)
    counter.wait_for_selector(f"{form} >> text=已录入，待确认")
    # more 赞成 than 2 seats × 4 valid ballots: refused with the reason, nothing entered
    _enter(counter, items["elect"], ELECTION, {"M0003": 4})
    counter.wait_for_function("document.getElementById('sheet-status').textContent.indexOf('应选名额') >= 0")
    _enter(counter, items["elect"], ELECTION, WRITTEN)
    counter.wait_for_selector(f"{elect} >> text=已录入，待确认")

    scrutineer = teller(new_page, base, s.scrutineer)
    wrong = {**EVALUATION, "S1": {"excellent": 1, "competent": 2, "abstain": 1}}
    _enter(scrutineer, items["eval"], wrong)          # other figures: refused, the first entry stands
    scrutineer.wait_for_function("document.getElementById('sheet-status').textContent.indexOf('不一致') >= 0")
    _enter(scrutineer, items["eval"], EVALUATION)
    scrutineer.wait_for_selector(f"{form} >> text=已确认")
    _enter(scrutineer, items["elect"], ELECTION, {"M0004": 3})    # another person: refused
    scrutineer.wait_for_function("document.getElementById('sheet-status').textContent.indexOf('不一致') >= 0")
    _enter(scrutineer, items["elect"], ELECTION, {" M0003 ": 3})  # the same person, blanks aside
    scrutineer.wait_for_selector(f"{elect} >> text=已确认")
    screenshot(scrutineer, "station-sheet-confirmed")

    _, result = api.call("POST", f"/api/admin/items/{items['eval']}/tally")
    columns = (*(o["key"] for o in COMPETENCE), "abstain", "void")
    got = {c["key"]: {k: c[k] for k in columns if c[k]} for c in result["candidates"]}
    assert got == EVALUATION and (result["valid"], result["invalid"]) == (4, 1), result
    _, result = api.call("POST", f"/api/admin/items/{items['elect']}/tally")
    got = {c["key"]: {k: c[k] for k in ("for", "against", "abstain", "void") if c[k]} for c in result["candidates"]}
    assert got == ELECTION, result
    assert result["write_ins"] == [{"name": "M0003", "for": 3, "elected": True}], result
    assert sorted(result["elected"]) == ["A", "write_in:M0003"], result
