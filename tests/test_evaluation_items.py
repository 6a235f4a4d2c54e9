"""Issue #19: the `evaluation` kind through the service — items created with the default or
the secretariat's options and grading, bad input refused with where and nothing changed,
tablet marks limited to the options, tally sheets per option, grade-by-rate recorded, the
signed record and 宣布稿 in the usual wording, and `audit verify` recomputing grades offline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_support import flashes, post
from helpers_live import blind_ballot, setup_sitting, vote
from sqlalchemy import func, select
from terminal_support import assert_error_shape, query

from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.crypto import tablet
from ballot_service.domain.sittings import create_body, create_sitting
from ballot_service.errors import InvalidInput
from ballot_service.formats.scenario import load_scenario
from ballot_service.models import Item, Record
from ballot_service.rehearsal import rehearse
from ballot_service.render import announcement

SUBJECTS = [{"key": "P01", "title": "城区老旧小区改造"}, {"key": "P02", "title": "背街小巷整治"}]
COMPETENCE = [{"key": "excellent", "title": "优秀"}, {"key": "competent", "title": "称职"},
              {"key": "basically_competent", "title": "基本称职"}, {"key": "incompetent", "title": "不称职"}]


def _item(api, sid, **extra):
    spec = {"key": extra.pop("key", "cp"), "kind": "evaluation", "title": "2026年度民生实事项目实施情况满意度测评",
            "candidates": SUBJECTS, **extra}
    return api.call("POST", f"/api/admin/sessions/{sid}/items", spec, expect=None)


def _count_items(app) -> int:
    return query(app, select(func.count()).select_from(Item))[0][0]


@pytest.mark.parametrize("extra, where", [
    ({"options": [{"key": "good", "title": "好"}]}, "options"),
    ({"options": [{"key": "void", "title": "好"}, {"key": "bad", "title": "差"}]}, "options"),
    ({"options": [{"key": "a", "title": "好"}, {"key": "a", "title": "差"}]}, "options"),
    ({"options": [{"key": "a", "title": "好"}, "差"]}, "options[1]"),
    ({"rule": {"majority": "two_thirds"}}, "rule.majority"),
    ({"places": 2}, "places"),
    ({"grading": {"by": "rate_thresholds", "steps": [{"option": "dissatisfied", "min_hundredths": 10}]}},
     "grading.steps"),
    ({"grading": {"by": "rate_thresholds", "steps": [{"option": "satisfied", "min_hundredths": 10001}]}},
     "grading.steps"),
    ({"grading": {"by": "rate_thresholds", "steps": [{"option": "satisfied", "min_hundredths": 6000},
                                                     {"option": "basically_satisfied", "min_hundredths": 8000}]}},
     "grading.steps"),
    ({"grading": {"by": "lottery"}}, "grading.by"),
])
def test_bad_evaluation_items_are_refused_where_and_change_nothing(app, api, extra, where):
    s = setup_sitting(api, open_vote=False)
    before = _count_items(app)
    status, data = _item(api, s.sitting_id, **extra)
    assert status == 400, data
    assert assert_error_shape(data, "InvalidInput")["where"] == where
    assert _count_items(app) == before


def test_options_and_grading_belong_to_evaluations_only(api):
    s = setup_sitting(api, open_vote=False)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "r2", "kind": "resolution", "title": "决议", "options": COMPETENCE}, expect=None)
    assert status == 400 and data["errors"][0]["where"] == "options"


def test_tablet_marks_are_the_items_options(app, api):
    s = setup_sitting(api, open_vote=False, members=5)
    _, created = _item(api, s.sitting_id)
    api.call("POST", f"/api/admin/items/{created['id']}/open")
    cred = s.creds[s.present[0]]
    ballot = blind_ballot(api, cred)
    for marks, where in (({"P01": "for"}, "marks.P01"), ({"P01": "void"}, "marks.P01"),
                         ({"P09": "satisfied"}, "marks.P09")):
        status, data = api.call("POST", "/api/terminal/cast", {**ballot, "marks": marks,
                                                               "retry_id": tablet.new_retry_id()}, expect=None)
        assert status == 400 and data["errors"][0]["where"] == where, data
    # the same ballot is still good for a proper mark: a refused mark used nothing up
    api.call("POST", "/api/terminal/cast", {**ballot, "marks": {"P01": "satisfied"},
                                            "retry_id": tablet.new_retry_id()})


def _run(api, s, iid, ballots):
    api.call("POST", f"/api/admin/items/{iid}/open")
    for no, marks in zip(s.present, ballots):
        vote(api, s.creds[no], marks)
    api.call("POST", f"/api/admin/items/{iid}/close")
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    return result


def test_competence_scale_record_announcement_and_offline_recount(app, api, tmp_path):
    """述职评议 with 优秀/称职/基本称职/不称职: grades by cumulative majority of all members,
    称职率 over valid ballots; the signed record and 宣布稿 say so; audit verify recounts it."""
    s = setup_sitting(api, open_vote=False, members=7, present=6)
    _, created = _item(api, s.sitting_id, options=COMPETENCE, key="sz")
    iid = created["id"]
    ballots = [{"P01": "excellent", "P02": "incompetent"}] * 3 + [{"P01": "competent", "P02": "basically_competent"}] \
        + [{"P01": "incompetent"}] * 2
    result = _run(api, s, iid, ballots)
    p01, p02 = result["candidates"]
    assert (p01["excellent"], p01["competent"], p01["incompetent"], p01["abstain"]) == (3, 1, 2, 0)
    # 3 优秀 is not more than half of 7; 3 + 1 is: 称职. 称职率 (all but 不称职) 4 of 6 = 66.67
    assert (p01["grade"], p01["rate"]) == ("competent", "66.67")
    assert (p02["grade"], p02["rate"], p02["abstain"]) == ("incompetent", "16.67", 2)
    _, rec = api.call("POST", f"/api/admin/items/{iid}/record")
    db = app.extensions["ballot_sessionmaker"]()
    content = json.loads(db.scalar(select(Record.body_json).where(Record.item_id == iid)))
    assert content["item"]["options"] == COMPETENCE and content["result"]["candidates"][0]["grade"] == "competent"
    text = announcement.announcement(content)
    assert "城区老旧小区改造，优秀3票，称职1票，基本称职0票，不称职2票，称职率66.67%，测评等次为称职" in text
    assert "背街小巷整治，优秀0票，称职0票，基本称职1票，不称职3票，弃权2票，称职率16.67%，测评等次为不称职" in text
    export_bundle(db, app.config["SETTINGS"], tmp_path / "audit")
    db.close()
    summary = verify_bundle(tmp_path / "audit")
    assert (summary["items"], summary["rounds_recounted"]) == (2, 1), summary  # item1 (setup) never voted
    # A bundle whose counts claim another scale (so the recount would grade otherwise) is refused.
    counts = json.loads((tmp_path / "audit" / "counts.json").read_text("utf-8"))
    counts["items"][-1]["rule"]["options"] = ["excellent", "competent", "incompetent", "basically_competent"]
    (tmp_path / "audit" / "counts.json").write_text(json.dumps(counts, ensure_ascii=False), "utf-8")
    with pytest.raises(BundleInvalid):
        verify_bundle(tmp_path / "audit")


def test_grade_by_rate_is_recorded_and_applied(app, api):
    """The variant: 满意率 ≥ 80.00 % 满意, ≥ 60.00 % 基本满意; a subject with many abstentions
    is graded on its rate, not on the members."""
    s = setup_sitting(api, open_vote=False, members=10, present=7)
    grading = {"by": "rate_thresholds", "steps": [{"option": "satisfied", "min_hundredths": 8000},
                                                  {"option": "basically_satisfied", "min_hundredths": 6000}]}
    _, created = _item(api, s.sitting_id, grading=grading)
    result = _run(api, s, created["id"], [{"P01": "satisfied", "P02": "dissatisfied"}] * 4
                  + [{"P01": "dissatisfied", "P02": "basically_satisfied"}] * 3)
    p01, p02 = result["candidates"]
    assert (p01["rate"], p01["grade"]) == ("57.14", "dissatisfied")
    assert (p02["rate"], p02["grade"]) == ("42.86", "dissatisfied")
    assert result["rule"]["grading"] == {"by": "rate_thresholds", "steps": [["satisfied", 8000],
                                                                             ["basically_satisfied", 6000]]}


def test_tally_sheet_per_option(api):
    s = setup_sitting(api, open_vote=False, members=5)
    _, created = _item(api, s.sitting_id, channel="tally_sheet")
    iid = created["id"]
    api.call("POST", f"/api/admin/items/{iid}/open")
    api.call("POST", f"/api/admin/items/{iid}/close")
    bad = {"issued": 5, "returned": 5, "invalid": 0, "counts": {
        "P01": {"satisfied": 3, "basically_satisfied": 1, "dissatisfied": 0, "abstain": 0},
        "P02": {"for": 5}}}
    status, data = api.call("POST", "/api/station/tally-sheet", {"item_id": iid, "sheet": bad},
                            credential=s.counter, expect=None)
    assert status == 400 and data["errors"][0]["where"] in ("sheet.counts.P01", "sheet.counts.P02")
    sheet = {"issued": 5, "returned": 5, "invalid": 0, "counts": {
        "P01": {"satisfied": 3, "basically_satisfied": 1, "dissatisfied": 1, "abstain": 0},
        "P02": {"satisfied": 1, "basically_satisfied": 1, "dissatisfied": 2, "abstain": 1}}}
    for cred in (s.counter, s.scrutineer):
        api.call("POST", "/api/station/tally-sheet", {"item_id": iid, "sheet": sheet}, credential=cred)
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    assert [(c["grade"], c["rate"]) for c in result["candidates"]] == [("satisfied", "80.00"),
                                                                        ("dissatisfied", "40.00")]


def test_console_form_creates_an_evaluation_with_typed_options_and_steps(app, console):
    db = app.extensions["ballot_sessionmaker"]()
    body = create_body(db, "测试市人民代表大会常务委员会", "standing_committee")
    sitting = create_sitting(db, body, "第二十次会议")
    db.commit()
    sid = sitting.id
    db.close()
    form = {"kind": "evaluation", "title": "2026年度述职评议", "candidates": "公安局局长\n民政局局长",
            "options": "优秀\n称职\n基本称职\n不称职", "grading": "rate_thresholds", "steps": "称职 | 80\n基本称职 | 60.5",
            "base": "members", "majority": "half", "secret": "1", "channel": "terminal"}
    r = post(console, f"/console/sessions/{sid}/items", form)
    assert r.status_code == 302, flashes(r)
    db = app.extensions["ballot_sessionmaker"]()
    item = db.scalar(select(Item).where(Item.kind == "evaluation"))
    assert [o["title"] for o in item.options] == ["优秀", "称职", "基本称职", "不称职"]
    assert item.grading == {"by": "rate_thresholds", "steps": [["o2", 8000], ["o3", 6050]]}
    assert [c.key for c in item.candidates] == ["P01", "P02"]
    db.close()
    bad = post(console, f"/console/sessions/{sid}/items", {**form, "steps": "不称职 | 10"})
    assert bad.status_code == 400 and "分档" in bad.get_data(as_text=True)


def test_paper_evaluation_counts_void_marks_per_subject(api):
    """On paper two options for one subject void that subject's mark only (§5.5): the ballot is valid."""
    s = setup_sitting(api, open_vote=False, members=5)
    _, created = _item(api, s.sitting_id, channel="paper")
    iid = created["id"]
    _, printed = api.call("POST", f"/api/admin/items/{iid}/paper-ballots", {"count": 4})
    api.call("POST", f"/api/admin/items/{iid}/open")
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    marks = [{"P01": "satisfied", "P02": "void"}, {"P01": "satisfied"}, {"P01": "void", "P02": "dissatisfied"},
             {"P01": "satisfied", "P02": "satisfied"}]
    for text, m in zip(printed["ballots"], marks):
        api.call("POST", "/api/station/paper", {"ballot": text, "marks": m}, credential=s.station)
    status, data = api.call("POST", "/api/station/paper", {"ballot": printed["ballots"][0], "marks": {"P01": "for"}},
                            credential=s.station, expect=None)
    assert status >= 400
    api.call("POST", f"/api/admin/items/{iid}/close")
    _, result = api.call("POST", f"/api/admin/items/{iid}/tally")
    p01, p02 = result["candidates"]
    assert (result["valid"], result["invalid"]) == (4, 0)
    assert (p01["satisfied"], p01["void"], p01["grade"], p01["rate"]) == (3, 1, "satisfied", "75.00")
    assert (p02["satisfied"], p02["dissatisfied"], p02["void"], p02["abstain"]) == (1, 1, 1, 1)


