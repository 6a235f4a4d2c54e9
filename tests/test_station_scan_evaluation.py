"""Issue #18: the counting station's scanner reads an evaluation (满意度测评 / 述职评议) ballot by
its own option columns, as render/paper.py prints them, not by 赞成/反对/弃权 geometry — through
the station upload and through `ballot-service scan` — and the tally counts what was marked."""
from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner
from station_support import mark, paper_item_handed_out, printed_pages, write_tiff
from terminal_support import events

from ballot_service.cli import main
from ballot_service.scan import omr

SUBJECTS = [{"key": "S1", "title": "公安局局长"}, {"key": "S2", "title": "民政局局长"},
            {"key": "S3", "title": "教育局局长"}]
COMPETENCE = [{"key": "excellent", "title": "优秀"}, {"key": "competent", "title": "称职"},
              {"key": "basically_competent", "title": "基本称职"}, {"key": "incompetent", "title": "不称职"}]
# every option column marked somewhere, the last (where 赞成/反对/弃权 has no box) too
MARKS = [{"S1": "excellent", "S2": "incompetent", "S3": "competent"},
         {"S1": "basically_competent", "S2": "incompetent"},
         {"S1": "excellent", "S3": "basically_competent"},
         {"S2": "competent", "S3": "incompetent"}]


def _evaluation_on_paper(app, api, n: int):
    """An open paper evaluation with n ballots handed out; (setup, texts, blank pages as printed, keys)."""
    s, iid, texts, layout, keys = paper_item_handed_out(app, api, {
        "key": "shuzhi", "kind": "evaluation", "title": "2026年度述职评议", "channel": "paper",
        "candidates": SUBJECTS, "options": COMPETENCE}, n)
    assert [m for m, _ in layout.marks] == [o["key"] for o in COMPETENCE]
    return s, iid, texts, printed_pages(layout, texts), keys


def _scanned(blank, keys, rng):
    columns = tuple(o["key"] for o in COMPETENCE)
    return [mark(page, keys, m, rng, style=style, columns=columns)
            for page, m, style in zip(blank, MARKS, ("circle", "tick", "circle", "cross"))]


def _tally(api, iid):
    api.call("POST", f"/api/admin/items/{iid}/close")
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    assert (result["valid"], result["invalid"]) == (len(MARKS), 0)
    got = {c["key"]: {o["key"]: c[o["key"]] for o in COMPETENCE} | {"abstain": c["abstain"], "void": c["void"]}
           for c in result["candidates"]}
    want = {k["key"]: {o["key"]: sum(m.get(k["key"]) == o["key"] for m in MARKS) for o in COMPETENCE}
            | {"abstain": sum(k["key"] not in m for m in MARKS), "void": 0} for k in SUBJECTS}
    assert got == want


def _upload_two_options_for_s1(client, s, blank, keys, tmp_path):
    """The station's upload of a ballot marked 称职 and 不称职 for S1 (称职 for S2)."""
    columns = tuple(o["key"] for o in COMPETENCE)
    # the second mark drawn on the printed page too, so it lands in S1's 不称职 box
    twice = mark(blank, keys, {"S1": "competent", "S2": "competent"}, np.random.default_rng(20), style="circle",
                 columns=columns, scan=False)
    twice = mark(twice, keys, {"S1": "incompetent"}, np.random.default_rng(21), style="cross", columns=columns)
    return client.post("/api/station/scans", data=write_tiff([twice], tmp_path / "p.tif").read_bytes(),
                       headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/tiff"})


def test_station_upload_reads_an_evaluation_by_its_option_columns(app, api, client, tmp_path):
    s, iid, _, blank, keys = _evaluation_on_paper(app, api, len(MARKS))
    tiff = write_tiff(_scanned(blank, keys, np.random.default_rng(18)), tmp_path / "batch.tif").read_bytes()
    r = client.post("/api/station/scans", data=tiff, headers={"Authorization": f"Bearer {s.counter}",
                                                              "Content-Type": "image/tiff"})
    assert r.status_code == 201, r.get_json()
    pages = r.get_json()["pages"]
    assert [p["status"] for p in pages] == ["counted"] * len(MARKS), pages
    _tally(api, iid)
    # the tellers' 计票结果报告单 gives each subject's figures in the evaluation's own options
    r = client.post("/api/station/count-report", headers={"Authorization": f"Bearer {s.counter}"})
    assert r.status_code == 201 and r.data.startswith(b"%PDF"), r.get_json()
    (report,) = [json.loads(e.data) for e in events(app, "count_report_made")]
    (row,) = [it for it in report["items"] if it["item_id"] == iid]
    s1 = {title: n for title, n in row["candidates_count"][0]["counts"]}
    assert s1 == {"优秀": 2, "称职": 0, "基本称职": 1, "不称职": 0, "弃权": 1, "无效": 0}


def test_scan_cli_reads_an_evaluation_by_its_option_columns(app, api, settings_env, tmp_path):
    s, iid, _, blank, keys = _evaluation_on_paper(app, api, len(MARKS))
    folder = tmp_path / "scanner"
    folder.mkdir()
    for i, img in enumerate(_scanned(blank, keys, np.random.default_rng(19))):
        cv2.imwrite(str(folder / f"p{i}.png"), img)
    result = CliRunner().invoke(main, ["scan", str(s.sitting_id), str(folder)], env=settings_env,
                                catch_exceptions=False)
    assert result.exit_code == 0 and f"counted {len(MARKS)}" in result.output, result.output
    _tally(api, iid)
    # 重新计票: the kept scans read again by the same option columns
    result = CliRunner().invoke(main, ["recount", str(iid)], env=settings_env, catch_exceptions=False)
    assert result.exit_code == 0 and f"same {len(MARKS)}" in result.output, result.output


def test_two_options_for_one_subject_go_to_the_tellers_who_decide_in_options(app, api, client, tmp_path):
    s, iid, _, blank, keys = _evaluation_on_paper(app, api, 1)
    r = _upload_two_options_for_s1(client, s, blank[0], keys, tmp_path)
    (page,) = r.get_json()["pages"]
    assert page["status"] == "queued" and omr.TWO_MARKS in page["reasons"], page
    status, err = api.call("POST", f"/api/station/pages/{page['id']}/decision",
                           {"decision": {"marks": {"S1": "for"}}}, credential=s.counter, expect=None)
    assert status == 400 and err["errors"][0]["where"] == "marks.S1"        # not a column of this ballot
    for cred in (s.counter, s.scrutineer):
        _, out = api.call("POST", f"/api/station/pages/{page['id']}/decision",
                          {"decision": {"marks": {"S1": "void", "S2": "competent"}}}, credential=cred)
    assert out["status"] == "counted", out
    # the station's reconciliation counts an evaluation's ballots in its options (was a 500)
    _, board = api.call("GET", "/api/station/board", credential=s.counter)
    (row,) = [i for i in board["items"] if i["item_id"] == iid]
    assert (row["returned"], row["valid"], row["invalid"], row["pending"]) == (1, 1, 0, 0), row
    api.call("POST", f"/api/admin/items/{iid}/close")
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    s1, s2, s3 = result["candidates"]
    assert (s1["void"], s2["competent"], s3["abstain"]) == (1, 1, 1)


def test_queue_and_ballot_info_offer_an_evaluation_pages_options(app, api, client, tmp_path):
    s, _, texts, blank, keys = _evaluation_on_paper(app, api, 1)
    r = _upload_two_options_for_s1(client, s, blank[0], keys, tmp_path)
    assert [p["status"] for p in r.get_json()["pages"]] == ["queued"], r.get_json()
    want = [*COMPETENCE, {"key": "abstain", "title": "弃权"}, {"key": "void", "title": "无效"}]
    _, q = api.call("GET", "/api/station/queue", credential=s.counter)
    assert [p["choices"] for p in q["pages"]] == [want]
    _, info = api.call("POST", "/api/station/ballot-info", {"ballot": texts[0]}, credential=s.counter)
    assert info["choices"] == want