UPCOMING = Path(__file__).resolve().parents[2] / "shared" / "scenarios" / "upcoming" / "evaluation-basic.json"


@pytest.mark.parametrize("mutate, where", [
    (lambda i: i["ballots"][0]["marks"].update(P01="for"), "$.items[0].ballots[0].marks.P01"),
    (lambda i: i["ballots"][0]["marks"].update(P01="void"), "$.items[0].ballots[0].marks.P01"),
    (lambda i: i.update(options=[{"key": "grade", "title": "好"}, {"key": "bad", "title": "差"}]),
     "$.items[0].options[0].key"),
    (lambda i: i.update(rule={"majority": "two_thirds"}), "$.items[0].rule.majority"),
    (lambda i: (i.pop("ballots"), i.update(channel="tally_sheet", sheet={
        "issued": 5, "returned": 5, "invalid": 0, "counts": {"P01": {"for": 5}}})), "$.items[0].sheet.counts.P01.for"),
    (lambda i: i.update(options=COMPETENCE), "$.items[0].ballots[0].marks.P01"),  # satisfied is no longer an option
])
def test_evaluation_scenarios_are_checked_per_kind(tmp_path, mutate, where):
    s = json.loads(UPCOMING.read_text("utf-8"))
    mutate(s["items"][0])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(s, ensure_ascii=False), "utf-8")
    with pytest.raises(InvalidInput) as exc:
        load_scenario(path)
    assert exc.value.where == where, exc.value.message


def test_a_paper_evaluation_rehearses_with_void_marks(tmp_path, db_url):
    s = json.loads(UPCOMING.read_text("utf-8"))
    item = s["items"][0]
    item["channel"] = "paper"
    item["ballots"] = [{"marks": {"P01": "satisfied", "P02": "void"}, "repeat": 40},
                       {"marks": {"P01": "dissatisfied"}, "repeat": 10}, {"marks": {"P01": "satisfied"}, "spare": True}]
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(s, ensure_ascii=False), "utf-8")
    (result,) = rehearse(path, tmp_path / "out", db_url)["items"]
    p01, p02 = result["candidates"][:2]
    assert (result["issued"], result["returned"], result["refused"], result["not_voted"]) == (54, 50, 1, 4)
    assert (p01["satisfied"], p01["dissatisfied"], p01["grade"], p01["rate"]) == (40, 10, "satisfied", "80.00")
    assert (p02["void"], p02["abstain"], p02["grade"], p02["rate"]) == (40, 10, "dissatisfied", "0.00")


def test_a_rate_graded_evaluation_opens_in_the_console_with_its_steps(app, api):
    """Its item page (and the 修改 form on it) shows the steps as typed: 80.5 % stays 80.5."""
    s = setup_sitting(api, open_vote=False, members=5)
    grading = {"by": "rate_thresholds", "steps": [{"option": "satisfied", "min_hundredths": 8050},
                                                  {"option": "basically_satisfied", "min_hundredths": 6000}]}
    _, created = _item(api, s.sitting_id, grading=grading)
    page = api.client.get(f"/console/items/{created['id']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "satisfied | 80.50" in text and "basically_satisfied | 60" in text
